"""Attention kernels behind one interface, so models pick QGFD or plain SDPA by config.

Dimension legend: B batch, H heads, Lq queries, N keys, d head width, dv value width.

A kernel maps per-head q [B, H, Lq, d], k [B, H, N, d], v [B, H, N, dv] and a mask
(bool True = takes part, or additive float; broadcastable to [B, H, Lq, N]) to [B, H, Lq, dv].
Kinds (``ATTENTION_KINDS``):

* ``sdpa``      softmax(s q k^T) v, the fused PyTorch kernel
* ``qgfd``      QGFD (functional.qgfd_attention); alpha fixed, warmed up, or learned per head
* ``heat``      heat-kernel attention softmax(q k^T / (2 t sqrt d)) (seed 004); t fixed,
                depth-scaled t = t0 sqrt(L0 / L), or learned per head; t = 1/2 is ``sdpa``
* ``difformer`` DIFFormer-s rownorm(1 + q~ k~^T) v in O(N) (arXiv 2301.09474, eq. 8) or
                DIFFormer-a rownorm(sigmoid(s q k^T)) v in O(N^2)
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_choice, check_range
from .functional import IterationKind, PathKind, TransitionKind, qgfd_attention
from .masks import as_additive_bias, key_mask
from .transitions import linear_kernel_attention

AttentionKind = Literal["sdpa", "qgfd", "heat", "difformer"]
AlphaMode = Literal["fixed", "warmup", "learnable"]
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


class QGFDKernel(AttentionKernel):
    """QGFD with a fixed, warmed-up (seed 003) or learnable-per-head alpha.

    The warm-up reads a ``step`` buffer that the training loop sets with ``set_step`` (never
    mutated inside ``forward``, so forward stays deterministic and compile/checkpoint safe):
    alpha(step) = alpha * min(1, step / warmup_steps).
    ``forward(..., alpha=...)`` overrides alpha per call, e.g. as a function of the diffusion
    timestep ([B, 1] or [B, H]).
    """

    def __init__(
        self,
        num_heads: int,
        *,
        alpha: float = 0.1,
        steps: int | None = 2,
        transition: TransitionKind = "keys",
        iteration: IterationKind = "ppr",
        topk: int | None = None,
        temperature: float = 1.0,
        early_stop_eps: float | None = None,
        alpha_mode: AlphaMode = "fixed",
        warmup_steps: int = 0,
        detach_transition: bool = False,
        path: PathKind = "auto",
    ):
        super().__init__()
        check_range("alpha", alpha, 0.0, 1.0)
        check_choice("alpha_mode", alpha_mode, AlphaMode)
        check_choice("transition", transition, TransitionKind)
        check_choice("iteration", iteration, IterationKind)
        check_choice("path", path, PathKind)
        check_range("warmup_steps", warmup_steps, 0)
        if steps is not None:
            check_range("steps", steps, 0)
        self.options = dict(
            steps=steps,
            transition=transition,
            iteration=iteration,
            topk=topk,
            temperature=temperature,
            early_stop_eps=early_stop_eps,
            detach_transition=detach_transition,
            path=path,
        )
        self.alpha_mode, self.target_alpha, self.warmup_steps = alpha_mode, alpha, warmup_steps
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        if alpha_mode == "learnable":
            # alpha_h = sigmoid(logit_h), one per head, starting at ``alpha``.
            start = min(max(alpha, 1e-4), 1 - 1e-4)
            self.alpha_logit = nn.Parameter(torch.full((num_heads,), math.log(start / (1 - start))))

    def set_step(self, step: int) -> None:
        check_range("step", step, 0)
        self.step.fill_(int(step))

    def current_alpha(self) -> float | Tensor:
        """A float when alpha is constant (keeps the exact SDPA shortcut at 0), else a tensor."""
        if self.alpha_mode == "learnable":
            return torch.sigmoid(self.alpha_logit)  # [H]
        if self.alpha_mode == "warmup" and self.warmup_steps > 0 and self.target_alpha > 0:
            return warmup_alpha(self.target_alpha, self.step, self.warmup_steps)
        return self.target_alpha

    def forward(self, q, k, v, attn_mask=None, *, dropout_p=0.0, alpha=None, graph=None, **extra):
        a = self.current_alpha() if alpha is None else alpha
        return qgfd_attention(
            q, k, v, attn_mask, alpha=a, graph=graph, dropout_p=dropout_p, **self.options
        )

    def extra_repr(self) -> str:
        return f"alpha={self.target_alpha}, alpha_mode={self.alpha_mode}, {self.options}"


def warmup_alpha(target: float, step: Tensor, warmup_steps: int) -> Tensor:
    """alpha(step) = target * min(1, step / warmup_steps) (seed 003), as a 0-d tensor op."""
    return target * (step.to(torch.float32) / warmup_steps).clamp(max=1.0)


class HeatKernel(AttentionKernel):
    """Heat-kernel attention (seed 004): logits q.k / (2 t sqrt d), diffusion time t per head."""

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
    """DIFFormer attention (seed 002): variant ``s`` linear in N, variant ``a`` quadratic."""

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


def make_attention_kernel(kind: AttentionKind, num_heads: int, **options) -> AttentionKernel:
    """Build an attention kernel by name; ``options`` go to that kind's constructor."""
    check_choice("attention", kind, AttentionKind)
    kernel_class = ATTENTION_KINDS[kind]
    return kernel_class(num_heads, **options) if kind != "sdpa" else kernel_class()


def set_qgfd_step(model: nn.Module, step: int) -> int:
    """Tell every warm-up-aware QGFD module in ``model`` the training step; returns how many.

    Covers the backbone's ``QGFDKernel`` and the per-module states that ``wrap_model_with_qgfd``
    attaches to transformers models.
    """
    modules = [m for m in model.modules() if callable(getattr(m, "set_step", None))]
    for module in modules:
        module.set_step(step)
    return len(modules)
