"""Batching: collation declared by each modality's adapters, and exactly resumable order."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pandas as pd
import pytest
import torch

from qgfd_diffusion.data import infinite_batches, load_dataset_source, make_dataloader


def bundled(name: str, **options):
    return load_dataset_source("bundled", name=name, **options)


def take(iterator, count: int) -> list:
    return [next(iterator) for _ in range(count)]


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
