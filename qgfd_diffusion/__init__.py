"""qgfd-diffusion: multimodal latent diffusion with QGFD attention.

The public API, re-exported; the transformers integration (``wrap_model_with_qgfd`` and
friends) loads transformers on first use only.
"""

from importlib import metadata as _metadata

from . import attention
from .adapters import ADAPTERS, ModalityAdapter, build_tiny_encoder, get_adapter_class, load_adapter
from .attention import (
    MultiheadAttention,
    QGFDLayer,
    QGFDMultiheadAttention,
    QGFDOptions,
    make_attention,
    qgfd_attention,
    set_qgfd_step,
    transition_from_networkx,
)
from .compat import (
    AudioQGFDDiffusionModel,
    DDPMBetaSchedule,
    ImageQGFDDiffusionModel,
    TabularQGFDDiffusionModel,
    TextQGFDDiffusionModel,
    VideoQGFDDiffusionModel,
    create_qgfd_diffusion_model,
    q_sample,
)
from .latents import LatentBatch, LatentLayout
from .models import (
    DIFFUSION_PRESETS,
    DiffusionConfig,
    QGFDDiffusionBackbone,
    SharedQGFDDiffusionModel,
)
from .sample import (
    SAMPLING_SCHEDULERS,
    QGFDPipeline,
    QGFDPipelineOutput,
    generate,
    make_scheduler,
    sample_latents,
)
from .schedules import (
    DiffusionObjective,
    NoiseScheduleConfig,
    diffusion_loss,
    min_snr_weights,
    predict_x0,
    training_target,
)

try:
    __version__ = _metadata.version("qgfd-diffusion")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"


def __getattr__(name):
    if name in attention._HF_NAMES:
        return getattr(attention, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    *attention._HF_NAMES,
    "ADAPTERS",
    "AdapterSet",
    "DIFFUSION_PRESETS",
    "SAMPLING_SCHEDULERS",
    "AudioQGFDDiffusionModel",
    "DDPMBetaSchedule",
    "DiffusionConfig",
    "DiffusionObjective",
    "ImageQGFDDiffusionModel",
    "LatentBatch",
    "LatentLayout",
    "ModalityAdapter",
    "MultiheadAttention",
    "NoiseScheduleConfig",
    "QGFDOptions",
    "QGFDPipeline",
    "QGFDPipelineOutput",
    "QGFDDiffusionBackbone",
    "QGFDLayer",
    "QGFDMultiheadAttention",
    "SharedQGFDDiffusionModel",
    "TabularQGFDDiffusionModel",
    "TextQGFDDiffusionModel",
    "VideoQGFDDiffusionModel",
    "build_tiny_encoder",
    "create_qgfd_diffusion_model",
    "diffusion_loss",
    "get_adapter_class",
    "load_adapter",
    "make_attention",
    "make_scheduler",
    "generate",
    "min_snr_weights",
    "predict_x0",
    "q_sample",
    "qgfd_attention",
    "sample_latents",
    "set_qgfd_step",
    "training_target",
    "transition_from_networkx",
]
