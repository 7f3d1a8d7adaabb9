"""One shared denoiser for several modalities: adapters in, shared latent space, backbone out.

Dimension legend: B batch, L latent tokens, C shared latent width (``latent_dim``), Ca an
adapter's latent width, Lc condition tokens, Dc condition width (``cond_dim``).

Symbols (Ho et al. 2020 DDPM, eq. 4 and 14):
    x0      clean latents from the adapter, normalised, embedded into width C
    t       timestep ~ U{0, ..., T-1};  eps ~ N(0, I)
    x_t     sqrt(a_bar_t) x0 + sqrt(1 - a_bar_t) eps
    target  eps, v or x0 (``prediction_type``);  loss = || f_theta(x_t, t, c) - target ||^2

The training randomness (t, eps, condition dropout) is drawn by ``draw_training_noise`` from an
explicit generator, so the trainer can draw it for the global batch and give each process its
shard: a data-parallel run then matches a single-process run at the same global batch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers.utils.torch_utils import randn_tensor
from torch import Tensor, nn

from ..adapters.base import ModalityAdapter, load_adapter
from ..latents import LatentBatch, LatentLayout
from ..schedules.training import diffusion_loss, make_training_scheduler, training_target
from .backbone import QGFDDiffusionBackbone
from .config import DiffusionConfig
from .latent_space import FixedLatentEmbedding

MANIFEST = "qgfd_model.json"


@dataclass
class TrainingNoise:
    """The random draws of one training batch: t [B] long, eps [B, L, C], drop [B] bool or None."""

    t: Tensor
    noise: Tensor
    drop_cond: Tensor | None

    def shard(self, index: slice) -> TrainingNoise:
        drop = None if self.drop_cond is None else self.drop_cond[index]
        return TrainingNoise(self.t[index], self.noise[index], drop)


def draw_training_noise(
    scheduler,
    shape: tuple[int, ...],
    *,
    generator: torch.Generator | None,
    device: torch.device,
    dtype: torch.dtype,
    cond_dropout: float = 0.0,
    has_condition: bool = False,
) -> TrainingNoise:
    """t, eps and the classifier-free-guidance drop mask for a batch of ``shape`` [B, L, C]."""
    B = shape[0]
    gen_device = generator.device if generator is not None else torch.device("cpu")
    T = scheduler.config.num_train_timesteps
    t = torch.randint(0, T, (B,), generator=generator, device=gen_device).to(device)
    noise = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
    drop = None
    if has_condition:
        drop = (torch.rand(B, generator=generator, device=gen_device) < cond_dropout).to(device)
    return TrainingNoise(t, noise, drop)


def denoising_loss(
    backbone: nn.Module,
    scheduler,
    batch: LatentBatch,
    draws: TrainingNoise,
    *,
    modality: int,
    min_snr_gamma: float | None = None,
) -> Tensor:
    """The diffusion loss of ``backbone`` (plain or DDP-wrapped) on one shared-space batch."""
    x0 = batch.latents  # [B, L, C]
    x_t = scheduler.add_noise(x0, draws.noise, draws.t)
    prediction = backbone(
        x_t,
        draws.t,
        batch.cond_tokens,
        batch.cond_mask,
        layout=batch.layout,
        latent_mask=batch.mask,
        modality=modality,
        force_drop_cond=draws.drop_cond,
    )
    target = training_target(scheduler, x0, draws.noise, draws.t)
    return diffusion_loss(prediction, target, draws.t, scheduler, min_snr_gamma, batch.mask)


@dataclass
class SampleOutput:
    """latents: shared space [B, L, C]; adapter_latents: the adapter's [B, L, Ca];
    decoded: the adapter's raw output (images, texts, ...) or None where it cannot decode."""

    latents: Tensor
    adapter_latents: Tensor
    layout: LatentLayout
    mask: Tensor | None
    decoded: Any


class SharedQGFDDiffusionModel(nn.Module):
    """A ``QGFDDiffusionBackbone`` shared by named modalities, each with its frozen adapter.

    ``SharedQGFDDiffusionModel(cfg, text_hf_name=..., image_hf_name=...)`` builds the seed-001
    text (T5) + image (ViT) pair; ``adapters={"name": adapter, ...}`` takes any adapters. Each
    modality gets a modality id (its position), a fixed map of its latents into the shared width
    and, where it has conditions, a fixed map of its condition tokens into ``cond_dim``.
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
        self.cfg = shared_cfg
        self.backbone = backbone or QGFDDiffusionBackbone.from_diffusion_config(shared_cfg)
        self.scheduler = make_training_scheduler(shared_cfg)
        self.adapters = nn.ModuleDict()
        self.latent_maps = nn.ModuleDict()
        self.cond_maps = nn.ModuleDict()
        self.layouts: dict[str, LatentLayout] = {}
        for name, adapter in _seed_adapters(shared_cfg, text_hf_name, image_hf_name).items():
            self.add_modality(name, adapter)
        for name, adapter in (adapters or {}).items():
            self.add_modality(name, adapter)

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

    # -- encode / loss ----------------------------------------------------------------------

    def to_shared(self, name: str, batch: LatentBatch) -> LatentBatch:
        """An adapter's ``LatentBatch`` -> the shared latent and condition widths."""
        self.modality_id(name)
        latents = self.latent_maps[name](batch.latents)  # [B, L, C]
        cond_tokens, cond_mask = batch.cond_tokens, batch.cond_mask
        if cond_tokens is not None:
            if name not in self.cond_maps:
                raise ValueError(
                    f"modality {name!r} gave condition tokens of width {cond_tokens.shape[-1]}, "
                    "but "
                    f"the backbone's cond_dim is {self.cfg.cond_dim} (None: no cross-attention); "
                    "set model.cond_dim to at least that width"
                )
            cond_tokens = self.cond_maps[name](cond_tokens.to(latents.dtype))  # [B, Lc, Dc]
        self._remember_layout(name, batch.layout)
        return LatentBatch(
            latents=latents,
            layout=batch.layout,
            mask=batch.mask,
            cond_tokens=cond_tokens,
            cond_mask=cond_mask,
        )

    def encode(self, name: str, raw: Any) -> LatentBatch:
        """Raw batch -> shared-space ``LatentBatch`` (frozen adapter, no gradient)."""
        return self.to_shared(name, self.adapters[name].encode(raw))

    def loss(
        self,
        name: str,
        raw_or_latents: Any,
        *,
        generator: torch.Generator | None = None,
        cond_dropout: float | None = None,
        min_snr_gamma: float | None = None,
    ) -> Tensor:
        batch = (
            raw_or_latents
            if isinstance(raw_or_latents, LatentBatch)
            else self.encode(name, raw_or_latents)
        )
        x0 = batch.latents
        dropout = self.cfg.cond_dropout_prob if cond_dropout is None else cond_dropout
        draws = draw_training_noise(
            self.scheduler,
            tuple(x0.shape),
            generator=generator,
            device=x0.device,
            dtype=x0.dtype,
            cond_dropout=dropout if self.training else 0.0,
            has_condition=batch.cond_tokens is not None,
        )
        return denoising_loss(
            self.backbone,
            self.scheduler,
            batch,
            draws,
            modality=self.modality_id(name),
            min_snr_gamma=min_snr_gamma,
        )

    # -- seed-001 names ---------------------------------------------------------------------

    def text_diffusion_loss(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        schedule=None,
        *,
        cond_input_ids: Tensor | None = None,
        cond_attention_mask: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Diffusion loss on tokenized text; an optional prompt conditions it (never the text)."""
        adapter = self.adapters["text"]
        batch = adapter.encode_ids(input_ids, attention_mask)
        if cond_input_ids is not None:
            prompt = adapter.encode_ids(cond_input_ids, cond_attention_mask)
            batch.cond_tokens, batch.cond_mask = prompt.latents, prompt.mask
        return self._seed_loss("text", batch, schedule, generator)

    def image_diffusion_loss(
        self,
        pixel_values: Tensor,
        schedule=None,
        labels: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Diffusion loss on images [B, 3, H, W] in [0, 1] (optionally class-conditional)."""
        raw = pixel_values if labels is None else {"images": pixel_values, "labels": labels}
        return self._seed_loss("image", self.adapters["image"].encode(raw), schedule, generator)

    def _seed_loss(self, name: str, batch: LatentBatch, schedule, generator) -> Tensor:
        self._check_schedule(schedule)
        return self.loss(name, self.to_shared(name, batch), generator=generator)

    def _check_schedule(self, schedule) -> None:
        """A seed-style ``DDPMBetaSchedule`` must describe the model's own noise schedule."""
        if schedule is None:
            return
        theirs = getattr(schedule, "scheduler", schedule).config
        ours = self.scheduler.config
        for key in ("num_train_timesteps", "beta_schedule", "prediction_type"):
            if theirs[key] != ours[key]:
                raise ValueError(
                    f"schedule {key}={theirs[key]!r} differs from the model's {ours[key]!r}"
                )

    # -- sampling ---------------------------------------------------------------------------

    @torch.no_grad()
    def sample(
        self,
        name: str,
        num_samples: int,
        *,
        condition: Any = None,
        layout: LatentLayout | None = None,
        generator: torch.Generator | None = None,
        num_inference_steps: int = 50,
        eta: float = 0.0,
        guidance_scale: float = 1.0,
        scheduler=None,
        decode: bool = True,
        progress: bool = False,
    ) -> SampleOutput:
        """Generate ``num_samples`` of modality ``name`` (DDIM by default, any diffusers scheduler).

        condition: raw condition for the adapter (prompts, class labels), one per sample.
        layout: token layout to sample (default: the largest seen in training or encoding).
        """
        from ..sample.sampler import sample_latents

        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        adapter = self.adapters[name]
        layout = layout or self.layouts.get(name)
        if layout is None:
            raise ValueError(
                f"no layout known for {name!r}: pass layout= (e.g. the sequence length)"
            )
        cond_tokens = cond_mask = None
        if condition is not None:
            cond_tokens, cond_mask = adapter.encode_condition(condition)
            cond_tokens = self.cond_maps[name](cond_tokens.to(self.backbone.dtype))
        was_training = self.backbone.training
        self.backbone.eval()
        latents = sample_latents(
            self.backbone,
            scheduler,
            shape=(num_samples, layout.num_tokens, self.cfg.latent_dim),
            generator=generator,
            num_inference_steps=num_inference_steps,
            eta=eta,
            guidance_scale=guidance_scale,
            cond_tokens=cond_tokens,
            cond_mask=cond_mask,
            layout=layout,
            modality=self.modality_id(name),
            progress=progress,
        )
        self.backbone.train(was_training)
        adapter_latents = self.latent_maps[name].inverse(latents)
        decoded = adapter.decode(adapter_latents) if decode and adapter.can_decode else None
        return SampleOutput(latents, adapter_latents, layout, None, decoded)

    def _remember_layout(self, name: str, layout: LatentLayout) -> None:
        known = self.layouts.get(name)
        if known is None or layout.num_tokens > known.num_tokens:
            self.layouts[name] = layout

    # -- save / load (safetensors + JSON) ---------------------------------------------------

    def save_pretrained(
        self, directory: str | Path, backbone: QGFDDiffusionBackbone | None = None
    ) -> Path:
        """backbone/ (diffusers format), adapters/<name>/, and a JSON manifest.

        ``backbone`` saves other weights in place of the live ones (e.g. the EMA copy).
        """
        directory = Path(directory)
        (backbone or self.backbone).save_pretrained(directory / "backbone")
        for name, adapter in self.adapters.items():
            adapter.save_pretrained(directory / "adapters" / name)
        manifest = {
            "modalities": list(self.adapters),
            "layouts": {k: v.to_dict() for k, v in self.layouts.items()},
        }
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=2))
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> SharedQGFDDiffusionModel:
        directory = Path(directory)
        manifest_file = directory / MANIFEST
        if not manifest_file.is_file():
            raise FileNotFoundError(f"not a saved qgfd model (no {MANIFEST}): {directory}")
        manifest = json.loads(manifest_file.read_text())
        backbone = QGFDDiffusionBackbone.from_pretrained(directory / "backbone")
        adapters = {
            name: load_adapter(directory / "adapters" / name) for name in manifest["modalities"]
        }
        model = cls(backbone.diffusion_config, adapters=adapters, backbone=backbone)
        model.layouts = {k: LatentLayout.from_dict(v) for k, v in manifest["layouts"].items()}
        return model


def _seed_adapters(
    cfg: DiffusionConfig, text_hf_name: str | None, image_hf_name: str | None
) -> dict[str, ModalityAdapter]:
    """Seed 001's pair: a T5 text adapter and a ViT image adapter, from hub ids or folders."""
    from ..adapters import TextAdapter, TextAdapterConfig, ViTImageAdapter, ViTImageConfig

    adapters: dict[str, ModalityAdapter] = {}
    if text_hf_name is not None:
        adapters["text"] = TextAdapter(TextAdapterConfig(encoder_name_or_path=text_hf_name))
    if image_hf_name is not None:
        adapters["image"] = ViTImageAdapter(ViTImageConfig(encoder_name_or_path=image_hf_name))
    return adapters
