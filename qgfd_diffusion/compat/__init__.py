"""Seed-era API in one place: the names the seed documents, on top of the library.

* ``DDPMBetaSchedule``, ``q_sample`` (seed 001's schedule buffers and forward process);
* the per-modality models ``TextQGFDDiffusionModel``, ... and ``create_qgfd_diffusion_model``;
* seed 001's constructor and loss names on ``SharedQGFDDiffusionModel`` (``seed001``).

The per-modality models build on ``models.multimodal``, which itself uses ``seed001``; they load
on first use so that importing ``seed001`` from the models never loops back here.
"""

from .ddpm import DDPMBetaSchedule, q_sample
from .seed001 import Seed001Methods, seed_adapters

_MODEL_NAMES = (
    "AudioQGFDDiffusionModel",
    "ImageQGFDDiffusionModel",
    "QGFDDiffusionModel",
    "TabularQGFDDiffusionModel",
    "TextQGFDDiffusionModel",
    "VideoQGFDDiffusionModel",
    "create_qgfd_diffusion_model",
    "modality_model_class",
)


def __getattr__(name):
    if name in _MODEL_NAMES:
        from . import modality_models

        return getattr(modality_models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [*_MODEL_NAMES, "DDPMBetaSchedule", "Seed001Methods", "q_sample", "seed_adapters"]
