"""Sampling schedulers by name: any diffusers scheduler, configured from the noise schedule.

The registry ``SAMPLING_SCHEDULERS`` maps a name to a diffusers scheduler class and the
arguments that name implies; CLIs list its keys. The noise schedule itself (timesteps, betas,
prediction type) always comes from the model's ``NoiseScheduleConfig`` (its ``scheduler/``), so
that sampling matches training.
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

from ..schedules.config import NoiseScheduleConfig

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


def make_scheduler(name: str, schedule: NoiseScheduleConfig, **overrides) -> SchedulerMixin:
    """A sampling scheduler by name for a noise schedule (``model.schedule``).

    ``overrides`` replace scheduler arguments (e.g. ``timestep_spacing="trailing"``).
    """
    if not isinstance(schedule, NoiseScheduleConfig):
        raise TypeError(
            f"make_scheduler needs the model's NoiseScheduleConfig, got {type(schedule).__name__}"
        )
    if name not in SAMPLING_SCHEDULERS:
        raise ValueError(f"scheduler must be one of {tuple(SAMPLING_SCHEDULERS)}, got {name!r}")
    scheduler_class, implied = SAMPLING_SCHEDULERS[name]
    accepted = inspect.signature(scheduler_class.__init__).parameters
    kwargs = {k: v for k, v in schedule.to_dict().items() if k in accepted}
    return scheduler_class(**{**kwargs, **implied, **overrides})
