"""Sampling schedulers by name: any diffusers scheduler, configured from a ``DiffusionConfig``.

The registry ``SAMPLING_SCHEDULERS`` maps a name to a diffusers scheduler class and the
arguments that name implies; CLIs list its keys. The noise schedule itself (timesteps, betas,
prediction type) always comes from the backbone's config, so that sampling matches training.
"""

from __future__ import annotations

import inspect
from typing import Any

from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DEISMultistepScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    PNDMScheduler,
    UniPCMultistepScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from ..schedules.training import scheduler_kwargs

# name -> (scheduler class, arguments the name implies). Latents are not images in [-1, 1], so
# sample clipping is off wherever a scheduler offers it.
SAMPLING_SCHEDULERS: dict[str, tuple[type[SchedulerMixin], dict[str, Any]]] = {
    "ddim": (DDIMScheduler, {"clip_sample": False}),
    "ddpm": (DDPMScheduler, {"clip_sample": False}),
    "dpm++": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++"}),
    "dpmsolver++": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++"}),
    "dpmsolver": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++"}),
    "euler": (EulerDiscreteScheduler, {}),
    "euler_a": (EulerAncestralDiscreteScheduler, {}),
    "heun": (HeunDiscreteScheduler, {"clip_sample": False}),
    "unipc": (UniPCMultistepScheduler, {}),
    "deis": (DEISMultistepScheduler, {}),
    "pndm": (PNDMScheduler, {"skip_prk_steps": True}),
}


def make_scheduler(name: str, config: Any, **overrides) -> SchedulerMixin:
    """A sampling scheduler by name for a ``DiffusionConfig``, a backbone or its config.

    ``overrides`` replace scheduler arguments (e.g. ``timestep_spacing="trailing"``).
    """
    if name not in SAMPLING_SCHEDULERS:
        raise ValueError(f"scheduler must be one of {tuple(SAMPLING_SCHEDULERS)}, got {name!r}")
    scheduler_class, implied = SAMPLING_SCHEDULERS[name]
    accepted = inspect.signature(scheduler_class.__init__).parameters
    kwargs = {k: v for k, v in scheduler_kwargs(config).items() if k in accepted}
    return scheduler_class(**{**kwargs, **implied, **overrides})
