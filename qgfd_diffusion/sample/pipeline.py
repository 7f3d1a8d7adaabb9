"""``QGFDPipeline``: a trained run as a diffusers ``DiffusionPipeline``.

Dimension legend: B samples, L latent tokens, C shared latent width, H/W image size.

Components (each saved and loaded by its own class, as diffusers does):
    backbone       ``QGFDDiffusionBackbone``, the live weights
    backbone_ema   the EMA weights (optional); used by default, ``use_ema=False`` for live ones
    scheduler      any diffusers scheduler of the model's noise schedule (DDIM as saved)
    adapters       ``AdapterSet``: the named modality adapters, their order and latent layouts

A training run's ``final/`` is such a folder, so ``QGFDPipeline.from_pretrained(final)`` and,
once ``qgfd_diffusion`` is imported, ``DiffusionPipeline.from_pretrained(final)`` load it.
Schedulers swap the diffusers way:
``pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)``.

The components sample as one ``SharedQGFDDiffusionModel`` (``model()``): a view that shares their
weights, built on first use and rebuilt only when a component changes (another denoiser, an EMA
switch, another noise schedule, adapter set or device). Like every diffusers pipeline, this one
samples its modules in the mode they are in and never switches them: loaded components are in
eval mode, and a training loop samples an eval-mode copy of its weights (its EMA copy), never
the live ones.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import diffusers
import torch
from diffusers import DiffusionPipeline
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput
from torch import Tensor

from ..models.adapter_set import AdapterSet
from ..models.backbone import QGFDDiffusionBackbone
from ..models.multimodal import SharedQGFDDiffusionModel
from ..schedules.config import NoiseScheduleConfig
from .generate import generate

OutputType = Literal["pil", "np", "pt", "latent"]
OUTPUT_TYPES = ("pil", "np", "pt", "latent")


@dataclass
class QGFDPipelineOutput(BaseOutput):
    """latents: shared-space latents [B, L, C]; then, for the modality sampled, its decoded
    samples under the field its adapter declares (``output_field``, converted to ``output_type``
    by its ``convert_output``): images (PIL list, [B, H, W, C] array or [B, C, H, W] tensor),
    texts (str list), audios (waveform arrays), tables (a DataFrame), videos (frames as PIL
    lists, [B, F, H, W, C] or [B, F, C, H, W]), signals (graph signals [B, N]), or a field a
    newer adapter declares; None elsewhere and for ``output_type="latent"``."""

    latents: Tensor
    images: Any = None
    texts: list[str] | None = None
    audios: Any = None
    tables: Any = None
    videos: Any = None
    signals: Any = None


class QGFDPipeline(DiffusionPipeline):
    """Sample any modality of a trained shared backbone (see the module docstring)."""

    model_cpu_offload_seq = "backbone"
    _optional_components = ["backbone_ema"]

    def __init__(
        self,
        backbone: QGFDDiffusionBackbone,
        scheduler: SchedulerMixin,
        adapters: AdapterSet,
        backbone_ema: QGFDDiffusionBackbone | None = None,
        use_ema: bool = True,
    ):
        super().__init__()
        self.register_modules(
            backbone=backbone, scheduler=scheduler, adapters=adapters, backbone_ema=backbone_ema
        )
        self.use_ema = use_ema
        self._view: SharedQGFDDiffusionModel | None = None
        self._view_key: tuple = ()

    @classmethod
    def from_model(
        cls,
        model: SharedQGFDDiffusionModel,
        backbone_ema: QGFDDiffusionBackbone | None = None,
        scheduler: SchedulerMixin | None = None,
    ) -> QGFDPipeline:
        """The pipeline of a model (scheduler: DDIM of the model's schedule by default)."""
        return cls(
            backbone=model.backbone,
            scheduler=scheduler or model.schedule.sampling_scheduler(),
            adapters=model.adapter_set(),
            backbone_ema=backbone_ema,
        )

    @property
    def denoiser(self) -> QGFDDiffusionBackbone:
        """The weights sampled with: EMA unless ``use_ema`` is False or there are none."""
        use_ema = self.use_ema and self.backbone_ema is not None
        return self.backbone_ema if use_ema else self.backbone

    @property
    def modalities(self) -> list[str]:
        return list(self.adapters.adapters)

    def condition(
        self,
        modality: str,
        num_samples: int,
        class_labels: Sequence[int] | Tensor | None = None,
        prompt: str | Sequence[str] | None = None,
    ) -> Any:
        """The raw condition ``__call__`` samples ``modality`` with (see ``sampling_condition``)."""
        return sampling_condition(self.model(), modality, num_samples, class_labels, prompt)

    def model(self) -> SharedQGFDDiffusionModel:
        """The components as one ``SharedQGFDDiffusionModel`` sharing their weights (module
        docstring): built once, rebuilt only when ``_components_key`` changes."""
        key = self._components_key()
        if self._view is None or key != self._view_key:
            schedule = NoiseScheduleConfig.from_mapping(self.scheduler.config)
            view = SharedQGFDDiffusionModel.from_parts(self.denoiser, schedule, self.adapters)
            self._view, self._view_key = view.to(self.denoiser.device), key
        return self._view

    def _components_key(self) -> tuple:
        """What the view is built from: modules by identity (a tuple compares its items with
        ``==``, which for modules is ``is``), the schedule and layouts by value."""
        schedule = NoiseScheduleConfig.from_mapping(self.scheduler.config)
        adapters = tuple(self.adapters.adapters.items())
        layouts = json.dumps(self.adapters.config.layouts, sort_keys=True)
        return (self.denoiser, self.denoiser.device, schedule, self.adapters, adapters, layouts)

    @torch.no_grad()
    def __call__(
        self,
        modality: str,
        num_samples: int = 1,
        num_inference_steps: int = 50,
        guidance_scale: float = 1.0,
        eta: float = 0.0,
        class_labels: Sequence[int] | Tensor | None = None,
        prompt: str | Sequence[str] | None = None,
        generator: torch.Generator | None = None,
        output_type: OutputType = "pil",
        return_dict: bool = True,
        clamp_steps: int = 0,
        graph: Tensor | None = None,
    ) -> QGFDPipelineOutput | tuple:
        """Generate ``num_samples`` of ``modality``.

        class_labels / prompt: the condition of a class- or prompt-conditioned modality, one per
        sample (class-conditional modalities cycle 0..K-1 when none are given). Guidance
        (``guidance_scale`` != 1) needs a condition; on an unconditional modality it is an error,
        never silently ignored. clamp_steps: text only, Diffusion-LM's clamping over the last
        steps (``sample.sampler``).
        graph: the graph to generate on ([B, L, L] or [L, L] adjacency, dense or torch sparse),
        for backbones that read one (graph-signal data, ``qgfd sample --graph FILE``).
        """
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        model = self.model()
        condition = sampling_condition(model, modality, num_samples, class_labels, prompt)
        check_guidance(modality, guidance_scale, condition)
        self.scheduler.set_timesteps(num_inference_steps)  # validates before any work
        output = generate(
            model,
            modality,
            num_samples,
            condition=condition,
            generator=generator,
            num_inference_steps=num_inference_steps,
            eta=eta,
            guidance_scale=guidance_scale,
            scheduler=self.scheduler,
            decode=output_type != "latent",
            clamp_steps=clamp_steps,
            graph=graph,
            progress=not getattr(self, "_progress_bar_config", {}).get("disable", False),
        )
        result = QGFDPipelineOutput(latents=output.latents)
        if output.decoded is not None:  # under the field the adapter class declares
            adapter = model.adapters[modality]
            result[adapter.output_field] = adapter.convert_output(output.decoded, output_type)
        self.maybe_free_model_hooks()
        return result if return_dict else result.to_tuple()


def sampling_condition(
    model: SharedQGFDDiffusionModel,
    modality: str,
    num_samples: int,
    class_labels: Sequence[int] | Tensor | None,
    prompt: str | Sequence[str] | None,
) -> Any:
    """The raw condition of ``num_samples`` samples: given labels or prompts, checked against
    what the modality takes; for class-conditional modalities without labels, 0..K-1 cycled."""
    adapter = model.adapters[modality] if modality in model.adapters else None
    if adapter is None:
        raise ValueError(f"unknown modality {modality!r}; this model has {list(model.adapters)}")
    conditional = modality in model.cond_maps and adapter.condition_dim is not None
    kind = adapter.condition_kind if conditional else None
    given = {"label": class_labels, "prompt": prompt}
    for name, value in given.items():
        if value is not None and kind != name:
            what = "class_labels" if name == "label" else "prompt"
            raise ValueError(
                f"{what} given, but modality {modality!r} is conditioned on "
                f"{_describe_condition(kind)}"
            )
    if kind == "prompt" and prompt is not None:
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        return _per_sample(prompts, num_samples, "prompt")
    if kind == "label":
        if class_labels is None:
            return torch.arange(num_samples) % adapter.condition_dim
        labels = torch.as_tensor(class_labels, dtype=torch.long).reshape(-1)
        return _per_sample(labels, num_samples, "class_labels")
    return None


def _per_sample(values: Any, num_samples: int, what: str) -> Any:
    if len(values) == 1 and num_samples > 1:
        return values * num_samples if isinstance(values, list) else values.repeat(num_samples)
    if len(values) != num_samples:
        raise ValueError(f"{what} gives {len(values)} values for num_samples={num_samples}")
    return values


def _describe_condition(kind: str | None) -> str:
    return {"label": "class labels", "prompt": "prompts"}.get(kind, "nothing (unconditional)")


def check_guidance(modality: str, guidance_scale: float, condition: Any) -> None:
    """Classifier-free guidance needs a condition to push towards."""
    if guidance_scale < 0:
        raise ValueError(f"guidance_scale must be >= 0, got {guidance_scale}")
    if guidance_scale != 1.0 and condition is None:
        raise ValueError(
            f"guidance_scale={guidance_scale} needs a condition, but modality {modality!r} is "
            "sampled without one (unconditional, or no prompt given); use guidance_scale=1"
        )


# diffusers finds a pipeline class named in model_index.json on the diffusers module:
# registering it there lets DiffusionPipeline.from_pretrained(folder) load QGFD folders.
setattr(diffusers, QGFDPipeline.__name__, QGFDPipeline)
