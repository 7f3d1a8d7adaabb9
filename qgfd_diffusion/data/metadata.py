"""What a loaded dataset says about itself: a JSON object in ``dataset.info.description``.

    {"source", "name", "modality", "categorical_columns", "target_column"}

It lives in the dataset info, so it survives ``shuffle``, ``select``, ``train_test_split`` and
``save_to_disk``. ``categorical_columns`` lists the table columns to encode as categories
(ClassLabel, string, bool and integer-coded columns); every other table column is numeric.
Datasets saved before the tabular modality got its name say "table": ``dataset_metadata`` reads
it as "tabular".
"""

from __future__ import annotations

import json
from typing import Any

import datasets

from ..formats import modality_name


def describe(dataset: datasets.Dataset, **fields: Any) -> datasets.Dataset:
    """Store the JSON metadata (module docstring) in ``dataset.info.description``."""
    dataset.info.description = json.dumps(fields)
    return dataset


def dataset_metadata(dataset: datasets.Dataset) -> dict[str, Any]:
    """The metadata written by ``load_dataset_source`` ({} for a dataset it did not build)."""
    try:
        meta = json.loads(dataset.info.description or "{}")
    except json.JSONDecodeError:
        return {}
    if not isinstance(meta, dict):
        return {}
    if "modality" in meta:
        meta["modality"] = modality_name(meta["modality"])
    return meta
