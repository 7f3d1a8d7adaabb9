"""Everything one training phase needs before its first step: data, adapter, fitted statistics.

A phase's adapter is built from its config, its encoder resolved (a hub id, a local folder, or
``tiny:KIND``, a tiny random encoder built offline into the run folder), its latent statistics
measured on training data and its decoder head fitted by reconstruction. All of this is frozen
before the diffusion loss ever sees the adapter (DESIGN.md section 7).

None of it is inside a checkpoint until the phase's first checkpoint, so a resumed run redoes it,
and must redo it bit for bit: building, measuring and fitting draw only from the phase's own
seeded RNG stream (never the global one), and a tiny encoder is built into a temporary folder
and renamed, so a kill mid-build never leaves a half-built encoder for the next run to reuse.

``check_sources`` runs before any phase: it loads every phase's data and looks up every
encoder that is not built here, saying what it waits for (the hub, a large file), so a missing
dataset or model stops the run before the first step rather than after a phase has trained.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from itertools import islice
from pathlib import Path

import datasets
import torch

from ..adapters import ModalityAdapter, TabularAdapter, build_tiny_encoder, get_adapter_class
from ..adapters.helpers import resolve_source
from ..adapters.tiny import TINY_PREFIX, TOKENIZER_TEXTS
from ..configio import ConfigError
from ..data.loader import infinite_batches, make_dataloader
from ..data.metadata import dataset_metadata
from ..data.splits import PhaseData
from .config import PhaseConfig

STATS_BATCHES = 8  # batches the latent statistics are measured on
FIT_BATCHES = 64  # distinct batches a decoder head is fitted on (then cycled)
FIT_SEED_OFFSET = 7919  # the fitting loader's seed, apart from the training loader's
BUILD_SEED_OFFSET = 104_729  # the adapter's initial weights (e.g. a rounding head)
ENCODERS_FOLDER = "encoders"


def build_phase_adapter(
    phase: PhaseConfig, data: PhaseData, run_dir: Path, seed: int
) -> ModalityAdapter:
    """Build, measure and fit the phase's adapter: a function of ``seed`` alone, since every
    random draw comes from seeded streams forked off the global RNG (left as it was)."""
    adapter_class = get_adapter_class(phase.adapter)
    options = dict(phase.adapter_options)
    if "encoder_name_or_path" in options:
        options["encoder_name_or_path"] = resolve_encoder(
            options["encoder_name_or_path"], run_dir, seed, data.train
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + BUILD_SEED_OFFSET)
        if adapter_class is TabularAdapter:
            categorical = dataset_metadata(data.train).get("categorical_columns") or []
            adapter = TabularAdapter.from_table(data.train.to_pandas(), categorical, **options)
        else:
            adapter = adapter_class(adapter_class.config_class.from_dict(options))
    fit_adapter(adapter, phase, data, seed)
    return adapter


def resolve_encoder(name: str, run_dir: Path, seed: int, train: datasets.Dataset) -> str:
    """``tiny:KIND`` -> a tiny random encoder saved under the run folder (built once).

    The build is atomic: into a temporary folder, then renamed, so ``encoders/KIND`` is either
    complete or absent. The build is deterministic (same texts and seed, same bytes), so a
    resumed run that builds it again gets the encoder the killed run had.
    """
    if not name.startswith(TINY_PREFIX):
        return name  # hub ids, folders, package:MODULE/PATH: the adapter resolves them
    kind = name[len(TINY_PREFIX) :]
    folder = Path(run_dir) / ENCODERS_FOLDER / kind
    if folder.is_dir():
        return str(folder)
    texts = None
    if "text" in train.column_names:
        limit = TOKENIZER_TEXTS.get(kind) or len(train)
        texts = train.select(range(min(limit, len(train))))["text"]
    for leftover in folder.parent.glob(f".tmp-{kind}-*"):  # builds a kill interrupted
        shutil.rmtree(leftover, ignore_errors=True)
    tmp = folder.with_name(f".tmp-{kind}-{os.getpid()}")
    build_tiny_encoder(kind, tmp, seed=seed, texts=texts)
    os.replace(tmp, folder)
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


def check_sources(
    phases: list[PhaseConfig], load_data: Callable[[PhaseConfig], PhaseData], report
) -> None:
    """Before any phase trains: load every phase's data (``load_data``, which caches) and look
    up every encoder that is neither ``tiny:`` nor a local folder, saying what each waits for.

    Raises ConfigError naming the phase's option when an encoder cannot be found.
    """
    for index, phase in enumerate(phases):
        if phase.data.source == "hub":
            name = phase.data.name
            report(f"phase {phase.name!r}: loading hub dataset {name!r} (the hub or its cache)")
        load_data(phase)
        encoder = phase.adapter_options.get("encoder_name_or_path")
        if not encoder or encoder.startswith(TINY_PREFIX):
            continue
        option = f"phases[{index}].adapter_options.encoder_name_or_path"
        try:
            encoder = resolve_source(encoder)
        except FileNotFoundError as error:
            raise ConfigError(option, str(error)) from None
        if not Path(encoder).is_dir():
            report(f"phase {phase.name!r}: looking up encoder {encoder!r} (the hub or its cache)")
            check_hub_model(encoder, option)


def check_hub_model(name: str, path: str) -> None:
    """Fetch (or find cached) the model's config.json only: small, and enough to know it
    exists and is reachable."""
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(name)
    except (OSError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(path, f"cannot load {name!r}: {first}") from None
