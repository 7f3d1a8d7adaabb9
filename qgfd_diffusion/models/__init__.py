"""The denoiser: configuration, embeddings, DiT blocks, the shared backbone, the multimodal model.

Prototype 001's names (per-modality models, ``create_qgfd_diffusion_model``, the shared model's
constructor and loss names) live in ``qgfd_diffusion.compat``; sampling in
``qgfd_diffusion.sample``.
"""

from .adapter_set import AdapterSet
from .backbone import QGFDDiffusionBackbone
from .blocks import DiTBlock, FeedForward, FinalLayer
from .config import DIFFUSION_PRESETS, DiffusionConfig
from .embeddings import ModalityEmbedding, TimestepEmbedder, positional_embedding
from .latent_space import FixedLatentEmbedding
from .multimodal import SharedQGFDDiffusionModel

__all__ = [
    "DIFFUSION_PRESETS",
    "AdapterSet",
    "DiTBlock",
    "DiffusionConfig",
    "FeedForward",
    "FinalLayer",
    "FixedLatentEmbedding",
    "ModalityEmbedding",
    "QGFDDiffusionBackbone",
    "SharedQGFDDiffusionModel",
    "TimestepEmbedder",
    "positional_embedding",
]
