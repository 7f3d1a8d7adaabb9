"""Noise schedules: the DDPM training objective on diffusers' schedulers, plus seed-001 shims."""

from .ddpm import DDPMBetaSchedule, q_sample
from .training import (
    alpha_bar,
    as_diffusion_config,
    diffusion_loss,
    make_training_scheduler,
    min_snr_weights,
    predict_x0,
    scheduler_kwargs,
    snr,
    training_target,
)

__all__ = [
    "DDPMBetaSchedule",
    "alpha_bar",
    "as_diffusion_config",
    "diffusion_loss",
    "make_training_scheduler",
    "min_snr_weights",
    "predict_x0",
    "q_sample",
    "scheduler_kwargs",
    "snr",
    "training_target",
]
