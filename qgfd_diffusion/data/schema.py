"""Hub and files datasets -> the raw examples of one modality, as its adapters declare them.

Every adapter class declares its modality's ``schema`` (``adapters.DataSchema``): the data
column, a label column, the ``datasets`` feature that marks such data, a decode hook. This module
reads those declarations and spells no modality itself:

    modality   the one a data config names (``modality`` option), else the one whose schema
               feature the data column has (``column``), else, without a column, the first
               column whose feature class a schema declares ("Image", "Audio"), then a column
               named as a schema's column of its Value dtype (a "text" string column), and
               else the modality whose examples are whole rows (tables)
    columns    the data column (and label) renamed to the schema's names, the rest dropped;
               whole-row modalities keep every column and record categorical ones and the
               target (the label column)
    decoding   the schema's decode hook runs on access (``set_transform``), so a large dataset
               is not rewritten
"""

from __future__ import annotations

from typing import Any

import datasets

from ..adapters import DataSchema, modalities, schema_for
from ..formats import modality_name
from .metadata import describe

STRING_DTYPES = {"string": "string", "large_string": "string"}  # Value dtypes read as "string"


def feature_name(feature: Any) -> str:
    """How a schema names a feature: the class name ("Image"), or a Value's dtype ("string")."""
    if isinstance(feature, datasets.Value):
        return STRING_DTYPES.get(feature.dtype, feature.dtype)
    return type(feature).__name__


def _is_feature_class(name: str | None) -> bool:
    """True for a ``datasets`` feature class ("Image"), which marks whatever column has it;
    False for a Value dtype ("string"), which tables hold too: it marks a column by its name."""
    return name is not None and isinstance(getattr(datasets, name, None), type)


def _schemas() -> dict[str, DataSchema]:
    return {modality: schema_for(modality) for modality in modalities()}


def infer_modality(dataset: datasets.Dataset, column: str | None) -> str:
    """The modality of a hub / files dataset (module docstring)."""
    schemas, features = _schemas(), dataset.features
    if column is not None:
        name = feature_name(features[column])
        for modality, schema in schemas.items():
            if schema.feature == name:
                return modality
        declared = sorted(s.feature for s in schemas.values() if s.feature is not None)
        raise ValueError(
            f"column {column!r} has feature {features[column]}; supported data columns are "
            f"{', '.join(declared)} columns (leave column unset for tables)"
        )
    for feature in features.values():
        for modality, schema in schemas.items():
            if _is_feature_class(schema.feature) and schema.feature == feature_name(feature):
                return modality
    for modality, schema in schemas.items():
        named_by_column = schema.feature is not None and not _is_feature_class(schema.feature)
        if named_by_column and schema.column in features:
            return modality
    return next(modality for modality, schema in schemas.items() if schema.column is None)


def _data_column(dataset: datasets.Dataset, schema: DataSchema, column: str | None) -> str:
    """The dataset column holding the data: the one given, else the first of the schema's
    feature class, else the schema's column name."""
    if column is not None:
        return column
    if _is_feature_class(schema.feature):
        for name, feature in dataset.features.items():
            if feature_name(feature) == schema.feature:
                return name
    return schema.column


def categorical_columns(features: datasets.Features) -> list[str]:
    return [
        name
        for name, feature in features.items()
        if isinstance(feature, datasets.ClassLabel)
        or (
            isinstance(feature, datasets.Value)
            and feature.dtype in ("string", "large_string", "bool")
        )
    ]


def to_schema(
    dataset: datasets.Dataset, schema: DataSchema, column: str | None, label_column: str | None
) -> datasets.Dataset:
    """Rename the data column (and label) to the schema's names, drop the rest, and decode on
    access with the schema's hook (``set_transform``, lazily, so big datasets are not
    rewritten). Whole-row schemas keep the dataset as it is."""
    if schema.column is None:
        return dataset
    data_column = _data_column(dataset, schema, column)
    keep = {data_column: schema.column}
    if schema.label is not None and (label_column or schema.label in dataset.features):
        keep[label_column or schema.label] = schema.label
    feature = dataset.features.get(data_column)
    if schema.undecoded and feature_name(feature) == schema.feature and feature.decode:
        dataset = dataset.cast_column(data_column, type(feature)(decode=False))
    dataset = dataset.select_columns(list(keep)).rename_columns(
        {old: new for old, new in keep.items() if old != new}
    )
    if schema.decode is not None:
        dataset.set_transform(schema.decode)
    return dataset


def normalise(
    dataset: datasets.Dataset,
    source: str,
    name: str | None,
    format: str | None,
    column: str | None,
    label_column: str | None,
    modality: str | None,
) -> datasets.Dataset:
    """A hub / files dataset in its modality's schema, with its metadata (``metadata``)."""
    for wanted in (column, label_column):
        if wanted is not None and wanted not in dataset.features:
            raise ValueError(
                f"column {wanted!r} not in dataset; columns: {', '.join(dataset.features)}"
            )
    modality = modality_name(modality) or infer_modality(dataset, column)
    if modality not in modalities():
        raise ValueError(f"unknown modality {modality!r}; allowed: {', '.join(modalities())}")
    schema = schema_for(modality)
    whole_rows = schema.column is None  # a table: its columns are the data, the label its target
    categorical = categorical_columns(dataset.features) if whole_rows else []
    return describe(
        to_schema(dataset, schema, column, label_column),
        source=source,
        name=name or format,
        modality=modality,
        categorical_columns=categorical,
        target_column=label_column if whole_rows else None,
    )
