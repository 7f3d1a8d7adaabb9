"""Prototype 001's per-modality models and the ``create_qgfd_diffusion_model`` factory.

Dimension legend: B batch, L latent tokens, C shared latent width, Lc condition tokens.

Each per-modality model is a ``SharedQGFDDiffusionModel`` with a single modality, plus prototype
001's method names (``encode_text``, ``diffusion_forward``, ``sample``, ...). The loss is THE
training objective and sampling is ``qgfd_diffusion.sample``: these classes only name things.
Each class declares its modality, the prototype's default encoder and the adapter class it
builds, so the factory's lookup is derived from the classes themselves.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..adapters import (
    AudioAdapter,
    ModalityAdapter,
    PatchImageAdapter,
    PatchImageConfig,
    TabularAdapter,
    TextAdapter,
    VideoAdapter,
    VideoAdapterConfig,
    ViTImageAdapter,
    adapter_spec,
)
from ..latents import LatentBatch, LatentLayout
from ..models.config import DiffusionConfig
from ..models.multimodal import SharedQGFDDiffusionModel
from .ddpm import DDPMBetaSchedule
from .prototype001 import check_schedule


class QGFDDiffusionModel(SharedQGFDDiffusionModel):
    """A single-modality diffusion model: one adapter, one backbone."""

    modality: ClassVar[str] = "generic"
    default_encoder: ClassVar[str | None] = None  # the prototype's hub model for this modality
    adapter_class: ClassVar[type[ModalityAdapter] | None] = None  # around a pretrained encoder

    def __init__(self, cfg: DiffusionConfig, adapter: ModalityAdapter, **kwargs):
        super().__init__(cfg, adapters={self.modality: adapter}, **kwargs)

    @classmethod
    def build_adapter(cls, backbone_name: str | None, **options) -> ModalityAdapter:
        """The modality's adapter for ``create_qgfd_diffusion_model``: ``adapter_class`` around
        the encoder ``backbone_name`` (default: the prototype's), with adapter ``options``."""
        if cls.adapter_class is None:
            raise NotImplementedError(f"{cls.__name__} does not build adapters")
        encoder = backbone_name or cls.default_encoder
        config = cls.adapter_class.config_class(encoder_name_or_path=encoder, **options)
        return cls.adapter_class(config)

    @property
    def adapter(self) -> ModalityAdapter:
        return self.adapters[self.modality]

    def encode_raw(self, raw: Any) -> Tensor:
        """Raw batch -> clean latents x0 [B, L, C] in the shared space."""
        return self.encode(self.modality, raw).latents

    def diffusion_forward(
        self,
        x0_embeds: Tensor,
        t: Tensor,
        cond_tokens: Tensor | None = None,
        cond_mask: Tensor | None = None,
        schedule: DDPMBetaSchedule | None = None,
        *,
        latent_mask: Tensor | None = None,
        noise: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Loss of denoising x0 [B, L, C] at timesteps t [B]; cond_tokens in the adapter's
        condition space [B, Lc, Dc_adapter] (mapped to the backbone's width here)."""
        check_schedule(schedule, self.scheduler)
        if cond_tokens is not None:
            cond_tokens = self.shared_condition(self.modality, cond_tokens.to(x0_embeds.dtype))
        batch = LatentBatch(
            latents=x0_embeds,
            layout=self._layout_for(x0_embeds.shape[1]),
            mask=latent_mask,
            cond_tokens=cond_tokens,
            cond_mask=cond_mask,
        )
        return self.objective(
            self.backbone,
            batch,
            generator=generator,
            modality=self.modality_id(self.modality),
            cond_dropout=self.cfg.cond_dropout_prob if self.training else None,
            t=t,
            noise=noise,
        ).loss

    def sample(self, num_samples: int, **kwargs):
        """Generate ``num_samples`` (options: ``qgfd_diffusion.sample.generate``)."""
        from ..sample.generate import generate

        return generate(self, self.modality, num_samples, **kwargs)

    def _layout_for(self, length: int) -> LatentLayout:
        known = self.layouts.get(self.modality)
        if known is not None and known.num_tokens == length:
            return known
        return LatentLayout("sequence", (length,))


class TextQGFDDiffusionModel(QGFDDiffusionModel):
    """Diffusion over frozen T5 (or any text encoder) states, Diffusion-LM style."""

    modality = "text"
    default_encoder = "t5-small"
    adapter_class = TextAdapter

    def encode_text(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Token ids [B, L] -> x0 [B, L, C] (padded positions at 0)."""
        return self.to_shared(
            self.modality, self.adapter.encode_ids(input_ids, attention_mask)
        ).latents

    def diffusion_forward(
        self,
        x0_embeds: Tensor,
        t: Tensor,
        cond_input_ids: Tensor | None = None,
        cond_attention_mask: Tensor | None = None,
        schedule=None,
        **kwargs,
    ) -> Tensor:  # type: ignore[override]
        """Prototype 001's signature: the condition is a tokenized prompt.

        Conditioning on the very sequence being denoised leaks the target (DESIGN.md 7): when
        the prompt encodes to ``x0_embeds`` itself, it is replaced by the null condition.
        """
        cond_tokens = cond_mask = None
        if cond_input_ids is not None:
            if cond_attention_mask is None:
                cond_attention_mask = torch.ones_like(cond_input_ids)
            prompt = self.adapter.encode_ids(cond_input_ids, cond_attention_mask)
            if self._is_target(prompt, x0_embeds):
                warnings.warn(
                    "cond_input_ids encode the sequence being denoised; conditioning on "
                    "the target leaks it, so the null condition is used instead",
                    stacklevel=2,
                )
            else:
                cond_tokens, cond_mask = prompt.latents, prompt.mask
        return super().diffusion_forward(x0_embeds, t, cond_tokens, cond_mask, schedule, **kwargs)

    def _is_target(self, prompt: LatentBatch, x0_embeds: Tensor) -> bool:
        shared = self.latent_maps[self.modality](prompt.latents)
        return shared.shape == x0_embeds.shape and torch.allclose(shared, x0_embeds, atol=1e-5)


class ImageQGFDDiffusionModel(QGFDDiffusionModel):
    """Diffusion over ViT patch states (or exact pixel patches)."""

    modality = "image"
    default_encoder = "google/vit-base-patch16-224"
    adapter_class = ViTImageAdapter

    @classmethod
    def build_adapter(cls, backbone_name: str | None, **options) -> ModalityAdapter:
        if backbone_name is None and "patch_size" in options:  # exact pixel patches, no encoder
            return PatchImageAdapter(PatchImageConfig(**options))
        return super().build_adapter(backbone_name, **options)

    def encode_images(self, pixel_values: Tensor, labels: Tensor | None = None) -> Tensor:
        raw = pixel_values if labels is None else {"images": pixel_values, "labels": labels}
        return self.encode_raw(raw)


class AudioQGFDDiffusionModel(QGFDDiffusionModel):
    """Diffusion over Wav2Vec2 (or any audio encoder) frame states."""

    modality = "audio"
    default_encoder = "facebook/wav2vec2-base"
    adapter_class = AudioAdapter

    def encode_audio(self, waveforms: Any) -> Tensor:
        return self.encode_raw(waveforms)


class VideoQGFDDiffusionModel(QGFDDiffusionModel):
    """Diffusion over per-frame image latents with time x 2-D positions."""

    modality = "video"
    default_encoder = ImageQGFDDiffusionModel.default_encoder

    @classmethod
    def build_adapter(
        cls, backbone_name: str | None, *, num_classes: int = 0, **image_options
    ) -> ModalityAdapter:
        frames = ImageQGFDDiffusionModel.build_adapter(backbone_name, **image_options)
        return VideoAdapter(
            VideoAdapterConfig(image_adapter=adapter_spec(frames), num_classes=num_classes),
            image_adapter=frames,
        )

    def encode_video(self, frames: Tensor) -> Tensor:
        return self.encode_raw(frames)


class TabularQGFDDiffusionModel(QGFDDiffusionModel):
    """Diffusion over one token per table column (TabDDPM-style data, exact inverse)."""

    modality = "tabular"

    @classmethod
    def build_adapter(
        cls, backbone_name: str | None, *, table: Any = None, categorical_columns=None, **options
    ) -> ModalityAdapter:
        if table is None:
            raise ValueError(
                "modality 'tabular' needs table= (the data its column transforms are fitted on)"
            )
        return TabularAdapter.from_table(table, categorical_columns, **options)

    def encode_table(self, table: Any) -> Tensor:
        return self.encode_raw(table)


def modality_model_class(modality: str) -> type[QGFDDiffusionModel]:
    """The per-modality model class of ``modality`` (derived from the classes above)."""
    classes = {cls.modality: cls for cls in QGFDDiffusionModel.__subclasses__()}
    if modality not in classes:
        raise ValueError(f"modality must be one of {sorted(classes)}, got {modality!r}")
    return classes[modality]


def create_qgfd_diffusion_model(
    modality: str,
    backbone_name: str | None = None,
    diffusion_cfg: DiffusionConfig | None = None,
    **kwargs,
):
    """Build a per-modality QGFD diffusion model (prototype 001).

    backbone_name: the modality encoder, a hub id or local folder (text: T5, image: ViT,
        audio: Wav2Vec2, video: its frame encoder; ``None`` takes the prototype's default hub model,
        or for image/video with ``patch_size=`` an exact pixel-patch adapter; tabular: unused).
    diffusion_cfg: the model's ``DiffusionConfig`` (default ``DiffusionConfig()``); when the
        adapter can condition and ``cond_dim`` is None, cond_dim becomes the condition width.
    kwargs: adapter options (e.g. ``max_length``, ``latent_dim`` + ``projection``, ``table``).

    Returns (model, tokenizer / processor or None, DDPMBetaSchedule).
    """
    model_class = modality_model_class(modality)
    adapter = model_class.build_adapter(backbone_name, **kwargs)
    cfg = diffusion_cfg or DiffusionConfig()
    if cfg.cond_dim is None and adapter.condition_dim is not None:
        cfg = replace(cfg, cond_dim=adapter.condition_dim)
    model = model_class(cfg, adapter)
    schedule = DDPMBetaSchedule.from_config(model.schedule)
    return model, getattr(adapter, "processor", None), schedule
