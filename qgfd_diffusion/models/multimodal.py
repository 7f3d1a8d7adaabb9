"""One shared denoiser for several modalities: adapters in, shared latent space, backbone out.

Dimension legend: B batch, L latent tokens, C shared latent width (``latent_dim``), Ca an
adapter's latent width, Lc condition tokens, Dc condition width (``cond_dim``).

A ``SharedQGFDDiffusionModel`` holds the named modalities (each a frozen adapter with fixed maps
into the shared widths), encodes raw batches into the shared space, computes the loss through
THE training objective (``schedules.DiffusionObjective``) and saves / loads itself as
safetensors + JSON (``backbone/``, ``scheduler/``, ``adapters/``: the layout of a diffusers
pipeline folder, see ``sample.pipeline.QGFDPipeline``). Sampling lives in
``qgfd_diffusion.sample``; seed 001's method names in ``qgfd_diffusion.compat``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..adapters.base import ModalityAdapter
from ..adapters.registry import load_adapter
from ..compat.seed001 import Seed001Methods, seed_adapters
from ..latents import LatentBatch, LatentLayout
from ..schedules.config import NoiseScheduleConfig, load_noise_schedule
from ..schedules.objective import DiffusionObjective, TokenLoss
from .adapter_set import ADAPTERS_FOLDER, AdapterSet
from .backbone import CONFIG_FILE, QGFDDiffusionBackbone
from .config import DiffusionConfig
from .latent_space import FixedLatentEmbedding

LEGACY_MANIFEST = "qgfd_model.json"  # the modality list of folders written before AdapterSet
BACKBONE_FOLDER = "backbone"


class SharedQGFDDiffusionModel(Seed001Methods, nn.Module):
    """A ``QGFDDiffusionBackbone`` shared by named modalities, each with its frozen adapter.

    ``adapters={"name": adapter, ...}`` takes any adapters; seed 001's
    ``SharedQGFDDiffusionModel(cfg, text_hf_name=..., image_hf_name=...)`` builds its T5 text +
    ViT image pair. Each modality gets a modality id (its position), a fixed map of its latents
    into the shared width and, where it has conditions, a fixed map of its condition tokens into
    ``cond_dim``. ``cfg.num_modalities=None`` makes room for the adapters given here.
    """

    def __init__(
        self,
        shared_cfg: DiffusionConfig,
        text_hf_name: str | None = None,
        image_hf_name: str | None = None,
        *,
        adapters: Mapping[str, ModalityAdapter] | None = None,
        backbone: QGFDDiffusionBackbone | None = None,
    ):
        super().__init__()
        named = {**seed_adapters(text_hf_name, image_hf_name), **(adapters or {})}
        cfg = shared_cfg.with_modalities(len(named))
        if cfg.schedule is None:
            raise ValueError(
                "the model's config has no noise schedule (schedule=None): give it a "
                "NoiseScheduleConfig (a backbone's own config describes the network only)"
            )
        self.cfg = cfg
        self.backbone = backbone or QGFDDiffusionBackbone(cfg)
        self.objective = self.training_objective()
        self.adapters = nn.ModuleDict()
        self.latent_maps = nn.ModuleDict()
        self.cond_maps = nn.ModuleDict()
        self.layouts: dict[str, LatentLayout] = {}
        for name, adapter in named.items():
            self.add_modality(name, adapter)

    def training_objective(self, min_snr_gamma: float | None = None) -> DiffusionObjective:
        """THE training objective for this model's schedule and network (self-conditioning)."""
        return DiffusionObjective(self.cfg.schedule, min_snr_gamma, self.cfg.self_conditioning)

    @property
    def schedule(self) -> NoiseScheduleConfig:
        return self.cfg.schedule

    @property
    def scheduler(self):
        """The DDPM training scheduler of the model's noise schedule."""
        return self.objective.scheduler

    # -- modalities -------------------------------------------------------------------------

    def add_modality(self, name: str, adapter: ModalityAdapter) -> None:
        if name in self.adapters:
            raise ValueError(f"modality {name!r} is already registered")
        if len(self.adapters) >= self.cfg.num_modalities:
            raise ValueError(
                f"the backbone has num_modalities={self.cfg.num_modalities}; cannot add {name!r} "
                f"next to {list(self.adapters)}"
            )
        seed = len(self.adapters)
        self.adapters[name] = adapter
        self.latent_maps[name] = FixedLatentEmbedding(adapter.latent_dim, self.cfg.latent_dim, seed)
        width = adapter.condition_dim
        if width is not None and self.cfg.cond_dim is not None and width <= self.cfg.cond_dim:
            self.cond_maps[name] = FixedLatentEmbedding(width, self.cfg.cond_dim, seed)

    def modality_id(self, name: str) -> int:
        if name not in self.adapters:
            raise ValueError(f"unknown modality {name!r}; this model has {list(self.adapters)}")
        return list(self.adapters).index(name)

    # -- encode / decode --------------------------------------------------------------------

    def to_shared(self, name: str, batch: LatentBatch) -> LatentBatch:
        """An adapter's ``LatentBatch`` -> the shared latent and condition widths."""
        self.modality_id(name)
        latents = self.latent_maps[name](batch.latents)  # [B, L, C]
        cond_tokens, cond_mask = batch.cond_tokens, batch.cond_mask
        if cond_tokens is not None:
            cond_tokens = self.shared_condition(name, cond_tokens.to(latents.dtype))
        self._remember_layout(name, batch.layout)
        return replace(batch, latents=latents, cond_tokens=cond_tokens, cond_mask=cond_mask)

    def shared_condition(self, name: str, cond_tokens: Tensor) -> Tensor:
        """An adapter's condition tokens [B, Lc, Dc_adapter] -> the backbone's [B, Lc, Dc]."""
        if name not in self.cond_maps:
            raise ValueError(
                f"modality {name!r} gave condition tokens of width {cond_tokens.shape[-1]}, but "
                f"the backbone's cond_dim is {self.cfg.cond_dim} (None: no cross-attention); "
                "set model.cond_dim to at least that width"
            )
        return self.cond_maps[name](cond_tokens)  # [B, Lc, Dc]

    def encode(self, name: str, raw: Any) -> LatentBatch:
        """Raw batch -> shared-space ``LatentBatch`` (frozen adapter, no gradient)."""
        return self.to_shared(name, self.adapters[name].encode(raw))

    def decode(self, name: str, latents: Tensor, mask: Tensor | None = None) -> Any:
        """Shared-space latents [B, L, C] -> the adapter's raw output (None if it cannot)."""
        adapter = self.adapters[name]
        if not adapter.can_decode:
            return None
        return adapter.decode(self.latent_maps[name].inverse(latents), mask)

    # -- loss -------------------------------------------------------------------------------

    def token_loss(self, name: str) -> TokenLoss | None:
        """The adapter's ``token_loss`` (e.g. text's rounding term) on shared-space x0_hat;
        None where the adapter adds none, so the training step skips the x0 estimate."""
        adapter, latent_map = self.adapters[name], self.latent_maps[name]
        if not adapter.has_token_loss:
            return None
        return lambda x0_hat, batch: adapter.token_loss(latent_map.inverse(x0_hat), batch)

    def loss(
        self,
        name: str,
        raw_or_latents: Any,
        *,
        generator: torch.Generator | None = None,
        cond_dropout: float | None = None,
        min_snr_gamma: float | None = None,
    ) -> Tensor:
        """The diffusion loss of modality ``name`` on a raw batch or a shared-space batch."""
        batch = (
            raw_or_latents
            if isinstance(raw_or_latents, LatentBatch)
            else self.encode(name, raw_or_latents)
        )
        objective = self.objective
        if min_snr_gamma is not None:
            objective = self.training_objective(min_snr_gamma)
        dropout = self.cfg.cond_dropout_prob if cond_dropout is None else cond_dropout
        return objective(
            self.backbone,
            batch,
            generator=generator,
            modality=self.modality_id(name),
            cond_dropout=dropout if self.training else 0.0,
            token_loss=self.token_loss(name),
        ).loss

    def _remember_layout(self, name: str, layout: LatentLayout) -> None:
        known = self.layouts.get(name)
        if known is None or layout.num_tokens > known.num_tokens:
            self.layouts[name] = layout

    # -- save / load (safetensors + JSON) ---------------------------------------------------

    def adapter_set(self) -> AdapterSet:
        """The adapters and their layouts as one pipeline component."""
        return AdapterSet.from_adapters(self.adapters, self.layouts)

    def save_pretrained(
        self, directory: str | Path, backbone: QGFDDiffusionBackbone | None = None
    ) -> Path:
        """backbone/ (diffusers format), scheduler/, adapters/ (an ``AdapterSet``).

        ``backbone`` saves other weights in place of the live ones (e.g. the EMA copy).
        """
        directory = Path(directory)
        (backbone or self.backbone).save_pretrained(directory / BACKBONE_FOLDER)
        self.schedule.save_pretrained(directory)
        self.adapter_set().save_pretrained(directory / ADAPTERS_FOLDER)
        return directory

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, backbone_folder: str = BACKBONE_FOLDER
    ) -> SharedQGFDDiffusionModel:
        """Load a folder written by ``save_pretrained`` (or a ``QGFDPipeline`` folder);
        ``backbone_folder`` picks other saved weights of the same network (e.g.
        ``backbone_ema``). Folders from before ``scheduler/`` and ``adapters/config.json``
        existed load too (schedule from the backbone's config.json, modalities from
        ``qgfd_model.json``)."""
        directory = Path(directory)
        backbone = QGFDDiffusionBackbone.from_pretrained(directory / backbone_folder)
        schedule = load_noise_schedule(directory, directory / BACKBONE_FOLDER / CONFIG_FILE)
        return cls.from_parts(backbone, schedule, _load_adapter_set(directory))

    @classmethod
    def from_parts(
        cls, backbone: QGFDDiffusionBackbone, schedule: NoiseScheduleConfig, adapters: AdapterSet
    ) -> SharedQGFDDiffusionModel:
        """A model around loaded parts (a pipeline's components)."""
        cfg = backbone.network_config.with_schedule(schedule)
        model = cls(cfg, adapters=dict(adapters.adapters), backbone=backbone)
        model.layouts = adapters.layouts
        return model


def _load_adapter_set(directory: Path) -> AdapterSet:
    """adapters/ as an ``AdapterSet``; folders written before it read ``qgfd_model.json``."""
    if (directory / ADAPTERS_FOLDER / AdapterSet.config_name).is_file():
        return AdapterSet.from_pretrained(directory / ADAPTERS_FOLDER)
    manifest_file = directory / LEGACY_MANIFEST
    if not manifest_file.is_file():
        raise FileNotFoundError(
            f"not a saved qgfd model (no {ADAPTERS_FOLDER}/{AdapterSet.config_name} and no "
            f"{LEGACY_MANIFEST}): {directory}"
        )
    manifest = json.loads(manifest_file.read_text())
    adapters = {
        name: load_adapter(directory / ADAPTERS_FOLDER / name) for name in manifest["modalities"]
    }
    layouts = {k: LatentLayout.from_dict(v) for k, v in manifest["layouts"].items()}
    return AdapterSet.from_adapters(adapters, layouts)
