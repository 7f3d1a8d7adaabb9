"""Seed 001's spellings on the shared model: its constructor's hub names and its loss methods.

Dimension legend: B batch, L tokens, H/W image size.

``SharedQGFDDiffusionModel(cfg, text_hf_name=..., image_hf_name=...)`` builds seed 001's T5
text + ViT image pair (``seed_adapters``), and ``text_diffusion_loss`` /
``image_diffusion_loss`` are its per-modality loss names. They only translate: the loss is the
model's ``loss``, i.e. THE training objective. Nothing here imports the models (they import it).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def seed_adapters(text_hf_name: str | None, image_hf_name: str | None) -> dict[str, Any]:
    """Seed 001's pair: a T5 text adapter and a ViT image adapter, from hub ids or folders."""
    from ..adapters import TextAdapter, TextAdapterConfig, ViTImageAdapter, ViTImageConfig

    adapters: dict[str, Any] = {}
    if text_hf_name is not None:
        adapters["text"] = TextAdapter(TextAdapterConfig(encoder_name_or_path=text_hf_name))
    if image_hf_name is not None:
        adapters["image"] = ViTImageAdapter(ViTImageConfig(encoder_name_or_path=image_hf_name))
    return adapters


def check_schedule(schedule: Any, ours: Any) -> None:
    """A seed-style ``DDPMBetaSchedule`` (or scheduler) must describe the model's own schedule."""
    if schedule is None:
        return
    theirs = getattr(schedule, "scheduler", schedule).config
    for key in ("num_train_timesteps", "beta_schedule", "prediction_type"):
        if theirs[key] != ours.config[key]:
            raise ValueError(
                f"schedule {key}={theirs[key]!r} differs from the model's {ours.config[key]!r}"
            )


class Seed001Methods:
    """Seed 001's loss names on ``SharedQGFDDiffusionModel`` (text + image on one backbone)."""

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

    def _seed_loss(self, name: str, batch, schedule, generator) -> Tensor:
        check_schedule(schedule, self.scheduler)
        return self.loss(name, self.to_shared(name, batch), generator=generator)
