"""QGFD's T = inf limit: the PPR fixed point in linear memory, with implicit gradients.

Dimension legend: B batch, H heads, N keys, dv value width.

Symbols (DESIGN.md section 2): the fixed point of W <- (1 - a) V + a P W is the solution of
    (I - a P) W = (1 - a) V,    out = p0 W = (1 - a) p0 (I - a P)^-1 V.
It is solved by iteration with products P W only (solvers.py), each one fused attention call
for softmax transitions, so no N x N tensor exists and memory stays O(N dv):

* ``chebyshev`` where P's spectrum is known to be real (``Transition.spectrum``, derived in
  transitions.py): ``keys`` and ``cosine`` without top-k under no mask or a key-padding mask
  (spectrum in [0, 1]: P = D^-1 S, S PSD by the Schur product theorem), the ``linear`` kernel
  ([0, 1]), an undirected ``graph`` (D^-1 A: [-1, 1]) and softmax transitions under a symmetric
  self-attention mask or bias ([-1, 1]). A key-padding mask keeps these bounds (padded keys
  only add rows no one reaches); an arbitrary ``attn_mask`` (causal, per-query) may not.
* ``gmres`` for the rest (top-k: k-nearest-neighbour lists are not symmetric; ``attention``:
  P = softmax(s Q K^T); directed graphs; masks that break the symmetry): no spectral bound
  needed, same O(N dv) memory order (21 Krylov vectors).
* ``ppr`` (the PPR iteration itself, error a^t) and ``dense`` (materialise P, LU solve; for
  small N) on request.

Gradients (implicit function theorem, as in deep equilibrium models, Bai et al. 2019): with
g = dL/dW, the adjoint U solves (I - a P)^T U = g by the same solver on products P^T U
(``Transition.rmatmul``: one fused call too); then dL/dV = (1 - a) U, dL/da = <U, P W - V> per
system, and the transition's inputs get the vector-Jacobian product of a P(theta) W with U: one
attention forward and backward at the solution. No iteration is stored for backward; the
gradients are exact to the solver's tolerance. Double backward is not supported.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .options import FixedPointSettings
from .solvers import SolveResult, chebyshev, gmres, ppr
from .transitions import Interval, Transition

MakeTransition = Callable[..., Transition]  # (query, key, attn_mask, graph) -> P


class FixedPointNotConverged(RuntimeError):
    """A fixed-point solve ended above its tolerance (``on_nonconvergence="raise"``)."""


class FixedPointWarning(RuntimeWarning):
    """A fixed-point solve ended above its tolerance (``on_nonconvergence="warn"``)."""


def choose_method(settings: FixedPointSettings, P: Transition) -> tuple[str, Interval | None]:
    """(solver, spectrum interval) for P: ``auto`` picks Chebyshev only on a known spectrum."""
    if settings.solver not in ("auto", "chebyshev"):
        return settings.solver, None
    interval = P.spectrum()
    if interval is not None:
        return "chebyshev", interval
    if settings.solver == "chebyshev":
        raise ValueError(
            "solver='chebyshev' needs a transition with a known real spectrum (keys or cosine "
            "without top-k under no, key-padding or symmetric masks; linear; undirected "
            f"graphs); got {type(P).__name__} without one: use solver='auto' or 'gmres'"
        )
    return "gmres", None


def solve_values(
    P: Transition,
    apply_P: Callable[[Tensor], Tensor],
    a: float | Tensor,
    rhs: Tensor,
    settings: FixedPointSettings,
    method: tuple[str, Interval | None],
) -> SolveResult:
    """X with (I - a P) X = rhs (``apply_P`` = P.matmul) or (I - a P^T) X = rhs (P.rmatmul)."""
    name, interval = method
    budget = (settings.tol, settings.max_applications)
    with torch.no_grad():
        if name == "chebyshev":
            return chebyshev(apply_P, a, rhs, interval, *budget)
        if name == "gmres":
            return gmres(apply_P, a, rhs, *budget)
        return ppr(apply_P, a, rhs, *budget)


_warned = False  # a non-converged solve is reported once per process


def report_nonconvergence(result: SolveResult, direction: str, method: str, settings) -> None:
    """Raise or (the first time) warn that a solve stopped above its tolerance."""
    global _warned
    message = (
        f"QGFD fixed point: the {direction} solve ({method}) stopped at relative residual "
        f"{result.residual:.3g} > tol={settings.tol:g} after {result.applications} products "
        f"with P (max_applications={settings.max_applications}); raise max_applications or "
        "tol, or lower alpha"
    )
    if settings.on_nonconvergence == "raise":
        raise FixedPointNotConverged(message)
    if not _warned:
        _warned = True
        warnings.warn(message + " (reported once per process)", FixedPointWarning, stacklevel=4)


@dataclass(frozen=True)
class SolveRecord:
    """One solve: ``direction`` forward or adjoint, the method, the products with P (or P^T)
    it used and the relative residual it reached."""

    direction: str
    method: str
    applications: int
    residual: float
    converged: bool


_recorders: list[list[SolveRecord]] = []


@contextmanager
def record_solves() -> Iterator[list[SolveRecord]]:
    """Collect a ``SolveRecord`` for every fixed-point solve run inside the block, e.g. to
    count products with P: ``with record_solves() as solves: out.sum().backward()``."""
    solves: list[SolveRecord] = []
    _recorders.append(solves)
    try:
        yield solves
    finally:
        _recorders.remove(solves)


def _solve_checked(P, apply_P, a, rhs, settings, method, direction) -> Tensor:
    result = solve_values(P, apply_P, a, rhs, settings, method)
    for solves in _recorders:
        solves.append(
            SolveRecord(
                direction, method[0], result.applications, result.residual, result.converged
            )
        )
    if not result.converged:
        report_nonconvergence(result, direction, method[0], settings)
    return result.X


class ImplicitFixedPoint(torch.autograd.Function):
    """W = (1 - a) (I - a P(theta))^-1 V with the adjoint solve as backward (module docstring).

    apply(make_transition, settings, a, V, *theta): ``make_transition(*theta)`` builds P from
    its inputs (query, key, attn_mask, graph; None where absent), again in backward with
    gradients on. a: float or tensor [B|1, H|1, 1, 1]; V [B, H, N, dv].
    """

    @staticmethod
    def forward(ctx, make_transition, settings, a, V, *theta):
        P = make_transition(*theta)
        method = choose_method(settings, P)
        W = _solve_checked(P, P.matmul, a, (1 - a) * V, settings, method, "forward")
        ctx.make_transition, ctx.settings, ctx.method = make_transition, settings, method
        ctx.alpha = a if not isinstance(a, Tensor) else None
        ctx.save_for_backward(W, V, a if isinstance(a, Tensor) else None, *theta)
        return W

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_W):
        W, V, a_tensor, *theta = ctx.saved_tensors
        a = ctx.alpha if a_tensor is None else a_tensor
        needs_a, needs_V, *needs_theta = ctx.needs_input_grad[2:]
        wanted = [need and x is not None for need, x in zip(needs_theta, theta, strict=True)]
        leaves = [_leaf(x) if w else x for x, w in zip(theta, wanted, strict=True)]
        with torch.enable_grad():
            P = ctx.make_transition(*leaves)
        U = _solve_checked(P, P.rmatmul, a, grad_W, ctx.settings, ctx.method, "adjoint")
        grad_theta, PW = _transition_vjp(P, W, a * U, leaves, wanted)
        grad_a = None
        if needs_a:
            PW = P.matmul(W) if PW is None else PW
            grad_a = (U * (PW - V)).sum((-2, -1), keepdim=True).sum_to_size(a.shape)
        grad_V = (1 - a) * U if needs_V else None
        return (None, None, grad_a, grad_V, *grad_theta)


def _transition_vjp(P, W, cotangent, leaves, wanted) -> tuple[list, Tensor | None]:
    """Gradients of <cotangent, P(theta) W> for the wanted inputs theta, and P W (detached)."""
    if not any(wanted):
        return [None] * len(leaves), None
    with torch.enable_grad():
        PW = P.matmul(W)
    if not PW.requires_grad:  # P built from detached inputs (detach_transition)
        return [None] * len(leaves), PW.detach()
    sources = [x for x, w in zip(leaves, wanted, strict=True) if w]
    found = iter(torch.autograd.grad(PW, sources, cotangent, allow_unused=True))
    return [next(found) if w else None for w in wanted], PW.detach()


def dense_solve(P: Transition, V: Tensor, a: float | Tensor) -> Tensor:
    """(I - a P)^-1 (1 - a) V with P materialised and LU-factorised, one matrix at a time:
    the batched LU of the oneMKL build under torch 2.14 fails with more than one thread
    ("Pivots given to lu_solve must all be greater or equal to 1"), the unbatched one does not.
    O(N^2) memory and O(N^3) time per head: for small N and as the tests' reference."""
    P_dense = P.dense()  # [b, h, N, N]
    eye = torch.eye(P_dense.shape[-1], dtype=P_dense.dtype, device=P_dense.device)
    A, rhs = eye - a * P_dense, (1 - a) * V  # [b, h, N, N], [B, H, N, dv]
    batch = torch.broadcast_shapes(A.shape[:-2], rhs.shape[:-2])
    A, rhs = A.expand(*batch, *A.shape[-2:]), rhs.expand(*batch, *rhs.shape[-2:])
    solutions = [
        torch.linalg.solve(A_i, rhs_i)
        for A_i, rhs_i in zip(A.flatten(0, 1), rhs.flatten(0, 1), strict=True)
    ]
    return torch.stack(solutions).view(rhs.shape)


def _leaf(x: Tensor) -> Tensor:
    return x.detach().requires_grad_()
