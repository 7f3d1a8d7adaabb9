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
    """P = row-normalised (A * M): the given adjacency restricted to the entries that take part.

    M is a bool mask [b, h, 1|N, N] (a key-padding mask removes keys from every row, a
    self-attention mask removes single edges) or None. Rows with no remaining out-edges
    (dangling nodes) keep their mass (a self-loop), so p stays a distribution. The
    normalisation is computed once; each product P W then costs

    * dense A ([N, N] or [B, N, N]): one batched matmul, O(N^2 dv);
    * torch sparse A ([N, N] or [B, N, N]): a gather and an ``index_add`` over the E edges,
      O(E dv), never an N x N tensor (the graph's edge list, ``SparseGraphRows``).
    """

    def __init__(self, adjacency: Tensor, mask: Tensor | None, num_keys: int, batch: int = 1):
        A = _check_adjacency(adjacency, num_keys)
        self.rows = SparseGraphRows(A, mask, batch) if A.is_sparse else DenseGraphRows(A, mask)

    def matmul(self, W: Tensor) -> Tensor:
        return self.rows.matmul(W)

    def dense(self) -> Tensor:
        return self.rows.dense()


class DenseGraphRows:
    """Row-normalised A * M as a dense [B|1, h, N, N] tensor, with its dangling rows."""

    def __init__(self, A: Tensor, mask: Tensor | None):
        A = A[None, None] if A.dim() == 2 else A[:, None]  # [B|1, 1, N, N]
        if mask is not None:
            A = A * mask.to(A.dtype)  # [b, h, N, N]
        degree = A.sum(-1, keepdim=True)  # [b, h, N, 1]
        self.dangling = degree <= 0
        self.P = A / degree.masked_fill(self.dangling, 1.0)

    def matmul(self, W: Tensor) -> Tensor:
        return torch.where(self.dangling, W, self.P.to(W.dtype) @ W)

    def dense(self) -> Tensor:
        eye = torch.eye(self.P.shape[-1], dtype=self.P.dtype, device=self.P.device)
        return torch.where(self.dangling, eye, self.P)


class SparseGraphRows:
    """Row-normalised A * M as an edge list over the flattened batch (B*N nodes).

    Edge e goes from row r_e = b_e N + i_e to column c_e = b_e N + j_e with weight w_e [E, h]
    (h = the mask's head dimension, 1 or H): w_e = A_ij M_bhij / sum_j A_ij M_bhij. Then
    (P W)_r = sum_{e: r_e = r} w_e W_{c_e}, an ``index_add`` of the gathered rows.
    """

    def __init__(self, A: Tensor, mask: Tensor | None, batch: int):
        if A.sparse_dim() == 3 and A.shape[0] == 1:
            A = A[0].coalesce()  # one graph shared by the batch
        index, values = A.indices(), A.values()  # [2|3, E], [E]
        N = A.shape[-1]
        if A.sparse_dim() == 2:  # one graph for the batch: its edges once per sample
            sample = torch.arange(batch, device=A.device).repeat_interleave(index.shape[1])
            index = torch.cat([sample[None], index.repeat(1, batch)])  # [3, B*E]
            values = values.repeat(batch)
        else:
            batch = A.shape[0]
        b, i, j = index
        w = values[:, None]  # [E, 1]
        if mask is not None:
            rows = i if mask.shape[-2] > 1 else torch.zeros_like(i)
            m = mask.expand(batch, -1, -1, -1)[b, :, rows, j]  # [E, h]
            w = w * m.to(w.dtype)
        self.num_nodes, self.heads = batch * N, w.shape[1]
        self.row, self.col = b * N + i, b * N + j  # [E] each
        degree = w.new_zeros(self.num_nodes, self.heads).index_add_(0, self.row, w)  # [B*N, h]
        self.weight = w / degree.clamp_min(torch.finfo(w.dtype).tiny)[self.row]  # [E, h]
        # [B*N, h] -> [B, N, h] -> [B, h, N, 1]
        self.dangling = (degree <= 0).view(batch, N, self.heads).transpose(1, 2)[..., None]

    def matmul(self, W: Tensor) -> Tensor:
        B, H, N, e = W.shape
        X = W.transpose(1, 2).reshape(B * N, H, e)  # [B, H, N, e] -> [B*N, H, e]
        messages = X[self.col] * self.weight.to(W.dtype)[..., None]  # [E, H, e]
        out = X.new_zeros(B * N, H, e).index_add_(0, self.row, messages)
        out = out.view(B, N, H, e).transpose(1, 2)  # [B*N, H, e] -> [B, H, N, e]
        return torch.where(self.dangling, W, out)

    def dense(self) -> Tensor:
        N = self.dangling.shape[-2]
        B = self.num_nodes // N
        eye = torch.eye(N, dtype=self.weight.dtype, device=self.weight.device)
        return self.matmul(eye.expand(B, self.heads, N, N))  # P = P I


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
        if adjacency.dense_dim() != 0:
            raise ValueError(f"a sparse graph must be sparse in every dim, got {shape}")
        adjacency = adjacency.coalesce()
        if bool((adjacency.values() < 0).any()):
            raise ValueError("graph has negative edge weights; a transition needs weights >= 0")
        return adjacency
    if bool((adjacency < 0).any()):
        raise ValueError("graph has negative edge weights; a transition needs weights >= 0")
    return adjacency


def default_scale(head_dim: int) -> float:
    return 1.0 / math.sqrt(head_dim)
