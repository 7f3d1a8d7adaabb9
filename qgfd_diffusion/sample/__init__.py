"""Sampling: the scheduler-agnostic reverse-process loop, guidance, schedulers by name, and
``generate`` (one modality of a shared model, decoded)."""

from .generate import SampleOutput, generate
from .pipeline import QGFDPipeline, QGFDPipelineOutput
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
    "QGFDPipeline",
    "QGFDPipelineOutput",
    "SampleOutput",
    "generate",
    "classifier_free_guidance",
    "guided_prediction",
    "initial_latents",
    "make_scheduler",
    "sample_latents",
    "step_kwargs",
]
