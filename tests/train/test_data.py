"""Data layer: bundled offline sources, local files, collation and exactly resumable batching."""

from __future__ import annotations

import json
import os
import re

import datasets
import numpy as np
import pandas as pd
import pytest
import torch

from qgfd_diffusion.train.bundled import BUNDLED_SOURCES
from qgfd_diffusion.train.data import (
    SOURCES,
    dataset_metadata,
    infinite_batches,
    load_dataset_source,
    make_dataloader,
    split_train_validation,
)

COMMON_WORDS = {"the", "and", "i", "to", "of", "you", "my", "a", "that", "is"}


def bundled(name: str, **options):
    return load_dataset_source("bundled", name=name, **options)


def take(iterator, count: int) -> list:
    return [next(iterator) for _ in range(count)]


# ------------------------------------------------------------------------------------ bundled
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


def test_max_items_takes_a_seeded_subset():
    first = bundled("iris", max_items=20, seed=3)
    assert len(first) == 20
    assert first[:] == bundled("iris", max_items=20, seed=3)[:]
    assert first[:] != bundled("iris", max_items=20, seed=4)[:]


def test_split_train_validation_is_deterministic_and_disjoint():
    dataset = load_dataset_source("bundled", name="digits")
    train, validation = split_train_validation(dataset, 0.1, seed=0)
    assert len(train) + len(validation) == len(dataset) and len(validation) == 180
    again_train, again_validation = split_train_validation(dataset, 0.1, seed=0)
    assert np.array_equal(validation[:]["image"], again_validation[:]["image"])
    assert validation[0]["image"].dtype == np.float32  # format survives the split
    assert dataset_metadata(validation)["name"] == "digits"
    with pytest.raises(ValueError, match="validation_fraction"):
        split_train_validation(dataset, 1.0, seed=0)


# -------------------------------------------------------------------------------------- files
def test_text_files_one_example_per_line(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("To be, or not to be.\n\nThat is the question.\nWhether 'tis nobler\n")
    dataset = load_dataset_source("files", files=[str(path)], format="text", seed=0)
    assert sorted(dataset["text"]) == [
        "That is the question.",
        "To be, or not to be.",
        "Whether 'tis nobler",
    ]
    assert dataset_metadata(dataset)["modality"] == "text"


def test_csv_files_as_table_and_as_text(tmp_path):
    path = tmp_path / "rows.csv"
    pd.DataFrame(
        {"size": [1.5, 2.0, 3.25], "colour": ["red", "blue", "red"], "line": ["a b", "c d", "e f"]}
    ).to_csv(path, index=False)
    table = load_dataset_source(
        "files", files=[str(path)], format="csv", label_column="size", modality="tabular"
    )
    meta = dataset_metadata(table)
    assert meta["modality"] == "tabular"
    assert meta["categorical_columns"] == ["colour", "line"] and meta["target_column"] == "size"
    assert len(table) == 3
    text = load_dataset_source("files", files=[str(path)], format="csv", column="line")
    assert text.column_names == ["text"] and sorted(text["text"]) == ["a b", "c d", "e f"]


def test_imagefolder_is_decoded_to_chw(tmp_path):
    from PIL import Image

    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        Image.fromarray(np.full((5, 6, 3), 255, np.uint8)).save(tmp_path / label / "a.png")
    dataset = load_dataset_source("files", files=[str(tmp_path)], format="imagefolder")
    batch = next(iter(make_dataloader(dataset, "image", batch_size=2, seed=0)))
    assert batch["images"].shape == (2, 3, 5, 6)
    assert torch.all(batch["images"] == 1.0)
    assert sorted(batch["labels"].tolist()) == [0, 1]


def test_audiofolder_is_read_with_soundfile(tmp_path):
    import soundfile

    soundfile.write(tmp_path / "a.wav", np.zeros((800, 2), np.float32), 8000)
    dataset = load_dataset_source("files", files=[str(tmp_path)], format="audiofolder")
    example = dataset[0]
    assert example["sampling_rate"] == 8000 and example["audio"].shape == (800,)


def test_missing_file_names_the_path(tmp_path):
    missing = str(tmp_path / "nowhere.txt")
    with pytest.raises(FileNotFoundError, match="nowhere.txt"):
        load_dataset_source("files", files=[missing], format="text")


def test_files_format_is_checked():
    with pytest.raises(ValueError, match="audiofolder, csv, imagefolder, text"):
        load_dataset_source("files", files=["x"], format="parquet")


# ------------------------------------------------------------------------------- errors, hub
def test_unknown_source_lists_sources():
    with pytest.raises(ValueError, match="bundled, files, hub"):
        load_dataset_source("ftp", name="x")
    assert set(SOURCES) == {"hub", "files", "bundled"}


def test_unknown_bundled_name_lists_names():
    with pytest.raises(ValueError) as info:
        load_dataset_source("bundled", name="cifar10")
    assert all(name in str(info.value) for name in BUNDLED_SOURCES)


def test_unknown_bundled_option_lists_options():
    with pytest.raises(ValueError, match="clip_seconds"):
        load_dataset_source("bundled", name="speech", sample_rate=8000)


@pytest.mark.skipif(os.environ.get("HF_HUB_OFFLINE") != "1", reason="needs HF_HUB_OFFLINE=1")
def test_hub_offline_error_points_to_bundled():
    with pytest.raises(ConnectionError, match="bundled"):
        load_dataset_source("hub", name="nyu-mll/glue:mrpc", split="train")


def test_hub_rows_are_mapped_to_the_schema(monkeypatch):
    """The hub path offline: `datasets.load_dataset` replaced by an in-memory GLUE-like split."""
    calls = []

    def fake_load_dataset(repo, config, split, data_files, **options):
        calls.append((repo, config, split))
        return datasets.Dataset.from_dict(
            {"sentence1": ["One pair.", "Two pairs."], "sentence2": ["x", "y"], "label": [0, 1]}
        )

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    dataset = load_dataset_source(
        "hub", name="nyu-mll/glue:mrpc", split="validation", column="sentence1"
    )
    assert calls == [("nyu-mll/glue", "mrpc", "validation")]
    assert dataset.column_names == ["text"] and sorted(dataset["text"]) == [
        "One pair.",
        "Two pairs.",
    ]
    assert dataset_metadata(dataset)["source"] == "hub"
    with pytest.raises(ValueError, match="sentence3"):
        load_dataset_source("hub", name="nyu-mll/glue:mrpc", column="sentence3")


def test_hub_needs_a_name():
    with pytest.raises(ValueError, match="name"):
        load_dataset_source("hub")


# ------------------------------------------------------------------------------------ collate
@pytest.mark.parametrize(
    "name, modality",
    [
        ("digits", "image"),
        ("shakespeare", "text"),
        ("speech", "audio"),
        ("clips", "video"),
        ("wine", "tabular"),
    ],
)
def test_collate_types_and_shapes(name, modality):
    loader = make_dataloader(bundled(name, max_items=16), modality, batch_size=4, seed=0)
    batch = next(iter(loader))
    if modality == "image":
        assert batch["images"].dtype == torch.float32
        assert batch["images"].shape == (4, 1, 8, 8)
        assert batch["labels"].dtype == torch.int64 and batch["labels"].shape == (4,)
    elif modality == "text":
        assert isinstance(batch, list) and len(batch) == 4
        assert all(isinstance(text, str) for text in batch)
    elif modality == "audio":
        assert batch["sampling_rate"] == 16_000 and len(batch["waveforms"]) == 4
        assert all(a.dtype == np.float32 and a.ndim == 1 for a in batch["waveforms"])
    elif modality == "video":
        videos = batch["videos"]
        assert videos.dtype == torch.float32 and videos.shape == (4, 8, 3, 32, 32)
        assert batch["labels"].tolist() == [-1] * 4  # real footage: unlabelled
    else:
        assert isinstance(batch, pd.DataFrame) and batch.shape == (4, 14)
    assert len(loader) == 4


def test_unknown_modality_lists_modalities():
    with pytest.raises(
        ValueError,
        match="unknown modality 'graph'; allowed: audio, graph_signal, image, tabular, text, video",
    ):
        make_dataloader(bundled("iris"), "graph", batch_size=2, seed=0)


def test_collation_comes_from_the_adapter_registry(smell):
    dataset = datasets.Dataset.from_dict({"smell": ["rose", "smoke"]})
    loader = make_dataloader(dataset, "smell", batch_size=2, seed=0, shuffle=False)
    assert next(iter(loader)) == ["rose", "smoke"]


def test_old_table_spelling_still_loads(tmp_path):
    """Datasets saved while the modality was called "table" load as "tabular"."""
    old = datasets.Dataset.from_dict({"x": [0.5, 1.5], "target": [0, 1]})
    old.info.description = json.dumps(
        {"source": "files", "name": "csv", "modality": "table", "categorical_columns": []}
    )
    old.save_to_disk(str(tmp_path / "saved"))
    loaded = datasets.load_from_disk(str(tmp_path / "saved"))
    meta = dataset_metadata(loaded)
    assert meta["modality"] == "tabular" and meta["name"] == "csv"
    batch = next(iter(make_dataloader(loaded, meta["modality"], batch_size=2, seed=0)))
    assert isinstance(batch, pd.DataFrame) and batch.shape == (2, 2)
    path = tmp_path / "rows.csv"
    pd.DataFrame({"x": [1.0, 2.0]}).to_csv(path, index=False)
    table = load_dataset_source("files", files=[str(path)], format="csv", modality="table")
    assert dataset_metadata(table)["modality"] == "tabular"


# ---------------------------------------------------------------------------------- resumable
def _numbers(count: int) -> datasets.Dataset:
    return datasets.Dataset.from_dict({"text": [str(i) for i in range(count)]})


def _loader(dataset: datasets.Dataset, drop_last: bool = True):
    return make_dataloader(dataset, "text", batch_size=3, seed=7, drop_last=drop_last)


@pytest.mark.parametrize("drop_last", [True, False])
@pytest.mark.parametrize("consumed", [0, 1, 3, 4, 7, 9])
def test_resume_continues_with_the_same_batches(consumed, drop_last):
    dataset = _numbers(10)  # 3 full batches per epoch (+1 partial without drop_last)
    reference = take(infinite_batches(_loader(dataset, drop_last)), consumed + 8)
    interrupted = _loader(dataset, drop_last)
    assert take(infinite_batches(interrupted), consumed) == reference[:consumed]
    state = json.loads(json.dumps(interrupted.state_dict()))  # small, JSON-safe
    resumed = _loader(dataset, drop_last)
    resumed.load_state_dict(state)
    assert take(infinite_batches(resumed), 8) == reference[consumed:]


def test_epochs_are_new_permutations_of_all_items():
    loader = make_dataloader(_numbers(12), "text", batch_size=4, seed=0)
    epochs = [sum(list(loader), []) for _ in range(2)]
    assert sorted(epochs[0], key=int) == [str(i) for i in range(12)]
    assert sorted(epochs[1], key=int) == sorted(epochs[0], key=int)
    assert epochs[0] != epochs[1]
    assert loader.state_dict()["epoch"] == 2 and loader.state_dict()["position"] == 0


def test_seed_fixes_order_and_shuffle_false_keeps_it():
    def first_epoch(seed: int, shuffle: bool = True) -> list[str]:
        return sum(make_dataloader(_numbers(12), "text", 4, seed, shuffle=shuffle), [])

    assert first_epoch(1) == first_epoch(1) and first_epoch(1) != first_epoch(2)
    assert first_epoch(1, shuffle=False) == [str(i) for i in range(12)]


def test_state_from_another_dataset_is_rejected():
    state = _loader(_numbers(10)).state_dict()
    with pytest.raises(ValueError, match="num_items"):
        _loader(_numbers(11)).load_state_dict(state)


def test_infinite_batches_rejects_an_epoch_without_batches():
    with pytest.raises(ValueError, match="no batch"):
        next(infinite_batches(_loader(_numbers(2))))
