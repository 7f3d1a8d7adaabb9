"""A data config's examples split into training and validation, the same for a seed."""

from __future__ import annotations

import numpy as np
import pytest

from qgfd_diffusion.data import (
    DataConfig,
    dataset_metadata,
    load_dataset_source,
    load_phase_data,
    split_train_validation,
)


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


def test_phase_data_is_the_split_of_the_seeded_source():
    data = DataConfig(source="bundled", name="iris", max_items=40, validation_fraction=0.25)
    phase = load_phase_data(data, seed=3)
    train, validation = split_train_validation(
        load_dataset_source("bundled", name="iris", max_items=40, seed=3), 0.25, seed=3
    )
    assert phase.modality == "tabular" and (len(phase.train), len(phase.validation)) == (30, 10)
    assert phase.train[:] == train[:] and phase.validation[:] == validation[:]
    assert phase.validation[:] != load_phase_data(data, seed=4).validation[:]
