"""qgfd-diffusion: multimodal latent diffusion with QGFD attention."""

from .attention import (
    MultiheadAttention,
    QGFDLayer,
    QGFDMultiheadAttention,
    make_attention,
    qgfd_attention,
    set_qgfd_step,
    transition_from_networkx,
)
from .latents import LatentBatch, LatentLayout

__version__ = "0.1.0"

__all__ = [
    "LatentBatch",
    "LatentLayout",
    "MultiheadAttention",
    "QGFDLayer",
    "QGFDMultiheadAttention",
    "make_attention",
    "qgfd_attention",
    "set_qgfd_step",
    "transition_from_networkx",
]
