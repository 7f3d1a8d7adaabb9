"""The contract between adapters and the backbone: latent tokens and how they are laid out.

Dimension legend: B batch, L latent tokens, C latent channels, Lc condition tokens,
Dc condition width.

Adapters produce a ``LatentBatch``; the backbone reads ``layout`` to choose its positional
embedding (1-D for sequences, 2-D for image grids, time x 2-D for video, column ids for tables,
none for graph nodes, whose numbering means nothing) and ``graph``, when there is one, as the
adjacency its graph-aware attention walks on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal, get_args

import torch
from torch import Tensor

LayoutKind = Literal["sequence", "grid", "video", "columns", "nodes"]

# How many entries ``LatentLayout.shape`` has for each kind.
_LAYOUT_RANK = {"sequence": 1, "grid": 2, "video": 3, "columns": 1, "nodes": 1}


@dataclass(frozen=True)
class LatentLayout:
    """How the L tokens of a latent are arranged.

    kind:  ``sequence`` shape (L,); ``grid`` (h, w) row-major; ``video`` (frames, h, w)
           frame-major; ``columns`` (n_columns,) one token per table column; ``nodes``
           (n_nodes,) one token per graph node, in an arbitrary order (no position).
    """

    kind: LayoutKind
    shape: tuple[int, ...]

    def __post_init__(self):
        if self.kind not in get_args(LayoutKind):
            raise ValueError(
                f"layout kind must be one of {get_args(LayoutKind)}, got {self.kind!r}"
            )
        if len(self.shape) != _LAYOUT_RANK[self.kind] or any(int(n) < 1 for n in self.shape):
            raise ValueError(
                f"layout {self.kind!r} needs a shape of {_LAYOUT_RANK[self.kind]} positive ints, "
                f"got {self.shape}"
            )

    @property
    def num_tokens(self) -> int:
        return math.prod(self.shape)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, data: dict) -> LatentLayout:
        return cls(kind=data["kind"], shape=tuple(int(n) for n in data["shape"]))


@dataclass
class LatentBatch:
    """x0 latents with their padding mask, layout and (optional) conditioning.

    latents:    x0 [B, L, C], normalised (unit scale, like Stable Diffusion's scaling factor)
    mask:       [B, L] bool, True = real token (None: all real)
    layout:     LatentLayout with layout.num_tokens == L for fixed layouts (sequence: max L)
    cond_tokens / cond_mask: [B, Lc, Dc] / [B, Lc] bool, never derived from ``latents`` itself
    tokens:     [B, L] long, the discrete ids the latents encode (text), for token losses
    graph:      adjacency over the L tokens, [B, L, L] dense or torch sparse (None: no graph);
                a condition like the others: it describes the sample, it is not the sample
    """

    latents: Tensor
    layout: LatentLayout
    mask: Tensor | None = None
    cond_tokens: Tensor | None = None
    cond_mask: Tensor | None = None
    tokens: Tensor | None = None
    graph: Tensor | None = None

    def to(self, device) -> LatentBatch:
        """Move every tensor to ``device`` (dtypes unchanged: masks stay bool)."""
        move = lambda t: None if t is None else t.to(device)
        return replace(
            self,
            latents=move(self.latents),
            mask=move(self.mask),
            cond_tokens=move(self.cond_tokens),
            cond_mask=move(self.cond_mask),
            tokens=move(self.tokens),
            graph=move(self.graph),
        )

    def select(self, index: slice | Tensor) -> LatentBatch:
        """The rows ``index`` of every per-sample tensor (e.g. one process's shard)."""
        pick = lambda t: None if t is None else t[index]
        return replace(
            self,
            latents=self.latents[index],
            mask=pick(self.mask),
            cond_tokens=pick(self.cond_tokens),
            cond_mask=pick(self.cond_mask),
            tokens=pick(self.tokens),
            graph=None if self.graph is None else select_rows(self.graph, index),
        )


def select_rows(tensor: Tensor, index: slice | Tensor) -> Tensor:
    """``tensor[index]`` along dim 0, also for a torch sparse tensor (which cannot be sliced)."""
    if not tensor.is_sparse:
        return tensor[index]
    if isinstance(index, slice):
        index = torch.arange(tensor.shape[0], device=tensor.device)[index]
    if index.dtype == torch.bool:
        index = index.nonzero().flatten()
    return tensor.index_select(0, index.to(tensor.device)).coalesce()
