"""Graphs over latent tokens: checking a given adjacency, layout graphs, Laplacian eigenvectors.

Dimension legend: B batch, L latent tokens (graph nodes), E edges, k eigenvectors.

A graph over the L tokens of a latent is an adjacency A: [L, L] (one for the batch) or
[B, L, L] (one per sample), dense or torch sparse, weights >= 0. It comes with the data
(``LatentBatch.graph``, e.g. graph signals) or from the layout (``layout_graph``):

    chain   token i ~ i + 1, in token order (any layout: sequences, columns, nodes)
    grid4   4-neighbour grid of an image's patches (``grid`` layout)
    grid8   8-neighbour grid (diagonals too)
    video   4-neighbour grid within each frame + the same patch in the previous / next frame

Layout graphs are symmetric, unweighted, without self-loops, and sparse (E = O(L)), so QGFD's
graph transition costs O(E d) per step on them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from .latents import LatentLayout

LayoutGraphKind = Literal["none", "chain", "grid4", "grid8", "video"]

# Neighbour offsets of each grid kind, in (frame, row, column) steps; both signs are added.
_OFFSETS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "grid4": ((0, 0, 1), (0, 1, 0)),
    "grid8": ((0, 0, 1), (0, 1, 0), (0, 1, 1), (0, 1, -1)),
    "video": ((0, 0, 1), (0, 1, 0), (1, 0, 0)),
}
# The layout each layout-graph kind is defined on (None: any, in token order).
_NEEDS_LAYOUT = {"chain": None, "grid4": "grid", "grid8": "grid", "video": "video"}


def check_graph(graph: Tensor, batch: int, num_tokens: int, where: str = "graph") -> Tensor:
    """Validate an adjacency over ``num_tokens`` tokens for ``batch`` samples; sparse ones come
    back coalesced. Errors name ``where`` and say what was expected."""
    if not isinstance(graph, Tensor):
        raise TypeError(f"{where} must be a torch tensor, got {type(graph).__name__}")
    shape = tuple(graph.shape)
    square = graph.dim() in (2, 3) and shape[-2:] == (num_tokens, num_tokens)
    if not square or (graph.dim() == 3 and shape[0] not in (1, batch)):
        raise ValueError(
            f"{where} must be [L, L] or [B, L, L] with L = {num_tokens} tokens and B = {batch} "
            f"samples, got {shape}"
        )
    if graph.is_sparse:
        graph = graph.coalesce()
        values = graph.values()
    else:
        values = graph
    if graph.is_floating_point() and not bool(torch.isfinite(values).all()):
        raise ValueError(f"{where} has non-finite edge weights")
    if bool((values < 0).any()):
        raise ValueError(f"{where} has negative edge weights; an adjacency needs weights >= 0")
    return graph


def layout_graph(layout: LatentLayout, kind: LayoutGraphKind, num_tokens: int) -> Tensor | None:
    """The sparse [L, L] adjacency of ``kind`` over the tokens of ``layout`` (None for none)."""
    if kind == "none":
        return None
    needed = _NEEDS_LAYOUT.get(kind, "?")
    if needed == "?":
        raise ValueError(f"layout_graph must be one of {tuple(_NEEDS_LAYOUT)} or 'none'")
    if needed is not None and layout.kind != needed:
        raise ValueError(
            f"layout_graph={kind!r} needs a {needed!r} layout, got {layout.kind!r} "
            f"(chain works on any layout)"
        )
    if needed is not None and num_tokens != layout.num_tokens:
        raise ValueError(
            f"{layout.kind} layout {layout.shape} has {layout.num_tokens} tokens, got {num_tokens}"
        )
    return _cached_layout_graph(kind, tuple(layout.shape), num_tokens).clone()


@lru_cache(maxsize=32)
def _cached_layout_graph(kind: str, shape: tuple[int, ...], num_tokens: int) -> Tensor:
    if kind == "chain":
        i = torch.arange(num_tokens - 1)
        return _symmetric(i, i + 1, num_tokens)
    frames_rows_cols = (1,) * (3 - len(shape)) + shape  # grid (h, w) -> (1, h, w)
    token = torch.arange(num_tokens).view(frames_rows_cols)  # [F, h, w] token ids
    sources, targets = [], []
    for offset in _OFFSETS[kind]:
        src, dst = _shifted_pairs(token, offset)
        sources.append(src)
        targets.append(dst)
    return _symmetric(torch.cat(sources), torch.cat(targets), num_tokens)


def _shifted_pairs(token: Tensor, offset: tuple[int, int, int]) -> tuple[Tensor, Tensor]:
    """Token ids (a, b) with b at ``offset`` from a inside the [F, h, w] block."""
    src, dst = token, token
    for axis, step in enumerate(offset):
        if step > 0:
            src, dst = (
                src.narrow(axis, 0, src.shape[axis] - step),
                dst.narrow(axis, step, dst.shape[axis] - step),
            )
        elif step < 0:
            src, dst = (
                src.narrow(axis, -step, src.shape[axis] + step),
                dst.narrow(axis, 0, dst.shape[axis] + step),
            )
    return src.reshape(-1), dst.reshape(-1)


def _symmetric(src: Tensor, dst: Tensor, num_tokens: int) -> Tensor:
    """Undirected unit-weight edges (src, dst) -> sparse [L, L] with both directions."""
    index = torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])  # [2, 2E]
    values = torch.ones(index.shape[1])
    shape = (num_tokens, num_tokens)
    return torch.sparse_coo_tensor(index, values, shape, check_invariants=True).coalesce()


def dense_adjacency(graph: Tensor, batch: int | None = None) -> Tensor:
    """Any adjacency -> dense [B, L, L] (``batch`` expands a shared [L, L] one)."""
    A = graph.to_dense() if graph.is_sparse else graph
    A = A if A.dim() == 3 else A[None]
    return A if batch is None else A.expand(batch, -1, -1)


def normalized_laplacian(adjacency: Tensor) -> Tensor:
    """I - D^-1/2 A D^-1/2 [B, L, L] (isolated nodes: a 1 on the diagonal), in float64."""
    A = dense_adjacency(adjacency).double()
    degree = A.sum(-1)  # [B, L]
    inv_sqrt = torch.where(degree > 0, degree.clamp_min(1e-300).rsqrt(), torch.zeros_like(degree))
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    return eye - inv_sqrt[..., :, None] * A * inv_sqrt[..., None, :]


def laplacian_eigenvectors(adjacency: Tensor, k: int) -> Tensor:
    """The eigenvectors [B, L, k] of the k smallest eigenvalues of the normalised Laplacian
    after the first (the trivial one), ascending; zero columns when L <= k. Signs are as
    ``torch.linalg.eigh`` returns them (arbitrary: flip them in training)."""
    if k < 1:
        raise ValueError(f"the number of Laplacian eigenvectors must be >= 1, got {k}")
    laplacian = normalized_laplacian(adjacency)  # [B, L, L]
    _, vectors = torch.linalg.eigh(laplacian)  # ascending eigenvalues, [B, L, L]
    U = vectors[..., 1 : k + 1]  # [B, L, min(k, L - 1)]
    missing = k - U.shape[-1]
    if missing > 0:
        U = torch.nn.functional.pad(U, (0, missing))
    return U.float()


GRAPH_FILE_KEY = "graph"  # the tensor's name in a .safetensors graph file


def load_graph_file(path: str | Path) -> Tensor:
    """An adjacency from a file: ``.npy`` (numpy array) or ``.safetensors`` (the tensor named
    ``graph``), [L, L] for every sample or [B, L, L], one per sample; returned float32 dense."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"graph file {str(path)!r} does not exist")
    if path.suffix == ".npy":
        import numpy as np

        array = torch.from_numpy(np.load(path, allow_pickle=False))
    elif path.suffix == ".safetensors":
        from safetensors.torch import load_file

        tensors = load_file(str(path))
        if GRAPH_FILE_KEY not in tensors:
            raise ValueError(
                f"{path} holds {sorted(tensors)}, not a tensor named {GRAPH_FILE_KEY!r}"
            )
        array = tensors[GRAPH_FILE_KEY]
    else:
        raise ValueError(f"graph files are .npy or .safetensors, got {path.name!r}")
    if array.dim() not in (2, 3) or array.shape[-1] != array.shape[-2]:
        raise ValueError(
            f"{path}: an adjacency must be [L, L] or [B, L, L], got {tuple(array.shape)}"
        )
    return array.float()


def save_graph_file(graph: Tensor, folder: str | Path) -> Path:
    """Write an adjacency as ``folder/graph.safetensors`` (what ``load_graph_file`` reads)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{GRAPH_FILE_KEY}.safetensors"
    dense = graph.to_dense() if graph.is_sparse else graph
    save_file({GRAPH_FILE_KEY: dense.float().contiguous().cpu()}, str(path))
    return path
