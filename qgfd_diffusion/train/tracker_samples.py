"""Samples for the trackers while a run trains (``train.sample_every``).

Drawn with an eval-mode copy of the EMA weights (``ema_copy``) and a generator of their own, so
the live weights, their train mode and every RNG stream of the run are left exactly as they were:
a run that logs samples trains bit for bit like one that does not.
"""

from __future__ import annotations

import torch
from diffusers.training_utils import EMAModel

from ..models.multimodal import SharedQGFDDiffusionModel
from ..sample.pipeline import QGFDPipeline
from .checkpoint_model import ema_copy
from .config import PhaseConfig, RunConfig
from .export import SampleGraphs
from .logs import MetricsLog

TRACKED_SAMPLES = 16  # samples a tracker gets every train.sample_every steps


@torch.no_grad()
def log_tracker_samples(
    log: MetricsLog,
    model: SharedQGFDDiffusionModel,
    ema: EMAModel,
    config: RunConfig,
    phase: PhaseConfig,
    step: int,
    sample_graphs: SampleGraphs,
) -> None:
    """A few samples of ``phase`` at ``step`` to the trackers (``config.sample``'s settings;
    guidance only where the phase is conditional, no clamping: a quick look, not the record)."""
    pipe = QGFDPipeline.from_model(model, backbone_ema=ema_copy(model.backbone, ema))
    pipe.set_progress_bar_config(disable=True)
    count = min(config.sample.num_samples, TRACKED_SAMPLES)
    conditional = pipe.condition(phase.name, count) is not None
    settings = {**config.sample.call_kwargs(), "num_samples": count, "clamp_steps": 0}
    if not conditional:
        settings["guidance_scale"] = 1.0
    output = pipe(
        phase.name,
        **settings,
        generator=torch.Generator().manual_seed(config.seed + step),
        output_type="pt",
        graph=sample_graphs(phase, count),
    )
    decoded = next((value for key, value in output.items() if key != "latents"), None)
    log.samples(phase.name, step, decoded)
