"""Row-stochastic transition operators P over keys, applied to value-like tensors.

Dimension legend: B batch, H heads, N keys (nodes), d key width, dv value width, k top-k.

QGFD never needs P itself on its fast path, only products P W with W [B, H, N, dv]
(DESIGN.md section 2, the recursion on values). Each operator below provides

* ``matmul(W)``: P W without building P where the structure allows it;
* ``dense()``: P [B|1, H|1, N, N], for the materialised path, the fixed point and tests.

For softmax-type transitions P W is itself an attention product, so ``matmul`` is one fused
SDPA call (flash / memory-efficient kernels on GPU, O(N dv) memory).
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from .masks import as_additive_bias

# Elements of the [rows, N] similarity block built at once when selecting top-k neighbours;
# bounds the memory of the top-k search to ~64 MiB in fp32 whatever N is.
TOPK_CHUNK_ELEMENTS = 1 << 24


def masked_softmax(logits: Tensor) -> Tensor:
    """Softmax over the last dim; a row with every entry masked (-inf) gives zeros, not NaN.

    Such rows belong to positions no real query reaches (e.g. left padding under a causal
    mask); zeros match what the fused SDPA kernels return and keep 0 * NaN out of real rows.
    """
    empty = torch.isneginf(logits).all(dim=-1, keepdim=True)
    probs = torch.softmax(logits.masked_fill(empty, 0.0), dim=-1)
    return probs.masked_fill(empty, 0.0)


class Transition(Protocol):
    def matmul(self, W: Tensor) -> Tensor: ...

    def dense(self) -> Tensor: ...


class SoftmaxTransition:
    """P = softmax(scale * L R^T + bias), so P W = SDPA(L, R, W).

    ``keys``: L = R = K. ``cosine``: L = R = K / |K|, scale = 1 / tau. ``attention``: L = Q, R = K.
    """

    def __init__(self, left: Tensor, right: Tensor, scale: float, mask: Tensor | None):
        self.left, self.right, self.scale, self.mask = left, right, scale, mask

    def matmul(self, W: Tensor) -> Tensor:
        return F.scaled_dot_product_attention(
            self.left, self.right, W, attn_mask=self.mask, scale=self.scale
        )

    def logits(self) -> Tensor:
        scores = self.scale * self.left @ self.right.transpose(-1, -2)  # [B, H, N, N]
        bias = as_additive_bias(self.mask, scores.dtype)
        return scores if bias is None else scores + bias

    def dense(self) -> Tensor:
        return masked_softmax(self.logits())


class TopKSoftmaxTransition(SoftmaxTransition):
    """Softmax restricted to the k largest logits of each row (seed 000's sparse P).

    Neighbour indices come from row chunks of the similarity (never the whole N x N at once,
    and without gradient: selection is piecewise constant); the kept logits are recomputed from
    gathered keys so that gradients flow to L and R. P W then costs O(N k dv).
    """

    def __init__(self, left: Tensor, right: Tensor, scale: float, mask: Tensor | None, topk: int):
        super().__init__(left, right, scale, mask)
        num_keys = right.shape[-2]
        self.k = min(topk, num_keys)
        self.index = self._neighbours()  # [B, H, N, k]
        self.weights = masked_softmax(self._kept_logits())  # [B, H, N, k]

    def _bias_rows(self, rows: slice, dtype: torch.dtype) -> Tensor | None:
        bias = as_additive_bias(self.mask, dtype)
        if bias is None:
            return None
        return bias if bias.shape[-2] == 1 else bias[..., rows, :]

    def _neighbours(self) -> Tensor:
        B, H, N, _ = self.left.shape
        chunk = max(1, TOPK_CHUNK_ELEMENTS // max(1, B * H * N))
        blocks = []
        with torch.no_grad():
            for start in range(0, N, chunk):
                rows = slice(start, start + chunk)
                scores = self.scale * self.left[..., rows, :] @ self.right.transpose(-1, -2)
                bias = self._bias_rows(rows, scores.dtype)
                if bias is not None:
                    scores = scores + bias  # [B, H, c, N]
                blocks.append(scores.topk(self.k, dim=-1).indices)  # [B, H, c, k]
        return torch.cat(blocks, dim=-2)

    def _gather_rows(self, X: Tensor) -> Tensor:
        """X [B, H, N, e] -> X at each row's neighbours [B, H, N, k, e] (O(N k e) memory)."""
        N, e = X.shape[-2:]
        B, H = self.index.shape[:2]
        X = X.expand(B, H, N, e)
        offsets = torch.arange(B * H, device=X.device).view(B, H, 1, 1)
        flat_index = (self.index + offsets * N).reshape(-1)  # [B*H*N*k]
        gathered = X.reshape(-1, e)[flat_index]  # [B*H*N*k, e]
        return gathered.view(*self.index.shape, e)

    def _kept_logits(self) -> Tensor:
        right_nbrs = self._gather_rows(self.right)  # [B, H, N, k, d]
        logits = self.scale * torch.einsum("bhnd,bhnkd->bhnk", self.left, right_nbrs)
        bias = as_additive_bias(self.mask, logits.dtype)
        if bias is not None:
            B, H, N, _ = self.index.shape
            logits = logits + bias.expand(B, H, N, N).gather(-1, self.index)  # [B, H, N, k]
        return logits

    def matmul(self, W: Tensor) -> Tensor:
        return torch.einsum("bhnk,bhnke->bhne", self.weights, self._gather_rows(W))

    def dense(self) -> Tensor:
        B, H, N, k = self.index.shape
        P = self.weights.new_zeros(B, H, N, N)
        return P.scatter(-1, self.index, self.weights)


class GraphTransition:
    """P = row-normalised adjacency restricted to the keys that take part.

    With key mask m: P W = A (m * W) / (A m) row-wise; rows with no remaining out-edges
    (dangling nodes) keep their mass (a self-loop), so p stays a distribution. Works for dense
    A ([N, N] or [B, N, N]) and torch sparse A [N, N] (one sparse matmul per step, O(E dv)).
    """

    def __init__(self, adjacency: Tensor, key_mask: Tensor | None, num_keys: int):
        self.A = _check_adjacency(adjacency, num_keys)
        self.key_mask = key_mask  # [b, h, N] bool or None

    def _apply_A(self, X: Tensor) -> Tensor:
        """A X for X [B, H, N, e]."""
        if self.A.is_sparse:
            B, H, N, e = X.shape
            columns = X.permute(2, 0, 1, 3).reshape(N, B * H * e)  # [N, B*H*e]
            out = torch.sparse.mm(self.A, columns)
            return out.view(N, B, H, e).permute(1, 2, 0, 3)
        A = self.A if self.A.dim() == 2 else self.A.unsqueeze(1)  # [N, N] or [B, 1, N, N]
        return A @ X

    def matmul(self, W: Tensor) -> Tensor:
        m = _key_weights(self.key_mask, W)  # [b, h, N, 1]
        masked_W = m * W  # [B, H, N, dv]
        numerator = self._apply_A(masked_W)
        out_degree = self._apply_A(
            m.expand(*masked_W.shape[:2], -1, -1).contiguous()
        )  # [B, H, N, 1]
        dangling = out_degree <= 0
        return torch.where(dangling, W, numerator / out_degree.masked_fill(dangling, 1.0))

    def dense(self) -> Tensor:
        N = self.A.shape[-1]
        eye = torch.eye(N, dtype=self.A.dtype, device=self.A.device)
        batch = 1 if self.A.dim() == 2 else self.A.shape[0]
        return self.matmul(eye.expand(batch, 1, N, N))  # P = P I


def linear_kernel_attention(
    q_hat: Tensor, k_hat: Tensor, V: Tensor, key_mask: Tensor | None
) -> Tensor:
    """DIFFormer-s attention rownorm(1 + q~ k~^T) V in O(N d dv), never building N x N.

    q_hat [B, H, Lq, d], k_hat [B, H, N, d] (unit rows), V [B, H, N, dv], key_mask [b, h, N].
    numerator_i = sum_j m_j V_j + q~_i (sum_j m_j k~_j V_j^T); denominator likewise with V = 1.
    Entries 1 + q~ . k~ are >= 0 because |q~ . k~| <= 1.
    """
    m = _key_weights(key_mask, V)  # [b, h, N, 1]
    kv = torch.einsum("bhnd,bhne->bhde", k_hat * m, V)  # [B, H, d, dv]
    numerator = (m * V).sum(-2, keepdim=True) + q_hat @ kv  # [B, H, Lq, dv]
    k_sum = (k_hat * m).sum(-2, keepdim=True)  # [B, H, 1, d]
    denominator = m.sum(-2, keepdim=True) + q_hat @ k_sum.transpose(-1, -2)  # [B, H, Lq, 1]
    return numerator / denominator.clamp_min(torch.finfo(V.dtype).tiny)


def _key_weights(key_mask: Tensor | None, like: Tensor) -> Tensor:
    """Key mask [b, h, N] -> 0/1 weights [b, h, N, 1] (all ones without a mask)."""
    if key_mask is None:
        return torch.ones(1, 1, like.shape[-2], 1, dtype=like.dtype, device=like.device)
    return key_mask.to(like.dtype).unsqueeze(-1)


class LinearTransition:
    """DIFFormer-s style P_ij = (1 + k~_i . k~_j) / sum_j (1 + k~_i . k~_j), k~ = K / |K|."""

    def __init__(self, keys: Tensor, key_mask: Tensor | None):
        self.k_hat = F.normalize(keys, dim=-1)  # [B, H, N, d]
        self.key_mask = key_mask

    def matmul(self, W: Tensor) -> Tensor:
        return linear_kernel_attention(self.k_hat, self.k_hat, W, self.key_mask)

    def dense(self) -> Tensor:
        kernel = 1.0 + self.k_hat @ self.k_hat.transpose(-1, -2)  # [B, H, N, N]
        kernel = kernel * _key_weights(self.key_mask, self.k_hat).transpose(-1, -2)
        return kernel / kernel.sum(-1, keepdim=True)


class DenseTransition:
    """A materialised P, reused by every step (the short-sequence path)."""

    def __init__(self, P: Tensor):
        self.P = P

    def matmul(self, W: Tensor) -> Tensor:
        return self.P @ W

    def dense(self) -> Tensor:
        return self.P


def _check_adjacency(adjacency: Tensor, num_keys: int) -> Tensor:
    shape = tuple(adjacency.shape)
    if adjacency.dim() not in (2, 3) or shape[-1] != num_keys or shape[-2] != num_keys:
        raise ValueError(f"graph must be [N, N] or [B, N, N] with N = {num_keys} keys, got {shape}")
    if adjacency.is_sparse:
        if adjacency.dim() != 2:
            raise ValueError(f"a sparse graph must be [N, N], got {shape}")
        adjacency = adjacency.coalesce()
        if bool((adjacency.values() < 0).any()):
            raise ValueError("graph has negative edge weights; a transition needs weights >= 0")
        return adjacency
    if bool((adjacency < 0).any()):
        raise ValueError("graph has negative edge weights; a transition needs weights >= 0")
    return adjacency


def default_scale(head_dim: int) -> float:
    return 1.0 / math.sqrt(head_dim)
