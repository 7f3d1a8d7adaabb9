"""Generate one modality of a ``SharedQGFDDiffusionModel``: condition, reverse process, decode.

Dimension legend: B samples, L latent tokens, C shared latent width, Ca the adapter's width,
Lc condition tokens, Dc condition width.

The reverse process is ``sampler.sample_latents``, the one loop every caller runs (the pipeline
calls ``generate`` on its model view). The backbone samples in the mode it is in (diffusers'
convention: loaded models are in eval mode); nothing here switches it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from torch import Tensor

from ..graphs import check_graph
from ..latents import LatentLayout
from .sampler import sample_latents
from .schedulers import make_scheduler


@dataclass
class SampleOutput:
    """latents: shared space [B, L, C]; adapter_latents: the adapter's [B, L, Ca];
    decoded: the adapter's raw output (images, texts, ...) or None where it cannot decode."""

    latents: Tensor
    adapter_latents: Tensor
    layout: LatentLayout
    mask: Tensor | None
    decoded: Any


@torch.no_grad()
def generate(
    model,
    name: str,
    num_samples: int,
    *,
    condition: Any = None,
    layout: LatentLayout | None = None,
    generator: torch.Generator | None = None,
    num_inference_steps: int = 50,
    eta: float = 0.0,
    guidance_scale: float = 1.0,
    scheduler: SchedulerMixin | None = None,
    decode: bool = True,
    clamp_steps: int = 0,
    graph: Tensor | None = None,
    progress: bool = False,
) -> SampleOutput:
    """Generate ``num_samples`` of modality ``name`` (DDIM by default, any diffusers scheduler).

    condition: raw condition for the adapter (prompts, class labels), one per sample.
    layout: token layout to sample (default: the largest seen in training or encoding).
    scheduler: a sampling scheduler of the model's noise schedule (default: DDIM).
    clamp_steps: clamp the x0 estimate to the nearest tokens over the last steps (text with a
    fitted rounding head; ``sampler`` module docstring).
    graph: the graph to generate on, [B, L, L] (one per sample) or [L, L] (shared), dense or
        torch sparse: e.g. held-out graphs of the data for a graph-signal modality.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    modality = model.modality_id(name)
    adapter = model.adapters[name]
    layout = layout or model.layouts.get(name)
    if layout is None:
        raise ValueError(f"no layout known for {name!r}: pass layout= (e.g. the sequence length)")
    cond_tokens = cond_mask = None
    if condition is not None:
        cond_tokens, cond_mask = adapter.encode_condition(condition)
        cond_tokens = model.shared_condition(name, cond_tokens.to(model.backbone.dtype))
    latents = sample_latents(
        model.backbone,
        scheduler or make_scheduler("ddim", model.schedule),
        shape=(num_samples, layout.num_tokens, model.cfg.latent_dim),
        generator=generator,
        num_inference_steps=num_inference_steps,
        eta=eta,
        guidance_scale=guidance_scale,
        cond_tokens=cond_tokens,
        cond_mask=cond_mask,
        layout=layout,
        modality=modality,
        clamp=_clamp_in_shared_space(model, name) if clamp_steps else None,
        clamp_steps=clamp_steps,
        graph=None if graph is None else check_graph(graph, num_samples, layout.num_tokens),
        progress=progress,
    )
    adapter_latents = model.latent_maps[name].inverse(latents)
    decoded = adapter.decode(adapter_latents) if decode and adapter.can_decode else None
    return SampleOutput(latents, adapter_latents, layout, None, decoded)


def _clamp_in_shared_space(model, name: str):
    """The adapter's ``clamp_latents`` on shared-space x0 [B, L, C] (through its latent map)."""
    adapter, latent_map = model.adapters[name], model.latent_maps[name]
    if not adapter.can_clamp:
        raise ValueError(
            f"clamp_steps needs a modality whose adapter can clamp (text with a fitted rounding "
            f"head); {name!r} uses the {adapter.name!r} adapter"
        )
    return lambda x0: latent_map(adapter.clamp_latents(latent_map.inverse(x0)))
