"""qgfd-diffusion: multimodal latent diffusion with QGFD attention."""

from .attention import qgfd_attention

__version__ = "0.1.0"

__all__ = ["qgfd_attention"]
