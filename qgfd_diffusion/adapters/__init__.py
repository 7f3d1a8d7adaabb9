"""Modality adapters: raw data <-> normalised latent tokens x0 [B,L,C] for the shared denoiser.

The contract and shared machinery live in ``base``; one module per modality registers its
adapter by name (``registry``, ``ADAPTERS``: text, image, patch_image, audio, mel, video,
tabular, graph_signal). Each adapter class declares everything about its modality
(``declarations``: modality, condition_kind, schema, collate, writer, output_field,
convert_output); ``modalities``, ``collate_for``, ``schema_for`` and ``writer_for`` derive the
per-modality tables from the registry. Importing this package registers every adapter and is
light: transformers models, torchaudio, soundfile and av load only when used.
"""

from .audio import (
    AudioAdapter,
    AudioAdapterConfig,
    collate_audio,
    load_audio,
    resample,
    save_audio,
    write_audio,
)
from .base import (
    AdapterConfig,
    EncoderAdapterConfig,
    ModalityAdapter,
    PretrainedEncoderAdapter,
)
from .declarations import CONDITION_KINDS, ConditionKind, DataSchema
from .files import WriteOptions
from .graph_signal import (
    GraphSignalAdapter,
    GraphSignalConfig,
    collate_graph_signals,
    write_graph_signals,
)
from .image import (
    PatchImageAdapter,
    PatchImageConfig,
    ViTImageAdapter,
    ViTImageConfig,
    collate_image,
    patchify,
    unpatchify,
    write_images,
)
from .mel import LogMel, MelAdapter, MelAdapterConfig
from .registry import (
    ADAPTERS,
    adapter_classes,
    adapter_spec,
    build_adapter,
    collate_for,
    get_adapter_class,
    load_adapter,
    modalities,
    modality_class,
    register_adapter,
    schema_for,
    unregister_adapter,
    writer_for,
)
from .tabular import TabularAdapter, TabularAdapterConfig, collate_tabular, write_tabular
from .text import TextAdapter, TextAdapterConfig, collate_text, write_text
from .tiny import TINY_ENCODERS, build_tiny_encoder
from .video import (
    VideoAdapter,
    VideoAdapterConfig,
    collate_video,
    read_video_frames,
    write_video,
    write_videos,
)

__all__ = [
    "ADAPTERS",
    "AdapterConfig",
    "AudioAdapter",
    "AudioAdapterConfig",
    "CONDITION_KINDS",
    "ConditionKind",
    "DataSchema",
    "EncoderAdapterConfig",
    "GraphSignalAdapter",
    "GraphSignalConfig",
    "LogMel",
    "MelAdapter",
    "MelAdapterConfig",
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
    "WriteOptions",
    "adapter_classes",
    "adapter_spec",
    "build_adapter",
    "build_tiny_encoder",
    "collate_audio",
    "collate_for",
    "collate_graph_signals",
    "collate_image",
    "collate_tabular",
    "collate_text",
    "collate_video",
    "get_adapter_class",
    "load_adapter",
    "load_audio",
    "modalities",
    "modality_class",
    "patchify",
    "read_video_frames",
    "register_adapter",
    "resample",
    "save_audio",
    "schema_for",
    "unpatchify",
    "unregister_adapter",
    "write_audio",
    "write_graph_signals",
    "write_images",
    "write_tabular",
    "write_text",
    "write_video",
    "write_videos",
    "writer_for",
]
