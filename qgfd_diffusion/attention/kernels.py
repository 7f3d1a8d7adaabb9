"""Attention kernels behind one interface, so models pick QGFD or plain SDPA by config.

Dimension legend: B batch, H heads, Lq queries, N keys, d head width, dv value width.

A kernel maps per-head q [B, H, Lq, d], k [B, H, N, d], v [B, H, N, dv] and a mask
(bool True = takes part, or additive float; broadcastable to [B, H, Lq, N]) to [B, H, Lq, dv].
Kinds (``ATTENTION_KINDS``):

* ``sdpa``      softmax(s q k^T) v, the fused PyTorch kernel
* ``qgfd``      QGFD (functional.qgfd_attention); alpha fixed, warmed up, or learned per head
* ``heat``      heat-kernel attention softmax(q k^T / (2 t sqrt d)) (prototype 004); t fixed,
                depth-scaled t = t0 sqrt(L0 / L), or learned per head; t = 1/2 is ``sdpa``
* ``difformer`` DIFFormer-s rownorm(1 + q~ k~^T) v in O(N) (arXiv 2301.09474, eq. 8) or
                DIFFormer-a rownorm(sigmoid(s q k^T)) v in O(N^2)
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_choice, check_range
from .functional import qgfd_attention
from .masks import as_additive_bias, key_mask
from .options import AlphaMode as AlphaMode  # re-exported: models/config.py imports it here
from .options import QGFDOptions, qgfd_options
from .state import QGFDState
from .state import set_qgfd_step as set_qgfd_step  # re-exported: train/trainer.py imports it
from .transitions import linear_kernel_attention

AttentionKind = Literal["sdpa", "qgfd", "heat", "difformer"]
HeatMode = Literal["fixed", "depth_scaled", "learned"]
DIFFormerVariant = Literal["s", "a"]


class AttentionKernel(nn.Module):
    """Base class: ``forward(q, k, v, attn_mask=None, *, dropout_p=0.0, **extra)``."""

    def forward(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        attn_mask: Tensor | None = None,
        *,
        dropout_p: float = 0.0,
        **extra,
    ) -> Tensor:
        raise NotImplementedError


class SDPAKernel(AttentionKernel):
    def forward(self, q, k, v, attn_mask=None, *, dropout_p=0.0, **extra):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)


class QGFDKernel(QGFDState, AttentionKernel):
    """QGFD with a fixed, warmed-up (prototype 003) or learnable-per-head alpha (``QGFDState``).

    ``QGFDKernel(H, options)``, ``QGFDKernel(H, alpha=0.3, steps=2)`` or both: keywords are
    ``QGFDOptions`` fields or prototype spellings, folded over ``options`` (default
    ``QGFDOptions()``) by ``qgfd_options``. ``forward(..., alpha=...)`` overrides alpha per
    call, e.g. as a function of the diffusion timestep ([B, 1] or [B, H]).
    """

    def __init__(self, num_heads: int, options: QGFDOptions | None = None, **keywords: Any):
        super().__init__(qgfd_options(options, **keywords), num_heads)

    def forward(self, q, k, v, attn_mask=None, *, dropout_p=0.0, alpha=None, graph=None, **extra):
        a = self.current_alpha() if alpha is None else alpha
        return qgfd_attention(
            q,
            k,
            v,
            attn_mask,
            alpha=a,
            graph=graph,
            dropout_p=dropout_p,
            **self.options.kernel_kwargs(),
        )


class HeatKernel(AttentionKernel):
    """Heat-kernel attention (prototype 004): logits q.k / (2 t sqrt d); time t per head."""

    def __init__(
        self,
        num_heads: int,
        *,
        t: float = 0.28,
        mode: HeatMode = "fixed",
        depth: int = 4,
        reference_depth: int = 4,
    ):
        super().__init__()
        check_choice("heat mode", mode, HeatMode)
        check_range("t", t, 1e-6)
        if mode == "depth_scaled":  # t(L) = t0 sqrt(L0 / L)
            t = t * math.sqrt(reference_depth / depth)
        self.mode = mode
        # t = softplus(raw) keeps the learned time positive.
        raw = torch.full((num_heads,), t + math.log(-math.expm1(-t)))
        self.raw_t = nn.Parameter(raw) if mode == "learned" else None
        if self.raw_t is None:
            self.register_buffer("fixed_t", torch.full((num_heads,), t), persistent=False)

    def diffusion_time(self) -> Tensor:
        return F.softplus(self.raw_t) if self.raw_t is not None else self.fixed_t  # [H]

    def forward(self, q, k, v, attn_mask=None, *, dropout_p=0.0, **extra):
        inv_two_t = (0.5 / self.diffusion_time()).to(q.dtype).view(1, -1, 1, 1)  # [1, H, 1, 1]
        return F.scaled_dot_product_attention(
            q * inv_two_t, k, v, attn_mask=attn_mask, dropout_p=dropout_p
        )


class DIFFormerKernel(AttentionKernel):
    """DIFFormer attention (prototype 002): variant ``s`` linear in N, variant ``a`` quadratic."""

    def __init__(self, num_heads: int, *, variant: DIFFormerVariant = "s"):
        super().__init__()
        check_choice("difformer variant", variant, DIFFormerVariant)
        self.variant = variant

    def forward(self, q, k, v, attn_mask=None, *, dropout_p=0.0, **extra):
        if self.variant == "s":
            keys_in = key_mask(attn_mask, q.shape[-2], k.shape[-2])  # [b, h, N] or None
            q_hat, k_hat = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
            return linear_kernel_attention(q_hat, k_hat, v, keys_in)
        weights = torch.sigmoid(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]))  # [B, H, Lq, N]
        bias = as_additive_bias(attn_mask, q.dtype)
        if bias is not None:
            weights = weights * torch.exp(bias)  # 0 where masked out
        weights = weights / weights.sum(-1, keepdim=True)
        return F.dropout(weights, dropout_p, self.training) @ v


ATTENTION_KINDS: dict[str, type[AttentionKernel]] = {
    "sdpa": SDPAKernel,
    "qgfd": QGFDKernel,
    "heat": HeatKernel,
    "difformer": DIFFormerKernel,
}


def make_attention_kernel(kind: AttentionKind, num_heads: int, **options: Any) -> AttentionKernel:
    """Build an attention kernel by name; ``options`` go to that kind's constructor.

    ``qgfd``: ``options=QGFDOptions(...)`` and/or QGFDOptions fields (any spelling);
    ``heat``: ``t``, ``mode``, ``depth``, ``reference_depth``; ``difformer``: ``variant``.
    """
    check_choice("attention", kind, AttentionKind)
    kernel_class = ATTENTION_KINDS[kind]
    return kernel_class(num_heads, **options) if kind != "sdpa" else kernel_class()
