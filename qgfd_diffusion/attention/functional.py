"""Functional QGFD attention, in the style of ``F.scaled_dot_product_attention``.

Dimension legend: B batch, H heads, Lq queries, N keys, d key width, dv value width.

Symbols (DESIGN.md section 2; prototype 000):
    s      scale, 1/sqrt(d) by default
    p0     seed distribution softmax(s Q K^T + bias)              [B, H, Lq, N]
    P      row-stochastic transition over keys                   [B, H, N, N]
    a      alpha, the weight of the walk (1 - a: teleport to p0)
    T      steps
    ppr:   p_{t+1} = (1 - a) p0 + a p_t P,  out = p_T V            (personalised PageRank)
    power: p = (1 - a) p0 + a p0 P^T  (P to the power T; prototype 001)

Never materialising p, the recursion runs on values instead (exact, by associativity):
    W_0 = V,  W_{t+1} = (1 - a) V + a P W_t,  out = p0 W_T = SDPA(Q, K, W_T)
so T steps cost T products P W plus one attention call. For softmax-type P each product is a
fused attention call itself: T + 1 fused calls, O(N dv) memory, no N x N tensor.
T = inf (``steps=None``) solves (I - a P) W = (1 - a) V the same way (fixed_point.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..checks import check_choice
from .fixed_point import ImplicitFixedPoint, dense_solve
from .masks import entry_mask, key_mask, transition_mask
from .options import (
    FixedPointSettings,
    IterationKind,
    NonConvergence,
    PathKind,
    SolverKind,
    TransitionKind,
)
from .transitions import (
    DenseTransition,
    GraphTransition,
    LinearTransition,
    SoftmaxTransition,
    TopKSoftmaxTransition,
    Transition,
    default_scale,
)

# The materialised path builds one [B, H, N, N] P and reuses it for every step: (T + 3) / 2
# attention-equivalents instead of T + 1 in FLOPs, but unfused. Measured on CPU
# (benchmarks/attention.py and the backbone benchmark), it wins only while P is tiny (short N,
# few heads): at B*H = 16, N = 1024 it costs 6.5x SDPA against 3.0x fused for T = 2.
MATERIALIZE_MAX_BYTES = 2 * 2**20


def qgfd_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Tensor | None = None,
    *,
    alpha: float | Tensor,
    steps: int | None,
    transition: TransitionKind = "keys",
    iteration: IterationKind = "ppr",
    topk: int | None = None,
    temperature: float = 1.0,
    graph: Tensor | None = None,
    scale: float | None = None,
    early_stop_eps: float | None = None,
    dropout_p: float = 0.0,
    detach_transition: bool = False,
    path: PathKind = "auto",
    solver: SolverKind = "auto",
    tol: float = 1e-4,
    max_applications: int = 500,
    on_nonconvergence: NonConvergence = "warn",
) -> Tensor:
    """QGFD attention: out = p_T V with p_T the T-step walk from p0 = softmax(s Q K^T).

    Args:
        query: [B, H, Lq, d]. key: [B, H, N, d]. value: [B, H, N, dv].
        attn_mask: bool (True = takes part) or additive float, broadcastable to [B, H, Lq, N].
            Applied to p0 and to P (key-padding masks [.., 1, N] or self-attention [.., N, N]).
        alpha: a in [0, 1] ([0, 1) for steps=None): float, or a tensor: 0-d, per head [H], or
            broadcastable [B|1, H|1] (e.g. a function of the diffusion timestep).
        steps: T >= 0; None solves the ``ppr`` fixed point (1 - a) p0 (I - a P)^-1 iteratively
            to ``tol`` (fixed_point.py: Chebyshev where P's spectrum is known real, GMRES
            elsewhere), with gradients by implicit differentiation; O(N dv) memory.
        transition: ``keys`` softmax(s K K^T), ``cosine`` softmax(K^ K^^T / temperature),
            ``attention`` P = p0 (needs Lq = N), ``graph`` the row-normalised ``graph``
            adjacency (restricted to the mask's entries), ``linear`` the DIFFormer-s kernel.
        graph: the adjacency of ``graph``: [N, N] or [B, N, N], dense or torch sparse (sparse:
            O(E dv) per step).
        iteration: ``ppr`` or ``power``.
        topk: keep only the k largest logits of each row of a softmax-type P.
        early_stop_eps: stop once max |W_{t+1} - W_t| < eps (the result stays differentiable).
        dropout_p: dropout on the seed distribution p0 (as SDPA's attention dropout).
        detach_transition: build P from detached inputs (prototype 003's ``detach_P``).
        path: ``fused`` (T + 1 fused calls, O(N) memory), ``materialized`` (P built once), or
            ``auto`` (materialised when P is small).
        solver: how steps=None solves: ``auto``, ``chebyshev``, ``gmres``, ``ppr`` (the PPR
            iteration to ``tol``) or ``dense`` (P materialised and LU-solved; small N only).
        tol: relative residual at which a steps=None solve (forward and adjoint) stops.
        max_applications: products with P one steps=None solve may use.
        on_nonconvergence: ``warn`` (once per process, with the residual reached) or ``raise``
            (``FixedPointNotConverged``) when a solve ends above ``tol``.

    Returns:
        out [B, H, Lq, dv]. With a = 0 or T = 0 it is exactly ``F.scaled_dot_product_attention``.
    """
    _check_inputs(query, key, value, transition, iteration, steps, topk, temperature, graph, path)
    s = default_scale(query.shape[-1]) if scale is None else scale
    if _is_plain_attention(alpha, steps):
        return F.scaled_dot_product_attention(
            query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, scale=s
        )
    a = _alpha_as_tensor(alpha, query, fixed_point=steps is None)  # float or [B|1, H|1, 1, 1]
    make_P = TransitionBuilder(transition, topk, temperature, s, detach_transition, path)
    if steps is None:
        settings = FixedPointSettings(solver, tol, max_applications, on_nonconvergence)
        W = solve_fixed_point(make_P, (query, key, attn_mask, graph), value, a, settings)
    else:
        W = diffuse_values(
            make_P(query, key, attn_mask, graph), value, a, steps, iteration, early_stop_eps
        )  # [B, H, N, dv]
    return F.scaled_dot_product_attention(
        query, key, W, attn_mask=attn_mask, dropout_p=dropout_p, scale=s
    )


class TransitionBuilder:
    """(query, key, attn_mask, graph) -> P with fixed settings, materialised when ``path`` says
    so. A plain object, so that the fixed point's backward can rebuild P from its inputs."""

    def __init__(self, transition, topk, temperature, scale, detach, path):
        self.transition, self.topk, self.temperature = transition, topk, temperature
        self.scale, self.detach, self.path = scale, detach, path

    def __call__(self, query, key, attn_mask, graph) -> Transition:
        P = build_transition(
            query,
            key,
            attn_mask,
            transition=self.transition,
            topk=self.topk,
            temperature=self.temperature,
            graph=graph,
            scale=self.scale,
            detach=self.detach,
        )
        if _use_materialized(self.path, P, key):
            return DenseTransition(P.dense(), P.spectrum)
        return P


def solve_fixed_point(
    make_P: TransitionBuilder,
    theta: tuple[Tensor | None, ...],
    V: Tensor,
    a: float | Tensor,
    settings: FixedPointSettings,
) -> Tensor:
    """W with (I - a P) W = (1 - a) V, P = make_P(*theta): implicit gradients, or the dense
    solve (``solver="dense"``, autograd through the LU)."""
    if settings.solver == "dense":
        return dense_solve(make_P(*theta), V, a)
    return ImplicitFixedPoint.apply(make_P, settings, a, V, *theta)


def build_transition(
    query: Tensor,
    key: Tensor,
    attn_mask: Tensor | None,
    *,
    transition: TransitionKind,
    topk: int | None,
    temperature: float,
    graph: Tensor | None,
    scale: float,
    detach: bool = False,
) -> Transition:
    """The transition operator P over the N keys, with the mask carried over to it."""
    Lq, N = query.shape[-2], key.shape[-2]
    if detach:
        query, key = query.detach(), key.detach()
    if transition == "graph":
        return GraphTransition(graph, entry_mask(attn_mask, Lq, N), N, batch=key.shape[0])
    if transition == "linear":
        return LinearTransition(key, key_mask(attn_mask, Lq, N))
    mask = transition_mask(attn_mask, Lq, N)
    if transition == "keys":
        left, right, p_scale = key, key, scale
    elif transition == "cosine":
        k_hat = F.normalize(key, dim=-1)  # K^ [B, H, N, d]
        left, right, p_scale = k_hat, k_hat, 1.0 / temperature
    else:  # "attention": P = p0
        left, right, p_scale = query, key, scale
    if topk is not None and topk < N:
        return TopKSoftmaxTransition(left, right, p_scale, mask, topk)
    return SoftmaxTransition(left, right, p_scale, mask)


def diffuse_values(
    P: Transition,
    V: Tensor,
    a: float | Tensor,
    steps: int | None,
    iteration: IterationKind,
    early_stop_eps: float | None = None,
) -> Tensor:
    """W such that p_T V = p0 W (see the module docstring). V: [B, H, N, dv]. ``steps=None``
    on a built P is the dense solve; ``qgfd_attention`` solves iteratively (``solve_fixed_point``,
    which rebuilds P from its inputs for the implicit backward)."""
    if steps is None:
        return dense_solve(P, V, a)
    teleport = (1 - a) * V  # (1 - a) V, shared by every step
    if iteration == "power":  # P^T V by T products, then one mix
        return _add_scaled(teleport, a, _iterate(P.matmul, V, steps, early_stop_eps))
    ppr_update = lambda W_t: _add_scaled(teleport, a, P.matmul(W_t))
    return _iterate(ppr_update, V, steps, early_stop_eps)


def _add_scaled(x: Tensor, a: float | Tensor, y: Tensor) -> Tensor:
    """x + a y in one fused op (one new tensor per step keeps the recursion's memory low)."""
    if isinstance(a, Tensor):
        return torch.addcmul(x, a, y)
    return torch.add(x, y, alpha=a)


def _iterate(update, X0: Tensor, steps: int, early_stop_eps: float | None) -> Tensor:
    """X_T = update^T(X_0), T = ``steps``, stopping early once max |X_{t+1} - X_t| < eps."""
    X = X0
    for _ in range(steps):
        X_next = update(X)
        converged = early_stop_eps is not None and _max_change(X_next, X) < early_stop_eps
        X = X_next
        if converged:
            break
    return X


def _max_change(X_next: Tensor, X: Tensor) -> float:
    with torch.no_grad():
        return float((X_next - X).abs().amax())


def _is_plain_attention(alpha: float | Tensor, steps: int | None) -> bool:
    return steps == 0 or (not isinstance(alpha, Tensor) and float(alpha) == 0.0)


def _alpha_as_tensor(alpha: float | Tensor, query: Tensor, fixed_point: bool) -> float | Tensor:
    """alpha -> float, or a tensor [B|1, H|1, 1, 1] in the query's dtype (1-d: per head [H]).
    The fixed point needs a < 1 (I - a P is singular at a = 1)."""
    if not isinstance(alpha, Tensor):
        if not 0.0 <= float(alpha) <= 1.0 or (fixed_point and float(alpha) == 1.0):
            raise ValueError(f"alpha must be in {_alpha_range(fixed_point)}, got {alpha}")
        return float(alpha)
    if fixed_point and bool(((alpha < 0) | (alpha >= 1)).any()):
        low, high = float(alpha.detach().min()), float(alpha.detach().max())
        raise ValueError(
            f"alpha must be in {_alpha_range(fixed_point)}, got values in [{low:g}, {high:g}]"
        )
    B, H = query.shape[:2]
    a = torch.as_tensor(alpha, dtype=query.dtype, device=query.device)
    if a.dim() == 1:
        if a.shape[0] not in (1, H):
            raise ValueError(f"a 1-d alpha is per head and needs {H} entries, got {a.shape[0]}")
        a = a.view(1, -1)
    if a.dim() > 2 or (a.dim() == 2 and (a.shape[0] not in (1, B) or a.shape[1] not in (1, H))):
        raise ValueError(f"alpha must be a float, [H] or [B|1, H|1]; got shape {tuple(a.shape)}")
    return a.reshape(*a.shape, *([1] * (4 - a.dim()))) if a.dim() else a


def _alpha_range(fixed_point: bool) -> str:
    return "[0, 1) for the fixed point (steps=None)" if fixed_point else "[0, 1]"


def _use_materialized(path: PathKind, P: Transition, key: Tensor) -> bool:
    if path != "auto":
        return path == "materialized"
    if not isinstance(P, SoftmaxTransition) or isinstance(P, TopKSoftmaxTransition):
        return False
    B, H, N = key.shape[0], key.shape[1], key.shape[-2]
    return B * H * N * N * key.element_size() <= MATERIALIZE_MAX_BYTES


def _check_inputs(query, key, value, transition, iteration, steps, topk, temperature, graph, path):
    check_choice("transition", transition, TransitionKind)
    check_choice("iteration", iteration, IterationKind)
    check_choice("path", path, PathKind)
    if query.dim() != 4 or key.dim() != 4 or value.dim() != 4:
        raise ValueError(
            "query, key and value must be [B, H, L, d]; got shapes "
            f"{tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}"
        )
    if key.shape[-2] != value.shape[-2] or query.shape[-1] != key.shape[-1]:
        raise ValueError(
            f"key {tuple(key.shape)} and value {tuple(value.shape)} need the same N, and query "
            f"{tuple(query.shape)} the same d as key"
        )
    if steps is not None and (not isinstance(steps, int) or steps < 0):
        raise ValueError(f"steps must be an int >= 0 or None (the fixed point), got {steps!r}")
    if steps is None and iteration == "power":
        raise ValueError(
            "iteration='power' needs a finite number of steps (steps=None is ppr only)"
        )
    if transition == "attention" and query.shape[-2] != key.shape[-2]:
        raise ValueError(
            f"transition='attention' uses P = p0 and needs Lq = N; got Lq = {query.shape[-2]}, "
            f"N = {key.shape[-2]}"
        )
    if transition == "graph" and graph is None:
        raise ValueError("transition='graph' needs graph= (an [N, N] or [B, N, N] adjacency)")
    if transition == "graph" and graph.dim() == 3 and graph.shape[0] not in (1, key.shape[0]):
        raise ValueError(
            f"a batched graph needs one adjacency per sample: B = {key.shape[0]}, "
            f"got {graph.shape[0]} graphs"
        )
    if topk is not None and (topk < 1 or transition not in ("keys", "cosine", "attention")):
        raise ValueError(
            f"topk must be >= 1 and needs a softmax transition; got topk={topk}, "
            f"transition={transition!r}"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
