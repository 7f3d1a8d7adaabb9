"""The denoiser: configuration, embeddings, DiT blocks, the shared backbone, multimodal models."""

from .backbone import QGFDDiffusionBackbone
from .blocks import DiTBlock, FeedForward, FinalLayer
from .config import DIFFUSION_PRESETS, BetaSchedule, DiffusionConfig, PredictionType
from .embeddings import ModalityEmbedding, TimestepEmbedder, positional_embedding
from .factory import (  # noqa: I001 (after multimodal, which it builds on)
    MODALITY_MODELS,
    AudioQGFDDiffusionModel,
    ImageQGFDDiffusionModel,
    QGFDDiffusionModel,
    TabularQGFDDiffusionModel,
    TextQGFDDiffusionModel,
    VideoQGFDDiffusionModel,
    create_qgfd_diffusion_model,
)
from .latent_space import FixedLatentEmbedding
from .multimodal import (
    SampleOutput,
    SharedQGFDDiffusionModel,
    TrainingNoise,
    denoising_loss,
    draw_training_noise,
)

__all__ = [
    "DIFFUSION_PRESETS",
    "MODALITY_MODELS",
    "AudioQGFDDiffusionModel",
    "BetaSchedule",
    "DiTBlock",
    "DiffusionConfig",
    "FeedForward",
    "FinalLayer",
    "FixedLatentEmbedding",
    "ImageQGFDDiffusionModel",
    "ModalityEmbedding",
    "PredictionType",
    "QGFDDiffusionBackbone",
    "QGFDDiffusionModel",
    "SampleOutput",
    "SharedQGFDDiffusionModel",
    "TabularQGFDDiffusionModel",
    "TextQGFDDiffusionModel",
    "TimestepEmbedder",
    "TrainingNoise",
    "VideoQGFDDiffusionModel",
    "create_qgfd_diffusion_model",
    "denoising_loss",
    "draw_training_noise",
    "positional_embedding",
]
