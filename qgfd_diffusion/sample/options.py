"""Sampling options in the pipeline's own names (diffusers'): the run config's ``sample:`` section
(``SampleSettings``) and what ``qgfd sample`` adds to it (``SampleOptions``).

Each field is named after the ``QGFDPipeline.__call__`` argument it sets, so settings reach the
pipeline unrenamed (``call_kwargs``). Kept free of heavy imports so that loading a run config
does not load the models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class SampleSettings:
    """How to sample: the defaults a run writes its end-of-run samples with.

    num_inference_steps: sampler steps. eta: DDIM's eta (0 = deterministic).
    guidance_scale: classifier-free guidance scale (1 = none). scheduler: a sampler name
    (``SAMPLING_SCHEDULERS``).
    clamp_steps: over the last this many steps, discrete modalities (text with a rounding head)
    replace the x0 estimate by the latents of its rounded tokens (Diffusion-LM's clamping;
    every step when there are fewer).
    """

    num_samples: int = 16
    num_inference_steps: int = 50
    eta: float = 0.0
    guidance_scale: float = 1.0
    scheduler: str = "ddim"
    clamp_steps: int = 0

    def __post_init__(self):
        for name in ("num_samples", "num_inference_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.clamp_steps < 0:
            raise ValueError(f"clamp_steps must be >= 0, got {self.clamp_steps}")
        for name in ("eta", "guidance_scale"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def call_kwargs(self) -> dict[str, Any]:
        """The ``QGFDPipeline.__call__`` arguments these settings fix (the scheduler is a
        pipeline component, set apart)."""
        names = ("num_samples", "num_inference_steps", "eta", "guidance_scale", "clamp_steps")
        return {name: getattr(self, name) for name in names}


@dataclass
class SampleOptions(SampleSettings):
    """``SampleSettings`` plus the seed of the initial noise (same seed, same bytes), the
    condition (``class_labels`` or ``prompt``, one per sample or one for all; None: the
    modality's default) and an adjacency file to generate on (``graphs.load_graph_file``)."""

    seed: int = 0
    class_labels: list[int] | None = None
    prompt: list[str] | None = None
    graph: str | None = None
