"""Noise schedules: the schedule config (saved as ``scheduler/``), the diffusion maths on
diffusers' schedulers, and THE training objective every caller uses."""

from .config import (
    SCHEDULER_FOLDER,
    BetaSchedule,
    NoiseScheduleConfig,
    PredictionType,
)
from .objective import DiffusionObjective, ObjectiveOutput, TrainingDraws
from .training import (
    alpha_bar,
    diffusion_loss,
    min_snr_weights,
    per_sample_error,
    predict_x0,
    snr,
    training_target,
    weighted_mean,
)

__all__ = [
    "SCHEDULER_FOLDER",
    "BetaSchedule",
    "DiffusionObjective",
    "NoiseScheduleConfig",
    "ObjectiveOutput",
    "PredictionType",
    "TrainingDraws",
    "alpha_bar",
    "diffusion_loss",
    "min_snr_weights",
    "per_sample_error",
    "predict_x0",
    "snr",
    "training_target",
    "weighted_mean",
]
