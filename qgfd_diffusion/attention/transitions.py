"""Row-stochastic transition operators P over keys, applied to value-like tensors.

Dimension legend: B batch, H heads, N keys (nodes), d key width, dv value width, k top-k.

QGFD never needs P itself on its fast path, only products P W with W [B, H, N, dv]
(DESIGN.md section 2, the recursion on values). Each operator below provides

* ``matmul(W)``: P W without building P where the structure allows it;
* ``rmatmul(U)``: P^T U at the same cost (the adjoint solve of the fixed point's gradient);
* ``spectrum()``: an interval [lo, 1] of the real line that holds every eigenvalue of P, when
  the structure guarantees a real spectrum, else None (the fixed point's choice of solver);
* ``dense()``: P [B|1, H|1, N, N], for the materialised path, the dense solve and tests.

For softmax-type transitions P W is itself an attention product, so ``matmul`` is one fused
SDPA call (flash / memory-efficient kernels on GPU, O(N dv) memory), and so is ``rmatmul``.

Spectra. A kernel P = D^-1 S with S symmetric is similar to D^-1/2 S D^-1/2, so its eigenvalues
are real, and in [-1, 1] as P is stochastic; in [0, 1] when S is also positive semi-definite.
``keys`` and ``cosine`` without top-k: S = exp(s K K^T), the elementwise exp of a PSD Gram
matrix, is PSD (Schur product theorem), and a key-padding bias only multiplies S by a positive
diagonal on the right (P = D^-1 G E is similar to the PSD D^-1/2 E^1/2 G E^1/2 D^-1/2): [0, 1].
The ``linear`` kernel 1 1^T + K~ K~^T is PSD: [0, 1]. A symmetric self-attention mask or bias
keeps S symmetric but not PSD: [-1, 1]; so does an undirected graph. Keys that no row reaches
(padding) leave P block-triangular with the same spectrum (``masks.symmetric_on_live_keys``).
Top-k, ``attention`` (P = p0 from Q K^T), directed graphs and asymmetric masks: no guarantee.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from .masks import as_additive_bias, rows_all_equal, symmetric_on_live_keys

# Elements of the [rows, N] similarity block built at once when selecting top-k neighbours;
# bounds the memory of the top-k search to ~64 MiB in fp32 whatever N is.
TOPK_CHUNK_ELEMENTS = 1 << 24
# The same for the softmax's row and column sums (the adjoint's one pass over the logits):
# 4 MiB blocks in fp32, so that the adjoint stays near the few [N, dv] vectors of the solve.
SUMS_CHUNK_ELEMENTS = 1 << 20

Interval = tuple[float, float]  # [lo, hi] on the real line
UNIT_SPECTRUM: Interval = (0.0, 1.0)  # similar to a PSD stochastic matrix
SYMMETRIC_SPECTRUM: Interval = (-1.0, 1.0)  # similar to a symmetric stochastic matrix


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

    def rmatmul(self, U: Tensor) -> Tensor: ...

    def spectrum(self) -> Interval | None: ...

    def dense(self) -> Tensor: ...


class SoftmaxTransition:
    """P = softmax(scale * L R^T + bias), so P W = SDPA(L, R, W).

    ``keys``: L = R = K. ``cosine``: L = R = K / |K|, scale = 1 / tau. ``attention``: L = Q, R = K.
    """

    def __init__(self, left: Tensor, right: Tensor, scale: float, mask: Tensor | None):
        self.left, self.right, self.scale, self.mask = left, right, scale, mask
        self._adjoint: tuple[Tensor | None, Tensor] | None = None

    def matmul(self, W: Tensor) -> Tensor:
        return F.scaled_dot_product_attention(
            self.left, self.right, W, attn_mask=self.mask, scale=self.scale
        )

    def rmatmul(self, U: Tensor) -> Tensor:
        """P^T U as one SDPA call: with logits L and row log-sums r_i = log sum_j exp L_ij,
        (P^T U)_j = sum_i exp(L_ij - r_i) U_i = c_j SDPA(R, L, U, bias L^T - r)_j, where
        c_j = sum_i P_ij (column sums of P) undoes SDPA's own normalisation. All in log space:
        no exp(r) is ever formed, whatever the keys' norms."""
        bias, column_sums = self._adjoint_terms()
        out = F.scaled_dot_product_attention(
            self.right, self.left, U, attn_mask=bias, scale=self.scale
        )
        return torch.where(column_sums > 0, column_sums * out, 0.0)

    def _adjoint_terms(self) -> tuple[Tensor | None, Tensor]:
        """(bias of the transposed call [b, h, 1|N, N], column sums of P [B, H, N, 1]), once."""
        if self._adjoint is None:
            with torch.no_grad():
                row_lse, column_lse = self._log_row_and_column_sums()
            minus_r = (-row_lse).masked_fill(torch.isneginf(row_lse), float("-inf"))  # [B,H,N]
            bias = minus_r[..., None, :]  # [B, H, 1, N]: a bias on the transposed call's keys i
            mask = as_additive_bias(self.mask, bias.dtype)
            if mask is not None and mask.shape[-2] > 1:  # entrywise: transpose it
                bias = mask.transpose(-1, -2) + bias  # [b, h, N, N]
            # A key-padding bias c_j is a per-row constant of L^T: SDPA's softmax cancels it,
            # and the column sums carry it (0 on padded keys).
            self._adjoint = (bias, column_lse.exp()[..., None])
        return self._adjoint

    def _log_row_and_column_sums(self) -> tuple[Tensor, Tensor]:
        """r_i = logsumexp_j L_ij and log c_j = logsumexp_i (L_ij - r_i), [B, H, N] each, from
        row chunks of L (never all of L at once)."""
        B, H, N = *self.left.shape[:2], self.right.shape[-2]
        chunk = max(1, SUMS_CHUNK_ELEMENTS // max(1, B * H * N))
        row_blocks, column_lse = [], None
        for start in range(0, self.left.shape[-2], chunk):
            rows = slice(start, start + chunk)
            logits = self.scale * self.left[..., rows, :] @ self.right.transpose(-1, -2)
            bias = self._bias_rows(rows, logits.dtype)
            logits = logits if bias is None else logits + bias  # [B, H, c, N]
            row_lse = logits.logsumexp(-1)  # [B, H, c]; -inf on fully masked rows
            row_blocks.append(row_lse)
            safe_r = row_lse.masked_fill(torch.isneginf(row_lse), 0.0)[..., None]
            block = (logits - safe_r).logsumexp(-2)  # [B, H, N]
            column_lse = block if column_lse is None else torch.logaddexp(column_lse, block)
        return torch.cat(row_blocks, dim=-1), column_lse

    def _bias_rows(self, rows: slice, dtype: torch.dtype) -> Tensor | None:
        bias = as_additive_bias(self.mask, dtype)
        if bias is None:
            return None
        return bias if bias.shape[-2] == 1 else bias[..., rows, :]

    def spectrum(self) -> Interval | None:
        """Real when P's kernel is symmetric: L = R (``keys``, ``cosine``) and a key-padding or
        symmetric mask (module docstring)."""
        if self.left is not self.right:
            return None
        psd = SYMMETRIC_SPECTRUM if self.scale < 0 else UNIT_SPECTRUM
        if self.mask is None or rows_all_equal(self.mask):
            return psd
        live = self.mask if self.mask.dtype == torch.bool else ~torch.isneginf(self.mask)
        return SYMMETRIC_SPECTRUM if symmetric_on_live_keys(self.mask, live) else None

    def logits(self) -> Tensor:
        scores = self.scale * self.left @ self.right.transpose(-1, -2)  # [B, H, N, N]
        bias = as_additive_bias(self.mask, scores.dtype)
        return scores if bias is None else scores + bias

    def dense(self) -> Tensor:
        return masked_softmax(self.logits())


class TopKSoftmaxTransition(SoftmaxTransition):
    """Softmax restricted to the k largest logits of each row (prototype 000's sparse P).

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

    def _flat_index(self) -> Tensor:
        """Each row's neighbours as rows of the flattened [B*H*N] batch: [B*H*N*k]."""
        B, H, N, _ = self.index.shape
        offsets = torch.arange(B * H, device=self.index.device).view(B, H, 1, 1)
        return (self.index + offsets * N).reshape(-1)

    def _gather_rows(self, X: Tensor) -> Tensor:
        """X [B, H, N, e] -> X at each row's neighbours [B, H, N, k, e] (O(N k e) memory)."""
        N, e = X.shape[-2:]
        B, H = self.index.shape[:2]
        X = X.expand(B, H, N, e)
        gathered = X.reshape(-1, e)[self._flat_index()]  # [B*H*N*k, e]
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

    def rmatmul(self, U: Tensor) -> Tensor:
        """P^T U: row i sends weight_im U_i to its neighbour index_im (an ``index_add``)."""
        B, H, N, e = U.shape
        messages = self.weights[..., None] * U[..., None, :]  # [B, H, N, k, e]
        out = U.new_zeros(B * H * N, e).index_add_(0, self._flat_index(), messages.view(-1, e))
        return out.view(B, H, N, e)

    def spectrum(self) -> Interval | None:
        return None  # k-nearest-neighbour lists are not symmetric

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

    def rmatmul(self, U: Tensor) -> Tensor:
        return self.rows.rmatmul(U)

    def spectrum(self) -> Interval | None:
        """[-1, 1] when A * M is symmetric on the keys some row reaches (undirected graph,
        symmetric or key-padding mask), else None (directed graph, causal mask, ...)."""
        return SYMMETRIC_SPECTRUM if self.rows.symmetric() else None

    def dense(self) -> Tensor:
        return self.rows.dense()


class DenseGraphRows:
    """Row-normalised A * M as a dense [B|1, h, N, N] tensor; a dangling row (no out-edge)
    keeps its mass as a self-loop."""

    def __init__(self, A: Tensor, mask: Tensor | None):
        A = A[None, None] if A.dim() == 2 else A[:, None]  # [B|1, 1, N, N]
        if mask is not None:
            A = A * mask.to(A.dtype)  # [b, h, N, N]
        degree = A.sum(-1, keepdim=True)  # [b, h, N, 1]
        dangling = degree <= 0
        eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
        self.weights = A  # A * M
        self.P = torch.where(dangling, eye, A / degree.masked_fill(dangling, 1.0))

    def matmul(self, W: Tensor) -> Tensor:
        return _shared_heads_matmul(self.P, W)

    def rmatmul(self, U: Tensor) -> Tensor:
        return _shared_heads_matmul(self.P.transpose(-1, -2), U)

    def symmetric(self) -> bool:
        return symmetric_on_live_keys(self.weights, self.weights != 0)

    def dense(self) -> Tensor:
        return self.P


def _shared_heads_matmul(P: Tensor, W: Tensor) -> Tensor:
    """P [b, h, N, N] @ W [B, H, N, e]. One P for all heads (h = 1): the heads become columns,
    one [N, N] @ [N, H e] product per sample instead of P broadcast (copied) over H."""
    B, H, N, e = W.shape
    if P.shape[1] != 1 or H == 1:
        return P.to(W.dtype) @ W
    X = W.transpose(1, 2).reshape(B, N, H * e)  # [B, H, N, e] -> [B, N, H*e]
    Y = P[:, 0].to(W.dtype) @ X  # [b|B, N, N] @ [B, N, H*e]
    return Y.view(B, N, H, e).transpose(1, 2).contiguous()  # [B, N, H*e] -> [B, H, N, e]


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
        self.edge_weight = w  # A_ij M_bhij [E, h]
        self.row, self.col = b * N + i, b * N + j  # [E] each
        degree = w.new_zeros(self.num_nodes, self.heads).index_add_(0, self.row, w)  # [B*N, h]
        self.weight = w / degree.clamp_min(torch.finfo(w.dtype).tiny)[self.row]  # [E, h]
        # [B*N, h] -> [B, N, h] -> [B, h, N, 1]
        self.dangling = (degree <= 0).view(batch, N, self.heads).transpose(1, 2)[..., None]

    def matmul(self, W: Tensor) -> Tensor:
        return torch.where(self.dangling, W, self._send(W, self.col, self.row))

    def rmatmul(self, U: Tensor) -> Tensor:
        """P^T U: the same edges walked backwards, plus the dangling nodes' self-loops."""
        return self._send(U, self.row, self.col) + torch.where(self.dangling, U, 0.0)

    def _send(self, W: Tensor, source: Tensor, target: Tensor) -> Tensor:
        """out_t = sum over edges e with target_e = t of w_e W_{source_e}: [B, H, N, e]."""
        B, H, N, e = W.shape
        X = W.transpose(1, 2).reshape(B * N, H, e)  # [B, H, N, e] -> [B*N, H, e]
        messages = X[source] * self.weight.to(W.dtype)[..., None]  # [E, H, e]
        out = X.new_zeros(B * N, H, e).index_add_(0, target, messages)
        return out.view(B, N, H, e).transpose(1, 2)  # [B*N, H, e] -> [B, H, N, e]

    def symmetric(self) -> bool:
        """A * M symmetric on the reached nodes, per head: the live edges (i, j, w) and their
        reverses (j, i, w) are the same list once sorted (O(E log E), no N x N tensor)."""
        for w in self.edge_weight.unbind(1):  # [E] per head of the mask
            reached = torch.zeros(self.num_nodes, dtype=torch.bool, device=w.device)
            reached[self.col[w != 0]] = True
            live = (w != 0) & reached[self.row]
            row, col, w = self.row[live], self.col[live], w[live]
            forward = torch.sort(row * self.num_nodes + col)
            backward = torch.sort(col * self.num_nodes + row)
            if not torch.equal(forward.values, backward.values):
                return False
            if not torch.equal(w[forward.indices], w[backward.indices]):
                return False
        return True

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

    def rmatmul(self, U: Tensor) -> Tensor:
        """(P^T U)_j = m_j sum_i (1 + k~_j . k~_i) U_i / D_i, D_i the row sums: O(N d dv)."""
        m = _key_weights(self.key_mask, self.k_hat)  # [b, h, N, 1]
        k_sum = (self.k_hat * m).sum(-2, keepdim=True)  # [B, H, 1, d]
        row_sums = m.sum(-2, keepdim=True) + self.k_hat @ k_sum.transpose(-1, -2)  # [B, H, N, 1]
        U = U / row_sums
        kU = self.k_hat.transpose(-1, -2) @ U  # [B, H, d, dv]
        return m * (U.sum(-2, keepdim=True) + self.k_hat @ kU)

    def spectrum(self) -> Interval | None:
        return UNIT_SPECTRUM  # the kernel 1 1^T + K~ K~^T is PSD

    def dense(self) -> Tensor:
        kernel = 1.0 + self.k_hat @ self.k_hat.transpose(-1, -2)  # [B, H, N, N]
        kernel = kernel * _key_weights(self.key_mask, self.k_hat).transpose(-1, -2)
        return kernel / kernel.sum(-1, keepdim=True)


class DenseTransition:
    """A materialised P, reused by every step (the short-sequence path); ``spectrum_of``: the
    ``spectrum`` of the transition it was built from (asked only by the fixed point)."""

    def __init__(self, P: Tensor, spectrum_of: Callable[[], Interval | None] = lambda: None):
        self.P, self.spectrum_of = P, spectrum_of

    def matmul(self, W: Tensor) -> Tensor:
        return self.P @ W

    def rmatmul(self, U: Tensor) -> Tensor:
        return self.P.transpose(-1, -2) @ U

    def spectrum(self) -> Interval | None:
        return self.spectrum_of()

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
