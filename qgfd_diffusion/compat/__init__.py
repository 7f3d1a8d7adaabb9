"""The prototype documents' API in one place, on top of the library (which never imports it).

* ``DDPMBetaSchedule``, ``q_sample``: prototype 001's schedule buffers and forward process;
* the per-modality models ``TextQGFDDiffusionModel``, ... and ``create_qgfd_diffusion_model``;
* ``SharedQGFDDiffusionModel``: the library's shared model with prototype 001's constructor
  (``text_hf_name``, ``image_hf_name``) and loss names (``prototype001``).
"""

from .ddpm import DDPMBetaSchedule, q_sample
from .modality_models import (
    AudioQGFDDiffusionModel,
    ImageQGFDDiffusionModel,
    QGFDDiffusionModel,
    TabularQGFDDiffusionModel,
    TextQGFDDiffusionModel,
    VideoQGFDDiffusionModel,
    create_qgfd_diffusion_model,
    modality_model_class,
)
from .prototype001 import SharedQGFDDiffusionModel, prototype_adapters

__all__ = [
    "AudioQGFDDiffusionModel",
    "DDPMBetaSchedule",
    "ImageQGFDDiffusionModel",
    "QGFDDiffusionModel",
    "SharedQGFDDiffusionModel",
    "TabularQGFDDiffusionModel",
    "TextQGFDDiffusionModel",
    "VideoQGFDDiffusionModel",
    "create_qgfd_diffusion_model",
    "modality_model_class",
    "prototype_adapters",
    "q_sample",
]
