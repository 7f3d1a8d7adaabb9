"""Sampling: the scheduler-agnostic reverse-process loop, guidance and schedulers by name."""

from .sampler import (
    classifier_free_guidance,
    guided_prediction,
    initial_latents,
    sample_latents,
    step_kwargs,
)
from .schedulers import SAMPLING_SCHEDULERS, make_scheduler

__all__ = [
    "SAMPLING_SCHEDULERS",
    "classifier_free_guidance",
    "guided_prediction",
    "initial_latents",
    "make_scheduler",
    "sample_latents",
    "step_kwargs",
]
