"""DiT blocks with adaLN-Zero modulation (Peebles & Xie 2023, "Scalable Diffusion Models with
Transformers", section 3.2).

Dimension legend: B batch, L latent tokens, C latent channels, D model width, H heads,
Lc condition tokens, Dc condition width.

Symbols: c [B, D] the conditioning vector (timestep embedding + pooled condition);
per branch b (self-attention, cross-attention, MLP) the regression
(shift_b, scale_b, gate_b) = Linear(SiLU(c)) and

    x <- x + gate_b * F_b(LN(x) * (1 + scale_b) + shift_b).

The regression is zero-initialised, so every gate starts at 0 and a fresh block is the identity.

With ``alpha_from_timestep`` QGFD's alpha is one more regression on c, per head h:
a_h(c) = sigmoid(logit(alpha) + w_h . SiLU(c) + b_h), w and b zero-initialised, so training
starts at the fixed alpha and learns how much to mix at each noise level.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..attention import make_attention
from ..attention.state import alpha_logit
from .config import DiffusionConfig

LAYER_NORM_EPS = 1e-6
CHUNKS_PER_BRANCH = 3  # shift, scale, gate


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """x [B, L, D], shift/scale [B, D] -> x (1 + scale) + shift."""
    return x * (1 + scale[:, None, :]) + shift[:, None, :]


def plain_layer_norm(width: int) -> nn.LayerNorm:
    """LayerNorm without its own affine: adaLN supplies scale and shift."""
    return nn.LayerNorm(width, elementwise_affine=False, eps=LAYER_NORM_EPS)


def zero_init_modulation(width: int, num_chunks: int) -> nn.Sequential:
    """c [B, D] -> [B, num_chunks * D] via SiLU -> Linear, with the Linear zero-initialised."""
    linear = nn.Linear(width, num_chunks * width)
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
    return nn.Sequential(nn.SiLU(), linear)


class FeedForward(nn.Module):
    """Position-wise MLP D -> d_ff -> D with tanh-GELU (prototype 001's ``PositionwiseFFN``)."""

    def __init__(self, width: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(width, hidden),
            nn.GELU(approximate="tanh"),
            nn.Dropout(dropout),
            nn.Linear(hidden, width),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class TimestepAlpha(nn.Module):
    """c [B, D] -> QGFD alpha [B, H] in (0, 1), starting at ``alpha`` for every c."""

    def __init__(self, width: int, num_heads: int, alpha: float):
        super().__init__()
        self.regression = nn.Linear(width, num_heads)
        nn.init.zeros_(self.regression.weight)
        nn.init.zeros_(self.regression.bias)
        self.register_buffer("alpha_logit", torch.tensor(alpha_logit(alpha)), persistent=False)

    def forward(self, c: Tensor) -> Tensor:
        return torch.sigmoid(self.alpha_logit + self.regression(nn.functional.silu(c)))


class DiTBlock(nn.Module):
    """Self-attention (configured kind) + optional cross-attention + MLP, all adaLN-Zero gated.

    forward(x [B, L, D], c [B, D], latent_mask [B, L] bool (True = real) or None,
            cond_tokens [B, Lc, Dc] or None, cond_mask [B, Lc] bool or None,
            attn_mask [B|1, 1, L, L] bool or None, graph [B|1, L, L] or None) -> [B, L, D]
    Padded latent tokens are excluded as keys, so they never influence the real tokens.
    attn_mask: a self-attention mask with the padding already folded in (a graph's 1-hop mask,
    ``graph_attention_mask``); it replaces latent_mask there. graph: the adjacency QGFD's
    ``graph`` transition walks on (other kernels ignore it).
    Cross-attention (when ``cfg.cond_dim`` is set) uses plain SDPA: prototype 001 keeps QGFD for
    self-attention, where the transition over keys is defined on the tokens being denoised.
    """

    def __init__(self, cfg: DiffusionConfig):
        super().__init__()
        D, H = cfg.d_model, cfg.num_heads
        self.self_attn = make_attention(
            cfg.attention, D, H, dropout=cfg.dropout, **cfg.attention_options()
        )
        self.cross_attn = None
        if cfg.cond_dim is not None:
            self.cross_attn = make_attention("sdpa", D, H, kv_dim=cfg.cond_dim, dropout=cfg.dropout)
        self.alpha_map = None
        if cfg.alpha_from_timestep:
            self.alpha_map = TimestepAlpha(D, H, cfg.qgfd.alpha)
        self.mlp = FeedForward(D, cfg.d_ff, cfg.dropout)
        self.num_branches = 3 if self.cross_attn is not None else 2
        self.norms = nn.ModuleList(plain_layer_norm(D) for _ in range(self.num_branches))
        self.adaLN_modulation = zero_init_modulation(D, CHUNKS_PER_BRANCH * self.num_branches)

    def forward(
        self,
        x: Tensor,
        c: Tensor,
        latent_mask: Tensor | None = None,
        cond_tokens: Tensor | None = None,
        cond_mask: Tensor | None = None,
        attn_mask: Tensor | None = None,
        graph: Tensor | None = None,
    ) -> Tensor:
        self_attn_kwargs = dict(graph=graph) if graph is not None else {}
        if self.alpha_map is not None:
            self_attn_kwargs["alpha"] = self.alpha_map(c)  # [B, H]
        padding = latent_mask if attn_mask is None else None
        branches: list[Callable[[Tensor], Tensor]] = [
            lambda h: self.self_attn(
                h, key_padding_mask=padding, attn_mask=attn_mask, **self_attn_kwargs
            )
        ]
        if self.cross_attn is not None:
            if cond_tokens is None:
                raise ValueError("this block has cross-attention and needs cond_tokens")
            branches.append(lambda h: self.cross_attn(h, cond_tokens, key_padding_mask=cond_mask))
        branches.append(self.mlp)
        modulation = self.adaLN_modulation(c).chunk(CHUNKS_PER_BRANCH * self.num_branches, dim=-1)
        for i, (branch, norm) in enumerate(zip(branches, self.norms, strict=True)):
            shift, scale, gate = modulation[CHUNKS_PER_BRANCH * i : CHUNKS_PER_BRANCH * (i + 1)]
            x = x + gate[:, None, :] * branch(modulate(norm(x), shift, scale))
        return x


class FinalLayer(nn.Module):
    """adaLN (shift, scale from c) + Linear D -> C, both zero-initialised (a fresh model
    predicts exactly 0)."""

    def __init__(self, width: int, out_channels: int):
        super().__init__()
        self.norm = plain_layer_norm(width)
        self.adaLN_modulation = zero_init_modulation(width, 2)
        self.linear = nn.Linear(width, out_channels)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)  # [B, D] each
        return self.linear(modulate(self.norm(x), shift, scale))  # [B, L, C]
