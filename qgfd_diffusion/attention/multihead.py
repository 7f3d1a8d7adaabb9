"""Multi-head attention with a pluggable kernel, and the QGFD flavour of it.

Dimension legend: B batch, Lq queries, N keys/context tokens, D model width, Dkv context width,
H heads, d = D / H head width.
"""

from __future__ import annotations

from typing import Any

from einops import rearrange
from torch import Tensor, nn

from .kernels import AttentionKernel, AttentionKind, QGFDKernel, make_attention_kernel
from .options import QGFDOptions


class MultiheadAttention(nn.Module):
    """Projections + heads + masks around any ``AttentionKernel`` (self- or cross-attention).

    forward(x_q [B, Lq, D], x_kv [B, N, Dkv] or None (self-attention),
            key_padding_mask [B, N] bool (True = real token), attn_mask [B|1, H|1, Lq, N])
        -> [B, Lq, D]
    Extra keywords (``alpha``, ``graph``) go to the kernel.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        kernel: AttentionKernel,
        *,
        kv_dim: int | None = None,
        dropout: float = 0.0,
        bias: bool = True,
    ):
        super().__init__()
        if embed_dim % num_heads != 0:
            raise ValueError(
                f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})"
            )
        kv_dim = embed_dim if kv_dim is None else kv_dim
        self.num_heads, self.dropout, self.kernel = num_heads, dropout, kernel
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(kv_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(kv_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)

    def forward(
        self,
        x_q: Tensor,
        x_kv: Tensor | None = None,
        key_padding_mask: Tensor | None = None,
        attn_mask: Tensor | None = None,
        **kernel_kwargs,
    ) -> Tensor:
        x_kv = x_q if x_kv is None else x_kv
        split = lambda t: rearrange(t, "b l (h d) -> b h l d", h=self.num_heads)
        q, k, v = split(self.q_proj(x_q)), split(self.k_proj(x_kv)), split(self.v_proj(x_kv))
        mask = merge_masks(key_padding_mask, attn_mask)
        dropout_p = self.dropout if self.training else 0.0
        out = self.kernel(q, k, v, mask, dropout_p=dropout_p, **kernel_kwargs)  # [B, H, Lq, d]
        return self.out_proj(rearrange(out, "b h l d -> b l (h d)"))


def merge_masks(key_padding_mask: Tensor | None, attn_mask: Tensor | None) -> Tensor | None:
    """key_padding_mask [B, N] (True = real) and attn_mask -> one mask for [B, H, Lq, N]."""
    if key_padding_mask is None:
        return attn_mask
    if key_padding_mask.dtype.is_floating_point:
        raise ValueError("key_padding_mask must be bool or integer (1/True = real token)")
    padding = key_padding_mask.bool()[:, None, None, :]  # [B, 1, 1, N]
    if attn_mask is None:
        return padding
    if attn_mask.dtype.is_floating_point:
        return attn_mask.masked_fill(~padding, float("-inf"))
    return attn_mask & padding


class QGFDMultiheadAttention(MultiheadAttention):
    """Multi-head QGFD attention (prototype 001's ``QGFDMultiheadAttention``).

    ``options`` and keywords (``QGFDOptions`` fields or prototype spellings: alpha, steps,
    transition, iteration, topk, temperature, alpha_mode, warmup_steps, early_stop_eps,
    detach_transition, path) go to ``QGFDKernel``.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        *,
        kv_dim: int | None = None,
        dropout: float = 0.0,
        bias: bool = True,
        options: QGFDOptions | None = None,
        **keywords: Any,
    ):
        kernel = QGFDKernel(num_heads, options, **keywords)
        super().__init__(embed_dim, num_heads, kernel, kv_dim=kv_dim, dropout=dropout, bias=bias)


def make_attention(
    kind: AttentionKind,
    embed_dim: int,
    num_heads: int,
    *,
    kv_dim: int | None = None,
    dropout: float = 0.0,
    bias: bool = True,
    **kernel_options: Any,
) -> MultiheadAttention:
    """Multi-head attention of any kind (``sdpa``, ``qgfd``, ``heat``, ``difformer``).

    ``kernel_options`` go to ``make_attention_kernel``: for ``qgfd`` ``options=QGFDOptions(...)``
    and/or its fields, e.g. ``make_attention("qgfd", D, H, dropout=0.1, options=cfg.qgfd)``.
    """
    kernel = make_attention_kernel(kind, num_heads, **kernel_options)
    return MultiheadAttention(
        embed_dim, num_heads, kernel, kv_dim=kv_dim, dropout=dropout, bias=bias
    )
