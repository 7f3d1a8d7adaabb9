"""Writers for ``qgfd sample`` outputs: raw latents (safetensors) and decoded samples.

Dimension legend: B batch, L latent tokens, C latent channels.

``write_latents`` / ``read_latents`` store x0 latents [B, L, C] (and their padding mask [B, L])
with JSON-encoded string metadata; the file's bytes are reproducible (sorted header).
``write_decoded(out_dir, modality, decoded)`` writes what an adapter's ``decode`` returned with
the writer that adapter declares (``ModalityAdapter.writer``, looked up by ``adapter.modality``
in the adapter registry): PNG grid + PNGs (image), .txt (text), .wav (audio), .csv (tabular),
first-frame grid + GIFs (video). The writers and the helpers they share live with the adapters
(``qgfd_diffusion.adapters.files``); every one is deterministic.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from torch import Tensor

from ..adapters import WriteOptions, writer_for

PathLike = str | os.PathLike

LATENTS_KEY = "latents"
MASK_KEY = "mask"
SAFETENSORS_SIZE_BYTES = 8  # the u64 header size that opens a safetensors file
SAFETENSORS_ALIGN = 8  # header padding, so tensor data starts 8-byte aligned


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


def write_decoded(
    out_dir: PathLike,
    modality: str,
    decoded: Any,
    *,
    sampling_rate: int | None = None,
    nrow: int | None = None,
) -> list[Path]:
    """Write decoded samples of ``modality`` under ``out_dir``; returns the written files in order.

    modality: an adapter's ``modality`` (its writer comes from the registry, ``writer_for``).
    sampling_rate is required for audio and ignored otherwise; nrow sets the images per row of
    the image/video grid (default ceil(sqrt(B))) and the spectrograms per row of audio's
    (default 1).
    """
    writer = writer_for(modality)
    if nrow is not None and (not isinstance(nrow, int) or nrow < 1):
        raise ValueError(f"nrow must be a positive int or None, got {nrow!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return writer(out_dir, decoded, WriteOptions(sampling_rate=sampling_rate, nrow=nrow))
