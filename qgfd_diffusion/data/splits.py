"""A data config's examples, shuffled by the run seed and split into training and validation.

The split is a function of (data config, seed) alone, so training, resuming and every scorer
see the same held-out examples.
"""

from __future__ import annotations

from dataclasses import dataclass

import datasets

from .config import DataConfig
from .metadata import dataset_metadata
from .sources import load_dataset_source


@dataclass
class PhaseData:
    train: datasets.Dataset
    validation: datasets.Dataset
    modality: str  # the adapters' data modality: text, image, audio, video, tabular, ...


def split_train_validation(
    dataset: datasets.Dataset, validation_fraction: float, seed: int = 0
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Deterministic (train, validation) split: the same seed gives the same split."""
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    parts = dataset.train_test_split(test_size=validation_fraction, seed=seed, shuffle=True)
    return parts["train"], parts["test"]


def load_source(data: DataConfig, seed: int, *, limit: bool = True) -> datasets.Dataset:
    """The examples a ``DataConfig`` names, shuffled by ``seed``; cut to max_items if ``limit``."""
    return load_dataset_source(
        data.source,
        name=data.name,
        split=data.split,
        files=data.files,
        format=data.format,
        column=data.column,
        label_column=data.label_column,
        max_items=data.max_items if limit else None,
        seed=seed,
        **data.options,
    )


def load_phase_data(data: DataConfig, seed: int) -> PhaseData:
    """A phase's training and validation examples (``validation_fraction`` of them held out)."""
    dataset = load_source(data, seed)
    train, validation = split_train_validation(dataset, data.validation_fraction, seed)
    return PhaseData(train, validation, dataset_metadata(dataset)["modality"])
