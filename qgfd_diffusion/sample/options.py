"""Sampling settings: the run config's ``sample:`` section and ``qgfd sample``'s options.

Kept free of heavy imports so that loading a run config does not load the models.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SampleSettings:
    """How to sample: the defaults a run writes its end-of-run samples with.

    clamp_steps: over the last this many steps, discrete modalities (text with a rounding head)
    replace the x0 estimate by the latents of its rounded tokens (Diffusion-LM's clamping;
    every step when there are fewer).
    """

    num_samples: int = 16
    steps: int = 50
    eta: float = 0.0
    guidance: float = 1.0
    scheduler: str = "ddim"
    clamp_steps: int = 0

    def __post_init__(self):
        for name in ("num_samples", "steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.clamp_steps < 0:
            raise ValueError(f"clamp_steps must be >= 0, got {self.clamp_steps}")
        for name in ("eta", "guidance"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass
class SampleOptions(SampleSettings):
    """``SampleSettings`` plus the seed of the initial noise (same seed, same bytes) and the
    condition: class labels or prompts, one per sample (None: the modality's default)."""

    seed: int = 0
    classes: list[int] | None = None
    prompts: list[str] | None = None
    graph: str | None = None  # an adjacency file to generate on (graphs.load_graph_file)
