"""Prototype 001's shared model: its constructor's hub names and its per-modality loss names.

Dimension legend: B batch, L tokens, H/W image size.

Prototype 001 (the diffusion framework README) builds its shared model as
``SharedQGFDDiffusionModel(cfg, text_hf_name=..., image_hf_name=...)``, a T5 text + ViT image
pair, and trains it with ``text_diffusion_loss`` / ``image_diffusion_loss``. The subclass here
adds exactly those names to the library's ``models.SharedQGFDDiffusionModel``; they only
translate: the loss is the model's ``loss``, i.e. THE training objective.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..adapters import (
    ModalityAdapter,
    TextAdapter,
    TextAdapterConfig,
    ViTImageAdapter,
    ViTImageConfig,
)
from ..models.backbone import QGFDDiffusionBackbone
from ..models.config import DiffusionConfig
from ..models.multimodal import SharedQGFDDiffusionModel as _LibrarySharedModel


def prototype_adapters(text_hf_name: str | None, image_hf_name: str | None) -> dict[str, Any]:
    """Prototype 001's pair: a T5 text adapter and a ViT image adapter, from hub ids or folders."""
    adapters: dict[str, Any] = {}
    if text_hf_name is not None:
        adapters["text"] = TextAdapter(TextAdapterConfig(encoder_name_or_path=text_hf_name))
    if image_hf_name is not None:
        adapters["image"] = ViTImageAdapter(ViTImageConfig(encoder_name_or_path=image_hf_name))
    return adapters


def check_schedule(schedule: Any, ours: Any) -> None:
    """A prototype-style ``DDPMBetaSchedule`` (or scheduler) must describe the model's own."""
    if schedule is None:
        return
    theirs = getattr(schedule, "scheduler", schedule).config
    for key in ("num_train_timesteps", "beta_schedule", "prediction_type"):
        if theirs[key] != ours.config[key]:
            raise ValueError(
                f"schedule {key}={theirs[key]!r} differs from the model's {ours.config[key]!r}"
            )


class SharedQGFDDiffusionModel(_LibrarySharedModel):
    """The library's shared model with prototype 001's constructor and loss names.

    ``text_hf_name`` / ``image_hf_name`` add its T5 text and ViT image adapters (modalities
    ``text`` and ``image``, in that order) before any ``adapters`` given.
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
        named = {**prototype_adapters(text_hf_name, image_hf_name), **(adapters or {})}
        super().__init__(shared_cfg, adapters=named, backbone=backbone)

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
        """Diffusion loss on tokenized text [B, L]; an optional prompt conditions it (never the
        text itself: conditioning on the target leaks it, DESIGN.md 7)."""
        adapter = self.adapters["text"]
        batch = adapter.encode_ids(input_ids, attention_mask)
        if cond_input_ids is not None:
            prompt = adapter.encode_ids(cond_input_ids, cond_attention_mask)
            batch.cond_tokens, batch.cond_mask = prompt.latents, prompt.mask
        return self._prototype_loss("text", batch, schedule, generator)

    def image_diffusion_loss(
        self,
        pixel_values: Tensor,
        schedule=None,
        labels: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Diffusion loss on images [B, 3, H, W] in [0, 1] (optionally class-conditional)."""
        raw = pixel_values if labels is None else {"images": pixel_values, "labels": labels}
        batch = self.adapters["image"].encode(raw)
        return self._prototype_loss("image", batch, schedule, generator)

    def _prototype_loss(self, name: str, batch, schedule, generator) -> Tensor:
        check_schedule(schedule, self.scheduler)
        return self.loss(name, self.to_shared(name, batch), generator=generator)
