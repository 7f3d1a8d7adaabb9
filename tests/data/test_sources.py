"""Data sources: bundled, local files and the hub, each brought to its modality's schema."""

from __future__ import annotations

import json
import os

import datasets
import numpy as np
import pandas as pd
import pytest
import torch

from qgfd_diffusion.data import (
    BUNDLED_SOURCES,
    SOURCES,
    dataset_metadata,
    load_dataset_source,
    make_dataloader,
)


def bundled(name: str, **options):
    return load_dataset_source("bundled", name=name, **options)


def test_max_items_takes_a_seeded_subset():
    first = bundled("iris", max_items=20, seed=3)
    assert len(first) == 20
    assert first[:] == bundled("iris", max_items=20, seed=3)[:]
    assert first[:] != bundled("iris", max_items=20, seed=4)[:]


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
