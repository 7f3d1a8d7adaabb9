"""Bundled tables: scikit-learn's iris, wine, breast_cancer and diabetes, one row per example.

Classification targets become a ClassLabel (categorical) column with the class names;
regression targets stay float.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from datasets import ClassLabel, Features, Value

from .base import BundledData

TARGET_COLUMN = "target"


def _sklearn_table(
    loader: Callable[..., Any], categorical: tuple[str, ...] = (), **loader_kwargs: Any
) -> BundledData:
    """A scikit-learn `load_*` bunch -> one row per sample, named feature columns + target.

    Classification targets become a ClassLabel (categorical) column with the class names;
    regression targets stay float. `categorical` names integer-coded feature columns.
    """
    bunch = loader(as_frame=True, **loader_kwargs)
    frame = bunch.data.copy()
    for name in categorical:
        frame[name] = frame[name].astype(np.int64)
    features = Features(
        {
            name: Value("int64") if name in categorical else Value("float64")
            for name in frame.columns
        }
    )
    columns = {name: frame[name].tolist() for name in frame.columns}
    target_names = getattr(bunch, "target_names", None)
    if target_names is not None:
        features[TARGET_COLUMN] = ClassLabel(names=[str(n) for n in target_names])
        categorical = (*categorical, TARGET_COLUMN)
    else:
        features[TARGET_COLUMN] = Value("float64")
    columns[TARGET_COLUMN] = bunch.target.tolist()
    return BundledData(columns, features, "tabular", categorical, TARGET_COLUMN)


def read_iris() -> BundledData:
    """150 irises: 4 measurements (cm), species as target."""
    from sklearn.datasets import load_iris

    return _sklearn_table(load_iris)


def read_wine() -> BundledData:
    """178 wines: 13 chemical measurements, cultivar as target."""
    from sklearn.datasets import load_wine

    return _sklearn_table(load_wine)


def read_breast_cancer() -> BundledData:
    """569 tumours: 30 cell-nucleus measurements, malignant/benign as target."""
    from sklearn.datasets import load_breast_cancer

    return _sklearn_table(load_breast_cancer)


def read_diabetes() -> BundledData:
    """442 patients in original units (age, sex coded 1/2, bmi, ...), disease progression as
    a numeric target; `sex` is categorical."""
    from sklearn.datasets import load_diabetes

    return _sklearn_table(load_diabetes, categorical=("sex",), scaled=False)
