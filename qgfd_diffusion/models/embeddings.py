"""Timestep, positional and modality embeddings of the DiT-style backbone.

Dimension legend: B batch, L latent tokens, D model width, F sinusoid frequencies, k axes of a
layout (sequence/columns 1, grid 2, video 3).

* Timestep: sinusoidal features of t (Vaswani et al. 2017; DiT, Peebles & Xie 2023) -> MLP.
* Position: FIXED sin-cos features per layout axis, computed from the ``LatentLayout`` so that any
  length / grid / clip size works: 1-D for sequences, 2-D for image grids (DiT's
  ``get_2d_sincos_pos_embed``), frames x 2-D for video, column index for tables, nothing for
  graph nodes (``nodes``: their numbering is arbitrary, so a position would be noise, or worse, a
  leak of how the generator numbered them). Each of the k axes gets an equal even share of the D
  channels; leftover channels stay zero.
* Graph position (optional): the k lowest non-trivial eigenvectors of the graph's normalised
  Laplacian, each with a random sign in training (GraphGPS-style LapPE), -> Linear(k, D).
* Modality: one learned vector per modality, so one backbone can tell text from image latents.

Precision: position tables are computed in float64 on the CPU, cached, then cast.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor, nn

from ..graphs import laplacian_eigenvectors
from ..latents import LatentLayout

MAX_PERIOD = 10_000.0  # longest wavelength of the sinusoids (Transformer / DiT)
TIMESTEP_FREQUENCIES = 256  # F, DiT's ``frequency_embedding_size``


def sinusoidal_features(positions: Tensor, dim: int, max_period: float = MAX_PERIOD) -> Tensor:
    """[N] positions -> [N, dim] features [cos(p w_i), sin(p w_i)], w_i = max_period^(-i / half).

    Computed in the dtype of ``positions`` when floating (float32 at least); odd ``dim`` gets a
    zero last channel.
    """
    dtype = positions.dtype if positions.is_floating_point() else torch.float32
    dtype = torch.promote_types(dtype, torch.float32)
    half = dim // 2
    exponent = torch.arange(half, dtype=dtype, device=positions.device) / max(half, 1)
    omega = torch.exp(-math.log(max_period) * exponent)  # w_i [F]
    angles = positions.to(dtype)[:, None] * omega[None, :]  # [N, F]
    features = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)  # [N, 2F]
    if dim % 2:
        features = torch.nn.functional.pad(features, (0, 1))
    return features


class TimestepEmbedder(nn.Module):
    """t [B] (integer or continuous) -> [B, D]: sinusoidal features -> Linear -> SiLU -> Linear."""

    def __init__(self, width: int, frequencies: int = TIMESTEP_FREQUENCIES):
        super().__init__()
        self.frequencies = frequencies
        self.mlp = nn.Sequential(nn.Linear(frequencies, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, t: Tensor) -> Tensor:
        features = sinusoidal_features(t.float(), self.frequencies)  # [B, F*2], fp32
        return self.mlp(features.to(self.mlp[0].weight.dtype))


def layout_coordinates(layout: LatentLayout, num_tokens: int) -> Tensor:
    """Integer coordinates [L, k] of the tokens of ``layout`` in token order (row-major)."""
    if layout.kind in ("sequence", "columns"):
        if layout.kind == "sequence" and num_tokens > layout.shape[0]:
            raise ValueError(
                f"a sequence layout of length {layout.shape[0]} cannot hold {num_tokens} tokens"
            )
        if layout.kind == "columns" and num_tokens != layout.shape[0]:
            raise ValueError(
                f"columns layout {layout.shape} has {layout.shape[0]} tokens, "
                f"the latents have {num_tokens}"
            )
        return torch.arange(num_tokens, dtype=torch.float64)[:, None]  # [L, 1]
    if num_tokens != layout.num_tokens:
        raise ValueError(
            f"{layout.kind} layout {layout.shape} has {layout.num_tokens} tokens, "
            f"the latents have {num_tokens}"
        )
    axes = [torch.arange(n, dtype=torch.float64) for n in layout.shape]
    grid = torch.meshgrid(*axes, indexing="ij")  # k tensors [*shape]
    return torch.stack([g.reshape(-1) for g in grid], dim=-1)  # [L, k], last axis fastest


@lru_cache(maxsize=64)
def _position_table(kind: str, shape: tuple[int, ...], num_tokens: int, dim: int) -> Tensor:
    if kind == "nodes":
        if num_tokens != shape[0]:
            raise ValueError(f"a nodes layout of {shape[0]} nodes cannot hold {num_tokens} tokens")
        return torch.zeros(num_tokens, dim)  # node ids carry no position
    coords = layout_coordinates(LatentLayout(kind, shape), num_tokens)  # [L, k]
    num_axes = coords.shape[-1]
    per_axis = 2 * (dim // (2 * num_axes))  # even share of D for each axis
    table = torch.zeros(num_tokens, dim, dtype=torch.float64)
    for axis in range(num_axes):
        columns = slice(axis * per_axis, (axis + 1) * per_axis)
        table[:, columns] = sinusoidal_features(coords[:, axis], per_axis)
    return table.float()  # stored float32: callers must not modify it in place


def positional_embedding(
    layout: LatentLayout,
    num_tokens: int,
    dim: int,
    *,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Fixed sin-cos positional embedding [L, D] of the tokens of ``layout``."""
    table = _position_table(layout.kind, tuple(layout.shape), num_tokens, dim)
    return table.to(device=device, dtype=dtype)


class ModalityEmbedding(nn.Module):
    """A learned vector per modality id: ``forward(modality int | [B] long) -> [B|1, 1, D]``."""

    def __init__(self, num_modalities: int, width: int):
        super().__init__()
        self.table = nn.Embedding(num_modalities, width)

    def forward(self, modality: int | Tensor, device: torch.device) -> Tensor:
        ids = torch.as_tensor(modality, dtype=torch.long, device=device).reshape(-1)  # [B|1]
        num = self.table.num_embeddings
        low, high = (modality, modality) if isinstance(modality, int) else (ids.min(), ids.max())
        if low < 0 or high >= num:  # an int is checked without a device sync
            raise ValueError(
                f"modality must be in [0, {num - 1}] (num_modalities={num}), got {modality!r}"
            )
        return self.table(ids)[:, None, :]  # [B|1, 1, D]


class GraphPositionEmbedding(nn.Module):
    """Laplacian-eigenvector positions (Dwivedi et al. 2020; GraphGPS, Rampasek et al. 2022).

    forward(adjacency [B, L, L] dense or sparse) -> [B, L, D]: U_k [B, L, k], the eigenvectors
    of the k smallest non-zero-index eigenvalues of I - D^-1/2 A D^-1/2, times a random sign
    per (sample, vector) in training (an eigenvector's sign is arbitrary), -> Linear(k, D).
    Graphs with fewer than k + 1 nodes get zero columns for the missing vectors.
    """

    def __init__(self, num_vectors: int, width: int):
        super().__init__()
        self.num_vectors = num_vectors
        self.proj = nn.Linear(num_vectors, width)

    def forward(self, adjacency: Tensor) -> Tensor:
        U = laplacian_eigenvectors(adjacency, self.num_vectors)  # [B, L, k]
        if self.training:
            signs = torch.randint(0, 2, (U.shape[0], 1, U.shape[2]), device=U.device) * 2 - 1
            U = U * signs.to(U.dtype)  # [B, 1, k]: one sign per sample and vector
        return self.proj(U.to(self.proj.weight.dtype))
