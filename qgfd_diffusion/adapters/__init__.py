"""Modality adapters: raw data <-> normalised latent tokens x0 [B,L,C] for the shared denoiser.

The contract and shared machinery live in ``base``; one module per modality registers its
adapter by name (``ADAPTERS``: text, image, patch_image, audio, video, tabular). Importing this
package is light: transformers models, torchaudio, soundfile and av load only when used.
"""

from .audio import AudioAdapter, AudioAdapterConfig, load_audio, resample, save_audio
from .base import (
    ADAPTERS,
    AdapterConfig,
    EncoderAdapterConfig,
    ModalityAdapter,
    PretrainedEncoderAdapter,
    adapter_spec,
    build_adapter,
    get_adapter_class,
    load_adapter,
    register_adapter,
)
from .image import (
    PatchImageAdapter,
    PatchImageConfig,
    ViTImageAdapter,
    ViTImageConfig,
    patchify,
    unpatchify,
)
from .tabular import TabularAdapter, TabularAdapterConfig
from .text import TextAdapter, TextAdapterConfig
from .tiny import TINY_ENCODERS, build_tiny_encoder
from .video import VideoAdapter, VideoAdapterConfig, read_video_frames, write_video

__all__ = [
    "ADAPTERS",
    "AdapterConfig",
    "AudioAdapter",
    "AudioAdapterConfig",
    "EncoderAdapterConfig",
    "ModalityAdapter",
    "PatchImageAdapter",
    "PatchImageConfig",
    "PretrainedEncoderAdapter",
    "TINY_ENCODERS",
    "TabularAdapter",
    "TabularAdapterConfig",
    "TextAdapter",
    "TextAdapterConfig",
    "VideoAdapter",
    "VideoAdapterConfig",
    "ViTImageAdapter",
    "ViTImageConfig",
    "adapter_spec",
    "build_adapter",
    "build_tiny_encoder",
    "get_adapter_class",
    "load_adapter",
    "load_audio",
    "patchify",
    "read_video_frames",
    "register_adapter",
    "resample",
    "save_audio",
    "unpatchify",
    "write_video",
]
