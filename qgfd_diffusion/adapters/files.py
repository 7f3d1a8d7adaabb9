"""What the per-modality sample writers share: options, sample paths, pixels, PNG, image grids,
and decoded pixels in the pipeline's output types (``pixel_output``).

Dimension legend: B batch, F frames, K_img image channels, H/W image size.

Each modality's writer lives with its adapter (``ModalityAdapter.writer``: image.py writes a PNG
grid + PNGs, video.py a grid of first frames + GIFs, text.py .txt, audio.py .wav, tabular.py
.csv); ``qgfd_diffusion.sample.writers.write_decoded`` picks it by modality. Every writer is
deterministic: the same input gives byte-identical files (PNG/GIF carry no timestamps and use
fixed settings). Pixels are clamped to [0,1] and NaNs become 0 so the output is always defined.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from PIL import Image

GRID_NAME = "samples.png"
SAMPLE_STEM = "sample_{index:03d}"
UINT8_MAX = 255.0
PNG_COMPRESS_LEVEL = 6  # zlib level; fixed so PNG bytes do not depend on library defaults
GRID_PADDING = 2  # pixels between grid cells (torchvision's default)
# A grid's shorter side is scaled up (nearest neighbour, integer factor) to at least this many
# pixels in a second, viewable copy: native 8x8 or 28x28 samples make grids too small to see.
VIEW_MIN_SIDE = 256


@dataclass(frozen=True)
class WriteOptions:
    """sampling_rate: audio samples per second (audio only); nrow: grid images per row."""

    sampling_rate: int | None = None
    nrow: int | None = None


def check_nonempty(count: int, modality: str) -> None:
    if count == 0:
        raise ValueError(f"nothing to write: the decoded {modality} batch is empty")


def sample_path(folder: Path, index: int, suffix: str) -> Path:
    """``folder/sample_007.png`` for index 7 (``folder`` is created)."""
    folder.mkdir(parents=True, exist_ok=True)
    return folder / (SAMPLE_STEM.format(index=index) + suffix)


def check_pixels(x: Any, modality: str, dims: tuple[str, ...], channels: tuple[int, ...]) -> Tensor:
    """A float tensor with one axis per name in ``dims`` and its ``K_img`` axis in ``channels``."""
    if not isinstance(x, Tensor) or x.ndim != len(dims):
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(
            f"{modality} samples must be a float tensor [{', '.join(dims)}], got {shape}"
        )
    if not x.is_floating_point():
        raise ValueError(f"{modality} samples must be floating point in [0,1], got dtype {x.dtype}")
    k = x.shape[dims.index("K_img")]
    if k not in channels:
        raise ValueError(f"{modality} samples need K_img in {channels} channels, got {k}")
    check_nonempty(x.shape[0], modality)
    return x


def to_uint8(x: Tensor) -> Tensor:
    """Floats in [0,1] (clamped; NaN -> 0) -> uint8 [0,255], same shape, on CPU."""
    x = torch.nan_to_num(x.detach().cpu().float(), nan=0.0).clamp(0, 1)
    return (x * UINT8_MAX).round().to(torch.uint8)


def pil_image(pixels: Tensor) -> Image.Image:
    """uint8 [K_img, H, W] -> PIL image (mode L, RGB or RGBA from K_img)."""
    from PIL import Image

    array = pixels.permute(1, 2, 0).numpy()  # [K,H,W] -> [H,W,K]
    return Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)


def save_png(image: Image.Image, path: Path) -> Path:
    image.save(path, format="PNG", optimize=False, compress_level=PNG_COMPRESS_LEVEL)
    return path


def save_grid(pixels: Tensor, path: Path, nrow: int | None) -> list[Path]:
    """uint8 images [B, K_img, H, W] -> a PNG grid at native size, nrow per row (default
    ceil(sqrt(B))), and, where that is small, a nearest-neighbour upscaled copy
    ``<stem>_x<k>.png`` whose shorter side is at least ``VIEW_MIN_SIDE`` pixels."""
    from torchvision.utils import make_grid

    nrow = nrow or math.ceil(math.sqrt(pixels.shape[0]))
    grid = make_grid(pixels, nrow=nrow, padding=GRID_PADDING, pad_value=0)  # [K_grid, H', W']
    files = [save_png(pil_image(grid), path)]
    factor = math.ceil(VIEW_MIN_SIDE / min(grid.shape[-2:]))
    if factor > 1:
        view = grid.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)
        files.append(save_png(pil_image(view), path.with_name(f"{path.stem}_x{factor}.png")))
    return files


def pixel_output(decoded: Any, output_type: str) -> Any:
    """Decoded images [B, K_img, H, W] or videos [B, F, K_img, H, W] in diffusers' conventions:
    ``pt`` the tensors as decoded, ``np`` [B, (F,) H, W, K_img] arrays in [0, 1], ``pil`` PIL
    images (a list of frames per video)."""
    if output_type == "pt":
        return decoded
    array = torch.as_tensor(decoded).float().clamp(0, 1).cpu().numpy()  # [B, (F,) K, H, W]
    channels_last = np.moveaxis(array, -3, -1)  # [B, (F,) H, W, K]
    if output_type == "np":
        return channels_last
    if channels_last.ndim == 5:  # videos: a list of frames each
        return [[_pil_from_array(frame) for frame in clip] for clip in channels_last]
    return [_pil_from_array(image) for image in channels_last]


def _pil_from_array(image: np.ndarray) -> Image.Image:
    """float [H, W, K_img] in [0, 1] -> PIL image (mode L for one channel)."""
    from PIL import Image

    pixels = (image * 255).round().astype(np.uint8)  # [H, W, K]
    return Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
