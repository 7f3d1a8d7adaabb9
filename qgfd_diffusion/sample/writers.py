"""Writers for ``qgfd sample`` outputs: raw latents (safetensors) and decoded samples by kind.

Dimension legend: B batch, L latent tokens, C latent channels, K_img image channels,
T frames, H/W image size, S audio samples.

``write_latents`` / ``read_latents`` store x0 latents [B, L, C] (and their padding mask [B, L])
with JSON-encoded string metadata. ``write_decoded(out_dir, kind, decoded)`` writes what an
adapter's ``decode_features`` returned; ``kind_of(adapter)`` picks the kind from the adapter's
registry name. Kinds (``WRITERS``) and what they write under ``out_dir``:

    image  images [B, K_img, H, W] in [0,1]  -> samples.png (grid), images/sample_000.png, ...
    text   list[str]                         -> samples.txt (one sample a line, UTF-8)
    audio  list of waveforms [S] in [-1,1]   -> audio/sample_000.wav, ... (16-bit PCM)
    video  videos [B, T, K_img, H, W] in [0,1] -> samples.png (grid of first frames),
                                                video/sample_000.gif, ...
    table  pandas DataFrame                  -> samples.csv

Every writer is deterministic: the same input gives byte-identical files (PNG/GIF carry no
timestamps and use fixed settings; CSV floats use one fixed format). Pixels are clamped to
[0,1] and waveforms clipped to [-1,1]; NaNs become 0 so the output is always defined.
Video goes to GIF rather than ``adapters.video.write_video``: its lossy codec output is not
guaranteed byte-stable and needs 3-channel frames with even sizes.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from PIL import Image

    from ..adapters.base import ModalityAdapter

PathLike = str | os.PathLike

LATENTS_KEY = "latents"
MASK_KEY = "mask"
SAFETENSORS_SIZE_BYTES = 8  # the u64 header size that opens a safetensors file
SAFETENSORS_ALIGN = 8  # header padding, so tensor data starts 8-byte aligned
GRID_NAME = "samples.png"
TEXT_NAME = "samples.txt"
TABLE_NAME = "samples.csv"
SAMPLE_STEM = "sample_{index:03d}"
UINT8_MAX = 255.0
PNG_COMPRESS_LEVEL = 6  # zlib level; fixed so PNG bytes do not depend on library defaults
GRID_PADDING = 2  # pixels between grid cells (torchvision's default)
GIF_FRAME_MS = 100  # 10 frames per second; GIF stores whole centiseconds
WAV_SUBTYPE = "PCM_16"
CSV_FLOAT_FORMAT = "%.8g"
IMAGE_CHANNELS = (1, 3, 4)  # grey, RGB, RGBA
VIDEO_CHANNELS = (1, 3)  # GIF has no alpha channel worth writing
IMAGE_DIMS = ("B", "K_img", "H", "W")
VIDEO_DIMS = ("B", "T", "K_img", "H", "W")

# Adapter registry name -> writer kind.
ADAPTER_KINDS: dict[str, str] = {
    "text": "text",
    "image": "image",
    "patch_image": "image",
    "audio": "audio",
    "video": "video",
    "tabular": "table",
}


@dataclass(frozen=True)
class WriteOptions:
    """sampling_rate: audio samples per second (audio only); nrow: grid images per row."""

    sampling_rate: int | None = None
    nrow: int | None = None


class LatentFile(NamedTuple):
    """What ``read_latents`` returns: latents [B, L, C], mask [B, L] or None, metadata."""

    latents: Tensor
    mask: Tensor | None
    metadata: dict[str, Any]


# ---------------------------------------------------------------------------------------------
# Latents


def write_latents(
    path: PathLike, latents: Tensor, metadata: Mapping[str, Any], mask: Tensor | None = None
) -> Path:
    """Save latents [B, L, C] (and mask [B, L]) to safetensors; metadata values as JSON strings."""
    from safetensors.torch import save

    if not isinstance(latents, Tensor):
        raise ValueError(f"latents must be a tensor, got {type(latents).__name__}")
    tensors = {LATENTS_KEY: latents}
    if mask is not None:
        if not isinstance(mask, Tensor) or mask.shape != latents.shape[:-1]:
            shape = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
            raise ValueError(
                f"mask must be a tensor of shape {tuple(latents.shape[:-1])} "
                f"(latents without the channel dim), got {shape}"
            )
        tensors[MASK_KEY] = mask
    tensors = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    raw = save(tensors, metadata=_encode_metadata(metadata))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_sorted_header(raw))
    return path


def _sorted_header(raw: bytes) -> bytes:
    """Rewrite a safetensors file's JSON header with sorted keys, so its bytes are reproducible.

    safetensors writes the header from a hash map, whose key order changes from call to call.
    Layout: u64 little-endian header size N, N bytes of JSON (space-padded to a multiple of
    SAFETENSORS_ALIGN), then the tensor bytes, addressed relative to their start (unchanged).
    """
    size = int.from_bytes(raw[:SAFETENSORS_SIZE_BYTES], "little")
    header = json.loads(raw[SAFETENSORS_SIZE_BYTES : SAFETENSORS_SIZE_BYTES + size])
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % SAFETENSORS_ALIGN)
    data = raw[SAFETENSORS_SIZE_BYTES + size :]
    return len(text).to_bytes(SAFETENSORS_SIZE_BYTES, "little") + text + data


def read_latents(path: PathLike) -> LatentFile:
    """Load what ``write_latents`` saved: latents, mask (None if not saved), decoded metadata."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        names = set(f.keys())
        if LATENTS_KEY not in names:
            raise ValueError(f"{str(path)!r} has no {LATENTS_KEY!r} tensor; found {sorted(names)}")
        latents = f.get_tensor(LATENTS_KEY)
        mask = f.get_tensor(MASK_KEY) if MASK_KEY in names else None
        metadata = {key: json.loads(value) for key, value in (f.metadata() or {}).items()}
    return LatentFile(latents, mask, metadata)


def _encode_metadata(metadata: Mapping[str, Any]) -> dict[str, str]:
    """{name: JSON-able value} -> {name: JSON string} (safetensors metadata is str -> str)."""
    if not isinstance(metadata, Mapping):
        raise ValueError(f"metadata must be a dict, got {type(metadata).__name__}")
    encoded = {}
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise ValueError(f"metadata keys must be str, got {key!r}")
        try:
            encoded[key] = json.dumps(value, sort_keys=True)
        except (TypeError, ValueError) as error:
            raise ValueError(f"metadata[{key!r}] is not JSON-serialisable: {error}") from error
    return encoded


# ---------------------------------------------------------------------------------------------
# Decoded samples


def kind_of(adapter: ModalityAdapter) -> str:
    """The writer kind for an adapter, from its registry name (``adapter.name``)."""
    name = getattr(adapter, "name", None)
    if name not in ADAPTER_KINDS:
        raise ValueError(
            f"no writer kind for adapter name {name!r} ({type(adapter).__name__}); "
            f"known adapter names: {sorted(ADAPTER_KINDS)}"
        )
    return ADAPTER_KINDS[name]


def write_decoded(
    out_dir: PathLike,
    kind: str,
    decoded: Any,
    *,
    sampling_rate: int | None = None,
    nrow: int | None = None,
) -> list[Path]:
    """Write decoded samples of ``kind`` under ``out_dir``; returns the written files in order.

    sampling_rate is required for audio and ignored otherwise; nrow (default ceil(sqrt(B)))
    sets the images per row of the image/video grid.
    """
    if kind not in WRITERS:
        raise ValueError(f"unknown writer kind {kind!r}; allowed: {sorted(WRITERS)}")
    if nrow is not None and (not isinstance(nrow, int) or nrow < 1):
        raise ValueError(f"nrow must be a positive int or None, got {nrow!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return WRITERS[kind](out_dir, decoded, WriteOptions(sampling_rate=sampling_rate, nrow=nrow))


def _check_nonempty(count: int, kind: str) -> None:
    if count == 0:
        raise ValueError(f"nothing to write: the decoded {kind} batch is empty")


def _sample_path(folder: Path, index: int, suffix: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder / (SAMPLE_STEM.format(index=index) + suffix)


# Pixels (shared by image and video) -----------------------------------------------------------


def _check_pixels(x: Any, kind: str, dims: tuple[str, ...], channels: tuple[int, ...]) -> Tensor:
    """A float tensor with one axis per name in ``dims`` and its ``K_img`` axis in ``channels``."""
    if not isinstance(x, Tensor) or x.ndim != len(dims):
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{kind} samples must be a float tensor [{', '.join(dims)}], got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"{kind} samples must be floating point in [0,1], got dtype {x.dtype}")
    k = x.shape[dims.index("K_img")]
    if k not in channels:
        raise ValueError(f"{kind} samples need K_img in {channels} channels, got {k}")
    _check_nonempty(x.shape[0], kind)
    return x


def _to_uint8(x: Tensor) -> Tensor:
    """Floats in [0,1] (clamped; NaN -> 0) -> uint8 [0,255], same shape, on CPU."""
    x = torch.nan_to_num(x.detach().cpu().float(), nan=0.0).clamp(0, 1)
    return (x * UINT8_MAX).round().to(torch.uint8)


def _pil_image(pixels: Tensor) -> Image.Image:
    """uint8 [K_img, H, W] -> PIL image (mode L, RGB or RGBA from K_img)."""
    from PIL import Image

    array = pixels.permute(1, 2, 0).numpy()  # [K,H,W] -> [H,W,K]
    return Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)


def _save_png(image: Image.Image, path: Path) -> Path:
    image.save(path, format="PNG", optimize=False, compress_level=PNG_COMPRESS_LEVEL)
    return path


def _save_grid(pixels: Tensor, path: Path, nrow: int | None) -> Path:
    """uint8 images [B, K_img, H, W] -> one PNG grid, nrow per row (default ceil(sqrt(B)))."""
    from torchvision.utils import make_grid

    nrow = nrow or math.ceil(math.sqrt(pixels.shape[0]))
    grid = make_grid(pixels, nrow=nrow, padding=GRID_PADDING, pad_value=0)  # [K_grid, H', W']
    return _save_png(_pil_image(grid), path)


def _write_images(out_dir: Path, decoded: Any, options: WriteOptions) -> list[Path]:
    pixels = _to_uint8(_check_pixels(decoded, "image", IMAGE_DIMS, IMAGE_CHANNELS))
    files = [_save_grid(pixels, out_dir / GRID_NAME, options.nrow)]
    for i, image in enumerate(pixels):
        files.append(_save_png(_pil_image(image), _sample_path(out_dir / "images", i, ".png")))
    return files


def _save_gif(frames: Tensor, path: Path) -> Path:
    """uint8 frames [T, K_img, H, W] -> looping GIF, GIF_FRAME_MS per frame.

    Pillow merges a frame identical to the one before it into a longer frame, so the file can
    hold fewer than T frames while playing for the same time.
    """
    images = [_pil_image(frame) for frame in frames]
    images[0].save(
        path,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=GIF_FRAME_MS,
        loop=0,
        optimize=False,
    )
    return path


def _write_videos(out_dir: Path, decoded: Any, options: WriteOptions) -> list[Path]:
    videos = _check_pixels(decoded, "video", VIDEO_DIMS, VIDEO_CHANNELS)
    if videos.shape[1] == 0:
        raise ValueError("video samples need at least one frame (dim T), got 0")
    pixels = _to_uint8(videos)  # [B,T,K,H,W]
    files = [_save_grid(pixels[:, 0], out_dir / GRID_NAME, options.nrow)]
    for i, frames in enumerate(pixels):
        files.append(_save_gif(frames, _sample_path(out_dir / "video", i, ".gif")))
    return files


# Text, audio, table ---------------------------------------------------------------------------


def _write_text(out_dir: Path, decoded: Any, options: WriteOptions) -> list[Path]:
    if isinstance(decoded, str) or not isinstance(decoded, Sequence):
        raise ValueError(f"text samples must be a list of str, got {type(decoded).__name__}")
    _check_nonempty(len(decoded), "text")
    lines = []
    for i, sample in enumerate(decoded):
        if not isinstance(sample, str):
            raise ValueError(f"text sample {i} must be a str, got {type(sample).__name__}")
        lines.append(" ".join(sample.splitlines()))  # one sample per line
    path = out_dir / TEXT_NAME
    with path.open("w", encoding="utf-8", newline="\n") as f:
        f.write("".join(line + "\n" for line in lines))
    return [path]


def _waveform(sample: Any, index: int) -> np.ndarray:
    """One waveform (tensor or array) [S] -> float32 numpy in [-1,1] (clipped; NaN -> 0)."""
    if isinstance(sample, Tensor):
        sample = sample.detach().cpu().float().numpy()
    if not isinstance(sample, np.ndarray) or sample.ndim != 1:
        shape = sample.shape if isinstance(sample, np.ndarray) else type(sample).__name__
        raise ValueError(f"audio sample {index} must be a 1-D waveform [S], got {shape}")
    return np.clip(np.nan_to_num(sample.astype(np.float32), nan=0.0), -1.0, 1.0)


def _write_audio(out_dir: Path, decoded: Any, options: WriteOptions) -> list[Path]:
    import soundfile as sf

    rate = options.sampling_rate
    if not isinstance(rate, int) or rate < 1:
        raise ValueError(
            f"audio needs sampling_rate, a positive int (the adapter's encoder_rate), got {rate!r}"
        )
    if isinstance(decoded, Tensor) and decoded.ndim == 2:
        decoded = list(decoded)  # [B,S] -> B waveforms [S]
    if not isinstance(decoded, Sequence):
        raise ValueError(
            f"audio samples must be a list of 1-D waveforms, got {type(decoded).__name__}"
        )
    _check_nonempty(len(decoded), "audio")
    files = []
    for i, sample in enumerate(decoded):
        path = _sample_path(out_dir / "audio", i, ".wav")
        sf.write(path, _waveform(sample, i), rate, subtype=WAV_SUBTYPE, format="WAV")
        files.append(path)
    return files


def _write_table(out_dir: Path, decoded: Any, options: WriteOptions) -> list[Path]:
    import pandas as pd

    if not isinstance(decoded, pd.DataFrame):
        raise ValueError(f"table samples must be a pandas DataFrame, got {type(decoded).__name__}")
    _check_nonempty(len(decoded), "table")
    path = out_dir / TABLE_NAME
    decoded.to_csv(
        path, index=False, float_format=CSV_FLOAT_FORMAT, lineterminator="\n", encoding="utf-8"
    )
    return [path]


# Writer kind -> function(out_dir, decoded, options) -> written files.
WRITERS: dict[str, Callable[[Path, Any, WriteOptions], list[Path]]] = {
    "image": _write_images,
    "text": _write_text,
    "audio": _write_audio,
    "video": _write_videos,
    "table": _write_table,
}
