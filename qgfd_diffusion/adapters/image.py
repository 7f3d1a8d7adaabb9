"""Image adapters: exact pixel patches (DiT-style) and a frozen ViT / transformers image encoder.

Dimension legend: B batch, K_img image channels, H/W image height/width, ph/pw patch height/
width, h/w grid height/width (H/ph, W/pw), L = h*w tokens, D encoder width, C latent channels,
K classes.

Image batches: a float tensor [B,K_img,H,W] (``uint8`` is divided by 255), or a dict
``{"images": tensor, "labels": [B] ints}``. Labels become fixed one-hot condition tokens
[B,1,K]: a class label describes the image, it is not the image, so nothing leaks.

``PatchImageAdapter``: no encoder. Images -> [B, h*w, K_img*p*p] patches, decode = unpatchify,
exact for any value range ([0,1] or [-1,1]); C = K_img*p*p.

``ViTImageAdapter``: images in [0,1], normalised with the processor's mean/std, through the
frozen encoder; latents are the patch tokens (CLS / distillation / register tokens dropped),
layout ``grid`` (h, w). Decoding needs the pixel head (an MLP per token -> its ph*pw patch,
fitted by MSE with ``fit_decoder``): a blurry but honest inverse, outputs clamped to [0,1].

Both adapters are modality "image" with ``condition_kind`` "label" and share its declarations:
the data layer's examples ``{"image": [K_img,H,W], "label"}`` (``IMAGE_SCHEMA``; hub / files
Image columns decoded by ``decode_image_examples``), which ``collate_image`` turns into
``{"images", "labels"}``; ``write_images`` writes decoded images [B,K_img,H,W] in [0,1] to
``samples.png`` (grid) and ``images/sample_000.png``, ...; the pipeline's output field
``images`` (PIL, numpy or tensors: ``pixel_output``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from einops import rearrange
from torch import Tensor, nn
from torch.nn import functional as F

from ..latents import LatentBatch, LatentLayout
from .base import AdapterConfig, EncoderAdapterConfig, ModalityAdapter, PretrainedEncoderAdapter
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
    save_png,
    to_uint8,
)
from .helpers import check_batch_keys, label_condition, mlp_head
from .registry import register_adapter

ImageBatch = Tensor | Mapping[str, Any]
NO_LABEL = -1  # the data layer's label of an unlabelled image
IMAGE_CHANNELS = (1, 3, 4)  # grey, RGB, RGBA
IMAGE_DIMS = ("B", "K_img", "H", "W")


def patchify(images: Tensor, patch: tuple[int, int]) -> Tensor:
    """[B, K_img, h*ph, w*pw] -> [B, h*w, K_img*ph*pw] (row-major grid)."""
    ph, pw = patch
    return rearrange(images, "b k (h ph) (w pw) -> b (h w) (k ph pw)", ph=ph, pw=pw)


def unpatchify(tokens: Tensor, grid: tuple[int, int], patch: tuple[int, int]) -> Tensor:
    """[B, h*w, K_img*ph*pw] -> [B, K_img, h*ph, w*pw] (exact inverse of ``patchify``)."""
    (h, w), (ph, pw) = grid, patch
    return rearrange(tokens, "b (h w) (k ph pw) -> b k (h ph) (w pw)", h=h, w=w, ph=ph, pw=pw)


def split_pixel_batch(batch: Any, key: str, layout: str) -> tuple[Tensor, Tensor | None]:
    """A pixel batch, a tensor or {key: tensor, "labels": [B]} -> (float pixels, labels or None).

    ``layout`` names the tensor's dims (e.g. "B, channels, H, W") and fixes its rank; uint8
    pixels become floats in [0, 1].
    """
    labels = None
    if isinstance(batch, Mapping):
        check_batch_keys(batch, (key,), ("labels",), "a pixel")
        batch, labels = batch[key], batch.get("labels")
    rank = len(layout.split(","))
    if not isinstance(batch, Tensor) or batch.ndim != rank:
        shape = tuple(batch.shape) if isinstance(batch, Tensor) else type(batch).__name__
        raise ValueError(f"{key} must be a tensor [{layout}], got {shape}")
    pixels = batch.float() / UINT8_MAX if batch.dtype == torch.uint8 else batch.float()
    return pixels, labels


def split_image_batch(batch: ImageBatch) -> tuple[Tensor, Tensor | None]:
    """An image batch -> (float images [B,K_img,H,W], labels [B] or None)."""
    return split_pixel_batch(batch, "images", "B, channels, H, W")


def check_image_shape(images: Tensor, channels: int, size: tuple[int, int]) -> Tensor:
    if images.ndim != 4 or images.shape[1] != channels or tuple(images.shape[-2:]) != size:
        raise ValueError(
            f"expected images [B, {channels}, {size[0]}, {size[1]}], got {tuple(images.shape)}: "
            "resize/crop them to the adapter's image size first"
        )
    return images


def grid_latent_batch(
    z: Tensor, grid: tuple[int, int], labels: Any, num_classes: int
) -> LatentBatch:
    """z [B, h*w, C] (+ optional labels) -> LatentBatch with layout grid (h, w)."""
    cond_tokens, cond_mask = (None, None)
    if labels is not None:
        cond_tokens, cond_mask = (t.to(z.device) for t in label_condition(labels, num_classes))
    return LatentBatch(
        latents=z,
        layout=LatentLayout("grid", tuple(grid)),
        mask=None,
        cond_tokens=cond_tokens,
        cond_mask=cond_mask,
    )


def _pair(value: int | list[int] | tuple[int, int]) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _height_width(size: Any) -> tuple[int, int] | None:
    """A processor's size (int, dict or SizeDict with height/width or shortest_edge) -> (H, W)."""
    if size is None or isinstance(size, int):
        return None if size is None else (size, size)
    read = size.get if isinstance(size, Mapping) else lambda key: getattr(size, key, None)
    if read("height") and read("width"):
        return int(read("height")), int(read("width"))
    edge = read("shortest_edge")
    return (int(edge), int(edge)) if edge else None


def collate_image(examples: list[dict[str, Any]]) -> dict[str, Tensor]:
    """-> {"images": float32 [B, K_img, H, W] in [0, 1], "labels": int64 [B]} (the image
    adapters' batch keys; label -1 = unlabelled)."""
    pixels = np.stack([np.asarray(example["image"], dtype=np.float32) for example in examples])
    labels = [int(example.get("label", NO_LABEL)) for example in examples]
    return {"images": torch.from_numpy(pixels), "labels": torch.tensor(labels)}


def _image_array(image: Any) -> np.ndarray:
    """PIL image -> float32 [K_img, H, W] in [0, 1]; grey stays 1 channel, anything else is RGB."""
    image = image if image.mode in ("L", "RGB") else image.convert("RGB")
    pixels = np.asarray(image, dtype=np.float32) / 255.0  # [H, W] or [H, W, K_img]
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)  # -> [K_img, H, W]


def decode_image_examples(batch: dict[str, list]) -> dict[str, list]:
    """Hub / files rows {"image": PIL images, "label"?} -> the schema's rows (``IMAGE_SCHEMA``)."""
    n = len(batch["image"])
    return {
        "image": [_image_array(image) for image in batch["image"]],
        "label": batch.get("label", [NO_LABEL] * n),
    }


# The data layer's image examples: {"image": float32 [K_img, H, W] in [0, 1], "label": int}
# (label -1 when unknown); a hub / files Image column is decoded on access.
IMAGE_SCHEMA = DataSchema(
    column="image", label="label", arrays=("image",), feature="Image", decode=decode_image_examples
)


def write_images(out_dir: Path, decoded: Any, options: WriteOptions) -> list[Path]:
    """Images [B, K_img, H, W] in [0,1] -> samples.png (grid), images/sample_000.png, ..."""
    pixels = to_uint8(check_pixels(decoded, "image", IMAGE_DIMS, IMAGE_CHANNELS))
    files = save_grid(pixels, out_dir / GRID_NAME, options.nrow)
    for i, image in enumerate(pixels):
        files.append(save_png(pil_image(image), sample_path(out_dir / "images", i, ".png")))
    return files


# ---------------------------------------------------------------------------------------------


class ImageModality:
    """The image modality's declarations (``declarations``), shared by both image adapters."""

    modality = "image"
    condition_kind = "label"
    schema = IMAGE_SCHEMA
    collate = staticmethod(collate_image)
    writer = staticmethod(write_images)
    output_field = "images"
    convert_output = staticmethod(pixel_output)


@dataclass(kw_only=True)
class PatchImageConfig(AdapterConfig):
    """image_size: H (= W) or [H, W]; patch_size: p (divides H and W); channels: K_img;
    num_classes: K for label conditioning (0: none)."""

    image_size: int | list[int]
    patch_size: int
    channels: int = 3
    num_classes: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        height, width = _pair(self.image_size)
        if self.patch_size < 1 or height % self.patch_size or width % self.patch_size:
            raise ValueError(
                f"patch_size {self.patch_size} must divide image_size {self.image_size}"
            )


@register_adapter("patch_image")
class PatchImageAdapter(ImageModality, ModalityAdapter):
    """DiT-style pixel patches: exact encode/decode, no encoder, nothing trainable."""

    config_class = PatchImageConfig

    def __init__(self, config: PatchImageConfig):
        super().__init__(config)
        self.image_size = _pair(config.image_size)
        self.patch = (config.patch_size, config.patch_size)
        self.grid = (
            self.image_size[0] // config.patch_size,
            self.image_size[1] // config.patch_size,
        )
        self.channels = config.channels
        self._init_latent_stats(config.channels * config.patch_size**2)

    def encode_features(self, batch: ImageBatch) -> LatentBatch:
        images, labels = split_image_batch(batch)
        images = check_image_shape(images.to(self.device), self.channels, self.image_size)
        return grid_latent_batch(
            patchify(images, self.patch), self.grid, labels, self.config.num_classes
        )

    @property
    def can_decode(self) -> bool:
        return True

    def decode_features(self, z: Tensor, mask: Tensor | None = None) -> Tensor:
        """z [B, h*w, C] -> images [B, K_img, H, W]."""
        return unpatchify(z, self.grid, self.patch)


# ---------------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class ViTImageConfig(EncoderAdapterConfig):
    """num_classes: K for label conditioning (0: none); decoder_hidden: pixel head width."""

    num_classes: int = 0
    decoder_hidden: int = 256


@register_adapter("image")
class ViTImageAdapter(ImageModality, PretrainedEncoderAdapter):
    """Patch tokens of a frozen ViT (or any transformers image encoder) + a pixel head."""

    config_class = ViTImageConfig

    def __init__(self, config: ViTImageConfig):
        super().__init__(config)
        processor, hf_config = self.processor, self.pretrained.config
        self.channels = int(getattr(hf_config, "num_channels", 3))
        self.image_size = self._processor_size(processor, hf_config)
        mean = getattr(processor, "image_mean", None) or [0.0] * self.channels
        std = getattr(processor, "image_std", None) or [1.0] * self.channels
        if not getattr(processor, "do_normalize", True):
            mean, std = [0.0] * self.channels, [1.0] * self.channels
        self.register_buffer("pixel_mean", torch.tensor(mean).float().view(-1, 1, 1))  # [K_img,1,1]
        self.register_buffer("pixel_std", torch.tensor(std).float().view(-1, 1, 1))
        self.grid, self._prefix_tokens = self._probe_grid()
        self.patch = (self.image_size[0] // self.grid[0], self.image_size[1] // self.grid[1])
        pixels_per_token = self.channels * self.patch[0] * self.patch[1]
        self.decoder_head = mlp_head(self.latent_dim, config.decoder_hidden, pixels_per_token)

    def _load_pretrained(self, source: str) -> tuple[nn.Module, Any]:
        from transformers import AutoImageProcessor, AutoModel

        model = AutoModel.from_pretrained(source, use_safetensors=True)
        return model, AutoImageProcessor.from_pretrained(source)

    @staticmethod
    def _processor_size(processor: Any, hf_config: Any) -> tuple[int, int]:
        """(H, W) the encoder expects: the processor's crop or resize size, else the config's."""
        use_crop = getattr(processor, "do_center_crop", False)
        size = _height_width(getattr(processor, "crop_size" if use_crop else "size", None))
        if size is None and getattr(hf_config, "image_size", None):
            size = _pair(hf_config.image_size)
        if size is None:
            raise ValueError("cannot tell the image size from the processor or the model config")
        return size

    @torch.no_grad()
    def _probe_grid(self) -> tuple[tuple[int, int], int]:
        """One blank forward pass: the token grid (h, w) and how many prefix tokens to drop."""
        blank = torch.zeros(1, self.channels, *self.image_size)
        out = self.pretrained(pixel_values=blank).last_hidden_state
        if out.ndim == 4:  # [1, D, h, w] convolutional feature map
            return (out.shape[-2], out.shape[-1]), 0
        patch = _pair(getattr(self.pretrained.config, "patch_size", 0) or 0)
        if not patch[0]:
            raise ValueError(
                f"{type(self.pretrained).__name__} has no patch_size: cannot find its grid"
            )
        grid = (self.image_size[0] // patch[0], self.image_size[1] // patch[1])
        return grid, out.shape[1] - grid[0] * grid[1]

    def _features(self, images: Tensor) -> Tensor:
        """Images [B,K_img,H,W] in [0,1] -> z [B, h*w, C]."""
        images = check_image_shape(images.to(self.device), self.channels, self.image_size)
        out = self.pretrained(pixel_values=(images - self.pixel_mean) / self.pixel_std)
        h = out.last_hidden_state
        if h.ndim == 4:
            h = rearrange(h, "b d h w -> b (h w) d")  # [B, h*w, D]
        else:
            h = h[:, self._prefix_tokens :]  # drop CLS etc.: [B, h*w, D]
        return self.project(h)

    @torch.no_grad()
    def encode_features(self, batch: ImageBatch) -> LatentBatch:
        images, labels = split_image_batch(batch)
        return grid_latent_batch(self._features(images), self.grid, labels, self.config.num_classes)

    @property
    def can_decode(self) -> bool:
        return bool(self.decoder_fitted)

    def decode_features(self, z: Tensor, mask: Tensor | None = None) -> Tensor:
        """z [B, h*w, C] -> images [B, K_img, H, W] in [0,1]."""
        return self._pixels(z).clamp(0, 1)

    def _pixels(self, z: Tensor) -> Tensor:
        return unpatchify(self.decoder_head(z), self.grid, self.patch)  # [B,K_img,H,W]

    def _decoder_example(self, batch: ImageBatch) -> tuple[Tensor, Tensor]:
        images, _ = split_image_batch(batch)
        return self._features(images), images.to(self.device)

    def _decoder_loss(self, example: tuple[Tensor, Tensor]) -> Tensor:
        z, images = example
        return F.mse_loss(self._pixels(z), images)
