"""Video adapter: every frame through an image adapter, tokens laid out as (frames, h, w).

Dimension legend: B batch, T frames, K_img image channels, H/W frame size, h/w token grid,
N = h*w tokens per frame, C latent channels, K classes.

Video batches: a tensor [B,T,K_img,H,W] (``uint8`` is divided by 255) or
``{"videos": tensor, "labels": [B] ints}``. The image adapter (``PatchImageAdapter`` for exact
pixels, ``ViTImageAdapter`` for frozen features) encodes the B*T frames; latents are
[B, T*N, C], frame-major, layout ``video`` (T, h, w), so the backbone adds temporal positions.
The video adapter keeps its own latent statistics; decoding runs the image adapter's decoder per
frame. ``read_video_frames`` / ``write_video`` use PyAV (imported lazily).

Modality "video", ``condition_kind`` "label". ``collate_video`` stacks the data layer's examples
``{"video": [T,K_img,H,W], "label"}`` (``VIDEO_SCHEMA``; label optional, e.g. Moving MNIST's
digit class); the pipeline's output field is ``videos`` (``pixel_output``); ``write_videos``
writes decoded videos [B,T,K_img,H,W] in [0,1] to ``samples.png`` (grid of first frames, the
image writer's grid), ``video/sample_000.gif``, ... and ``frames.png`` (every frame, one row per
sample, with an enlarged copy to look at).
Samples go to GIF rather than ``write_video``: a lossy codec's output is not guaranteed
byte-stable and needs 3-channel frames with even sizes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from einops import rearrange
from torch import Tensor, nn
from torch.nn import functional as F

from ..latents import LatentBatch, LatentLayout
from .base import AdapterConfig, ModalityAdapter
from .declarations import DataSchema
from .files import (
    GRID_NAME,
    UINT8_MAX,
    WriteOptions,
    check_pixels,
    pil_image,
    pixel_output,
    sample_path,
    save_grid,
    to_uint8,
)
from .helpers import check_file, label_condition
from .image import NO_LABEL, split_pixel_batch
from .registry import adapter_spec, build_adapter, load_adapter, register_adapter

VideoBatch = Tensor | Mapping[str, Any]
_IMAGE_FOLDER = "image_adapter"
GIF_FRAME_MS = 100  # 10 frames per second; GIF stores whole centiseconds
VIDEO_CHANNELS = (1, 3)  # GIF has no alpha channel worth writing
VIDEO_DIMS = ("B", "T", "K_img", "H", "W")
STRIP_NAME = "frames.png"


def read_video_frames(
    path: str | os.PathLike, num_frames: int | None = None, size: tuple[int, int] | None = None
) -> Tensor:
    """Decode a video file with PyAV -> frames [T, 3, H, W] float in [0,1].

    num_frames: keep the first T frames (None: all); size: (H, W) to resize to (bilinear).
    """
    import av

    path = check_file(path, "video file")
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(torch.from_numpy(frame.to_ndarray(format="rgb24")))  # [H,W,3] uint8
            if num_frames is not None and len(frames) == num_frames:
                break
    if not frames:
        raise ValueError(f"no video frames could be decoded from {str(path)!r}")
    video = rearrange(torch.stack(frames), "t h w k -> t k h w").float() / UINT8_MAX
    if size is not None:
        video = F.interpolate(video, size=tuple(size), mode="bilinear", antialias=True)
    return video


def write_video(path: str | os.PathLike, video: Tensor, fps: int = 8, codec: str = "mpeg4") -> Path:
    """Encode frames [T, 3, H, W] in [0,1] to a video file with PyAV."""
    import av

    path = Path(path)
    pixels = (video.detach().cpu().clamp(0, 1) * UINT8_MAX).round().to(torch.uint8)
    pixels = rearrange(pixels, "t k h w -> t h w k").numpy()  # [T,H,W,3]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = pixels.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for frame in pixels:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())  # flush
    return path


# The data layer's video examples: {"video": float32 [T, K_img, H, W] in [0, 1], "label": int}.
VIDEO_SCHEMA = DataSchema(column="video", label="label", arrays=("video",))


def collate_video(examples: list[dict[str, Any]]) -> dict[str, Tensor]:
    """-> {"videos": float32 [B, T, K_img, H, W], "labels": int64 [B]} (label -1: unlabelled;
    adapters without classes drop the labels in ``prepare_batch``)."""
    videos = np.stack([np.asarray(example["video"], dtype=np.float32) for example in examples])
    labels = [int(example.get("label", NO_LABEL)) for example in examples]
    return {"videos": torch.from_numpy(videos), "labels": torch.tensor(labels)}


def save_gif(frames: Tensor, path: Path) -> Path:
    """uint8 frames [T, K_img, H, W] -> looping GIF, GIF_FRAME_MS per frame.

    Pillow merges a frame identical to the one before it into a longer frame, so the file can
    hold fewer than T frames while playing for the same time.
    """
    images = [pil_image(frame) for frame in frames]
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


def write_videos(out_dir: Path, decoded: Any, options: WriteOptions) -> list[Path]:
    """Videos [B, T, K_img, H, W] in [0,1] -> samples.png (first frames), video/*.gif, then
    frames.png: every frame, one row per sample (with an enlarged copy, ``save_grid``)."""
    videos = check_pixels(decoded, "video", VIDEO_DIMS, VIDEO_CHANNELS)
    if videos.shape[1] == 0:
        raise ValueError("video samples need at least one frame (dim T), got 0")
    pixels = to_uint8(videos)  # [B,T,K,H,W]
    files = save_grid(pixels[:, 0], out_dir / GRID_NAME, options.nrow)
    for i, frames in enumerate(pixels):
        files.append(save_gif(frames, sample_path(out_dir / "video", i, ".gif")))
    strip = rearrange(pixels, "b t k h w -> (b t) k h w")  # row-major: one sample per grid row
    return files + save_grid(strip, out_dir / STRIP_NAME, nrow=pixels.shape[1])


def split_video_batch(batch: VideoBatch) -> tuple[Tensor, Tensor | None]:
    """A video batch -> (float videos [B,T,K_img,H,W], labels [B] or None)."""
    return split_pixel_batch(batch, "videos", "B, T, channels, H, W")


@dataclass(kw_only=True)
class VideoAdapterConfig(AdapterConfig):
    """image_adapter: ``adapter_spec`` of the per-frame adapter ({"adapter", "config"});
    num_classes: K for label conditioning (0: none)."""

    image_adapter: dict[str, Any]
    num_classes: int = 0


@register_adapter("video")
class VideoAdapter(ModalityAdapter):
    """Frames through an image adapter; latents [B, T*N, C] with layout video (T, h, w)."""

    modality = "video"
    condition_kind = "label"
    schema = VIDEO_SCHEMA
    collate = staticmethod(collate_video)
    writer = staticmethod(write_videos)
    output_field = "videos"
    convert_output = staticmethod(pixel_output)
    config_class = VideoAdapterConfig

    def __init__(self, config: VideoAdapterConfig, image_adapter: ModalityAdapter | None = None):
        super().__init__(config)
        image_adapter = image_adapter or build_adapter(config.image_adapter)
        if not hasattr(image_adapter, "grid"):
            raise ValueError(
                f"a video adapter needs an image adapter with a token grid, "
                f"got {type(image_adapter).__name__}"
            )
        self.image_adapter = image_adapter
        self._init_latent_stats(image_adapter.latent_dim)

    @classmethod
    def from_image_adapter(cls, image_adapter: ModalityAdapter, **options: Any) -> VideoAdapter:
        """Wrap an existing image adapter (its fitted head comes along)."""
        config = VideoAdapterConfig(image_adapter=adapter_spec(image_adapter), **options)
        return cls(config, image_adapter)

    @property
    def tokens_per_frame(self) -> int:
        return self.image_adapter.grid[0] * self.image_adapter.grid[1]  # N = h*w

    @torch.no_grad()
    def encode_features(self, batch: VideoBatch) -> LatentBatch:
        videos, labels = split_video_batch(batch)
        frames = rearrange(videos, "b t k h w -> (b t) k h w")
        z = self.image_adapter.encode_features(frames).latents  # [(B T), N, C]
        z = rearrange(z, "(b t) n c -> b (t n) c", b=videos.shape[0])
        cond_tokens, cond_mask = (None, None)
        if labels is not None:
            cond_tokens, cond_mask = (
                t.to(z.device) for t in label_condition(labels, self.config.num_classes)
            )
        layout = LatentLayout("video", (videos.shape[1], *self.image_adapter.grid))
        return LatentBatch(
            latents=z, layout=layout, mask=None, cond_tokens=cond_tokens, cond_mask=cond_mask
        )

    @property
    def can_decode(self) -> bool:
        return self.image_adapter.can_decode

    def decode_features(self, z: Tensor, mask: Tensor | None = None) -> Tensor:
        """z [B, T*N, C] -> videos [B, T, K_img, H, W] (per-frame image decoding)."""
        if z.shape[1] % self.tokens_per_frame:
            raise ValueError(
                f"{z.shape[1]} tokens is not a whole number of frames of "
                f"{self.tokens_per_frame} tokens"
            )
        frames = rearrange(z, "b (t n) c -> (b t) n c", n=self.tokens_per_frame)
        images = self.image_adapter.decode_features(frames)  # [(B T), K_img, H, W]
        return rearrange(images, "(b t) k h w -> b t k h w", b=z.shape[0])

    def decoder_parameters(self) -> list[nn.Parameter]:
        return self.image_adapter.decoder_parameters()

    def fit_decoder(
        self, batches: Iterable[VideoBatch], steps: int = 200, lr: float = 1e-3
    ) -> list[float]:
        """Fit the image adapter's decoder head on the frames of ``batches``."""
        frames = (rearrange(split_video_batch(b)[0], "b t k h w -> (b t) k h w") for b in batches)
        return self.image_adapter.fit_decoder(frames, steps=steps, lr=lr)

    def frozen_modules(self) -> list[nn.Module]:
        return self.image_adapter.frozen_modules()

    def _subfolder_parts(self) -> dict[str, list[Any]]:
        return {_IMAGE_FOLDER: [self.image_adapter]}

    def _skipped_prefixes(self) -> tuple[str, ...]:
        return (f"{_IMAGE_FOLDER}.",)

    @classmethod
    def _from_folder(cls, config: VideoAdapterConfig, directory: Path) -> ModalityAdapter:
        return cls(config, load_adapter(directory / _IMAGE_FOLDER))
