"""Naive QGFD, written straight from the prototypes' formulas: materialise p0 and P, loop on p.

O(T Lq N^2) time and O(N^2) memory per head. It exists as the independent reference that the
fast kernel is tested and benchmarked against; never use it in a model.

Dimension legend: B batch, H heads, Lq queries, N keys, d key width, dv value width.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def naive_qgfd_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Tensor | None = None,
    *,
    alpha: float | Tensor,
    steps: int | None,
    transition: str = "keys",
    iteration: str = "ppr",
    topk: int | None = None,
    temperature: float = 1.0,
    graph: Tensor | None = None,
    scale: float | None = None,
) -> Tensor:
    s = scale if scale is not None else 1.0 / math.sqrt(query.shape[-1])
    bias = _bias(attn_mask, query.dtype)  # [b, h, Lq, N] or None
    logits = s * query @ key.transpose(-1, -2)  # [B, H, Lq, N]
    if bias is not None:
        logits = logits + bias
    p0 = torch.softmax(logits, dim=-1)
    P = naive_transition(query, key, p0, bias, transition, topk, temperature, graph, s)
    a = _alpha(alpha, query)
    if iteration == "power":  # prototype 001: mix p0 with p0 P^T (P to the power T)
        p = (1 - a) * p0 + a * p0 @ torch.linalg.matrix_power(P, steps)
    elif steps is None:  # prototype 000: p_inf = (1 - a) p0 (I - a P)^-1
        eye = torch.eye(P.shape[-1], dtype=P.dtype, device=P.device)
        p = (1 - a) * p0 @ torch.linalg.inv(eye - a * P)
    else:  # prototype 000: p_{t+1} = (1 - a) p0 + a p_t P
        p = p0
        for _ in range(steps):
            p = (1 - a) * p0 + a * p @ P
    return p @ value


def naive_transition(query, key, p0, bias, transition, topk, temperature, graph, s) -> Tensor:
    """P [B|1, H|1, N, N] from the prototypes' definitions."""
    N = key.shape[-2]
    P_bias = None if bias is None else (bias if bias.shape[-2] in (1, N) else None)
    if transition == "attention":
        return p0 if topk is None else _softmax_topk(_p0_logits(query, key, bias, s), topk)
    if transition in ("keys", "cosine"):
        K = key if transition == "keys" else F.normalize(key, dim=-1)
        scale = s if transition == "keys" else 1.0 / temperature
        sim = scale * K @ K.transpose(-1, -2)
        if P_bias is not None:
            sim = sim + P_bias
        return _softmax_topk(sim, topk)
    keep = torch.ones(N, dtype=key.dtype, device=key.device)
    if bias is not None:
        keep = torch.isfinite(bias[..., :1, :]).to(key.dtype)  # [b, h, 1, N]: 0 on padded keys
    if transition == "graph" and P_bias is not None:
        keep = torch.isfinite(P_bias).to(key.dtype)  # [b, h, 1|N, N]: 0 on masked edges
    if transition == "linear":
        k_hat = F.normalize(key, dim=-1)
        kernel = (1 + k_hat @ k_hat.transpose(-1, -2)) * keep
        return kernel / kernel.sum(-1, keepdim=True)
    A = (graph.to_dense() if graph.is_sparse else graph).to(key.dtype)
    A = (A if A.dim() == 2 else A[:, None]) * keep  # [b, h, N, N]: A * M
    degree = A.sum(-1, keepdim=True)
    eye = torch.eye(N, dtype=A.dtype, device=A.device)
    return torch.where(degree > 0, A / degree.clamp_min(1e-300), eye)  # dangling: stay


def _p0_logits(query, key, bias, s):
    logits = s * query @ key.transpose(-1, -2)
    return logits if bias is None else logits + bias


def _softmax_topk(sim: Tensor, topk: int | None) -> Tensor:
    if topk is not None and topk < sim.shape[-1]:
        kth = sim.topk(topk, dim=-1).values[..., -1:]
        sim = sim.masked_fill(sim < kth, float("-inf"))
    return torch.softmax(sim, dim=-1)


def _bias(attn_mask, dtype):
    if attn_mask is None:
        return None
    while attn_mask.dim() < 4:
        attn_mask = attn_mask.unsqueeze(0)
    if attn_mask.dtype == torch.bool:
        return torch.zeros(attn_mask.shape, dtype=dtype).masked_fill(~attn_mask, float("-inf"))
    return attn_mask.to(dtype)


def _alpha(alpha, query):
    a = torch.as_tensor(alpha, dtype=query.dtype)
    if a.dim() == 1:
        return a.view(1, -1, 1, 1)
    if a.dim() == 2:
        return a.view(*a.shape, 1, 1)
    return a
