"""Everything one training phase needs before its first step: data, adapter, fitted statistics.

A phase's adapter is built from its config, its encoder resolved (a hub id, a local folder, or
``tiny:KIND``, a tiny random encoder built offline into the run folder), its latent statistics
measured on training data and its decoder head fitted by reconstruction. All of this is frozen
before the diffusion loss ever sees the adapter (DESIGN.md section 7).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import datasets
import torch

from ..adapters import ModalityAdapter, TabularAdapter, build_tiny_encoder, get_adapter_class
from .config import DataConfig, PhaseConfig
from .data import (
    dataset_metadata,
    infinite_batches,
    load_dataset_source,
    make_dataloader,
    split_train_validation,
)

TINY_PREFIX = "tiny:"
TOKENIZER_TEXTS = 5000  # texts a tiny tokenizer is trained on
STATS_BATCHES = 8  # batches the latent statistics are measured on
FIT_BATCHES = 64  # distinct batches a decoder head is fitted on (then cycled)
FIT_SEED_OFFSET = 7919  # the fitting loader's seed, apart from the training loader's


@dataclass
class PhaseData:
    train: datasets.Dataset
    validation: datasets.Dataset
    modality: str  # the adapters' data modality: text, image, audio, video, tabular


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
    dataset = load_source(data, seed)
    train, validation = split_train_validation(dataset, data.validation_fraction, seed)
    return PhaseData(train, validation, dataset_metadata(dataset)["modality"])


def build_phase_adapter(
    phase: PhaseConfig, data: PhaseData, run_dir: Path, seed: int
) -> ModalityAdapter:
    """Build, measure and fit the phase's adapter (deterministic given ``seed``)."""
    adapter_class = get_adapter_class(phase.adapter)
    options = dict(phase.adapter_options)
    if adapter_class is TabularAdapter:
        categorical = dataset_metadata(data.train).get("categorical_columns") or []
        adapter = TabularAdapter.from_table(data.train.to_pandas(), categorical, **options)
    else:
        if "encoder_name_or_path" in options:
            options["encoder_name_or_path"] = resolve_encoder(
                options["encoder_name_or_path"], run_dir, seed, data.train
            )
        adapter = adapter_class(adapter_class.config_class.from_dict(options))
    fit_adapter(adapter, phase, data, seed)
    return adapter


def resolve_encoder(name: str, run_dir: Path, seed: int, train: datasets.Dataset) -> str:
    """``tiny:KIND`` -> a tiny random encoder saved under the run folder (built once)."""
    if not name.startswith(TINY_PREFIX):
        return name
    kind = name[len(TINY_PREFIX) :]
    folder = run_dir / "encoders" / kind
    if not (folder / "config.json").is_file():
        texts = None
        if "text" in train.column_names:
            texts = train.select(range(min(TOKENIZER_TEXTS, len(train))))["text"]
        build_tiny_encoder(kind, folder, seed=seed, texts=texts)
    return str(folder)


def fit_adapter(adapter: ModalityAdapter, phase: PhaseConfig, data: PhaseData, seed: int) -> None:
    """Latent statistics, then the decoder head (reconstruction loss), on training batches."""
    loader = make_dataloader(
        data.train, data.modality, phase.batch_size, seed=seed + FIT_SEED_OFFSET
    )
    batches = (adapter.prepare_batch(raw) for raw in infinite_batches(loader))
    with torch.random.fork_rng(devices=[]):  # fitting leaves the global RNG as it found it
        torch.manual_seed(seed + FIT_SEED_OFFSET)
        adapter.fit_latent_stats(list(islice(batches, STATS_BATCHES)))
        if adapter.decoder_parameters() and phase.fit_steps > 0:
            # fit_decoder cycles over the batches it is given: a fresh batch per step, up to a cap
            adapter.fit_decoder(
                list(islice(batches, min(phase.fit_steps, FIT_BATCHES))), steps=phase.fit_steps
            )
