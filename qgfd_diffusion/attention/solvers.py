"""Iterative solvers for the PPR fixed point (I - a P) X = B, batched over heads and samples.

Dimension legend: B batch, H heads, N keys, E right-hand-side columns (dv for the values).

Every solver sees P only through ``apply_P(X)`` (one fused attention call for softmax
transitions), keeps O(N E) memory per system, starts from X_0 = B / (1 - a) (``_start``) and
stops on the relative residual ||B - (I - a P) X||_F / ||B||_F <= tol of every [N, E] system
(one per sample and head), or after ``max_applications`` products with P (the first one
included). a: a float or a tensor [B|1, H|1, 1, 1].

* ``chebyshev``: Chebyshev semi-iteration (Golub and Varga 1961; Saad, Iterative Methods for
  Sparse Linear Systems, 2nd ed., Algorithm 12.1) for P with eigenvalues in a known real
  interval [lo, 1]: I - a P then has its spectrum in [1 - a, 1 - a lo], and the error falls by
  (sqrt(k) - 1) / (sqrt(k) + 1) per product, k = (1 - a lo) / (1 - a): about 15 products to
  1e-4 at a = 0.9 on [0, 1], against about 88 for the PPR iteration. One product per step,
  three vectors.
* ``gmres``: restarted GMRES (Saad and Schultz 1986), one Krylov space per column; needs no
  spectral bound (top-k, ``attention``, directed graphs, asymmetric masks), never increases the
  residual, and adapts to the actual spectrum, which for attention-like P is mostly near 0.
  One product per step, ``GMRES_RESTART + 1`` vectors.
* ``ppr``: the PPR iteration X <- B + a P X itself (Richardson), error a^t: the reference.

A solver returns its ``SolveResult``; it never raises or warns (fixed_point.py decides).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

Apply = Callable[[Tensor], Tensor]

# Krylov vectors kept before GMRES restarts: 21 copies of X, still O(N E) per system.
GMRES_RESTART = 20


@dataclass
class SolveResult:
    """X [B, H, N, E]; applications: products with P used; residual: the largest relative
    residual over the systems at the end; converged: residual <= tol."""

    X: Tensor
    applications: int
    residual: float
    converged: bool


def _start(apply_P: Apply, a: float | Tensor, rhs: Tensor) -> tuple[Tensor, Tensor, int]:
    """X_0 = rhs / (1 - a) (for the values W_0 = V, the T = 0 walk), R_0 = a (P X_0 - X_0), at
    the cost of one product. P 1 = 1 makes pi^T R_0 = 0 for the left Perron vector pi (and
    1^T R_0 = 0 for P^T), so the residual has no part along the eigenvalue 1 - a of I - a P,
    the one mode whose error is 1 / (1 - a) times its residual: the relative residual then
    bounds the relative error without that factor. From X_0 = 0 the same tol left output
    errors 2-3 x tol in measurements (a = 0.9), for 3 products less."""
    X = rhs / (1 - a)
    return X, apply_P(X).sub_(X).mul_(a), 1


def _add_scaled_(Y: Tensor, c: float | Tensor, X: Tensor) -> Tensor:
    """Y += c X in place (c a float or a tensor broadcast over the systems); the solvers run
    without autograd and update their few vectors in place to keep the peak memory low."""
    return Y.addcmul_(c, X) if isinstance(c, Tensor) else Y.add_(X, alpha=c)


def _norm(X: Tensor) -> Tensor:
    """Frobenius norm of each [N, E] system: [B, H, 1, 1]."""
    return torch.linalg.vector_norm(X, dim=(-2, -1), keepdim=True)


def _done(r_norm: Tensor, b_norm: Tensor, tol: float) -> bool:
    return bool((r_norm <= tol * b_norm).all())


def _relative(r_norm: Tensor, b_norm: Tensor) -> float:
    tiny = torch.finfo(b_norm.dtype).tiny
    return float((r_norm / b_norm.clamp_min(tiny)).amax())


def chebyshev(
    apply_P: Apply,
    a: float | Tensor,
    rhs: Tensor,
    interval: tuple[float, float],
    tol: float,
    max_applications: int,
) -> SolveResult:
    """Chebyshev semi-iteration for (I - a P) X = rhs, eig(P) in ``interval`` = [lo, hi].

    Symbols (Saad, Algorithm 12.1) for A = I - a P with spectrum in [alpha, beta]:
    theta = (beta + alpha) / 2 the centre, delta = (beta - alpha) / 2 the half-width,
    sigma = theta / delta; from X_0, R_0 (``_start``): D_0 = R_0 / theta, and per step
    X += D, R -= A D, rho' = 1 / (2 sigma - rho), D = rho' rho D + (2 rho' / delta) R.
    """
    lo, hi = interval
    theta = 1.0 - a * (hi + lo) / 2  # [B|1, H|1, 1, 1] or float
    delta = a * (hi - lo) / 2
    if isinstance(delta, Tensor):  # a = 0 is the identity: keep the recursion finite
        delta = delta.clamp_min(torch.finfo(rhs.dtype).eps)
    else:
        delta = max(delta, torch.finfo(rhs.dtype).eps)
    sigma = theta / delta
    b_norm = _norm(rhs)
    X, R, applications = _start(apply_P, a, rhs)
    D = R / theta
    rho = 1.0 / sigma
    r_norm = _norm(R)
    while not _done(r_norm, b_norm, tol) and applications < max_applications:
        X += D
        _add_scaled_(R.sub_(D), a, apply_P(D))  # R -= A D, A D = D - a P D
        applications += 1
        r_norm = _norm(R)
        rho_next = 1.0 / (2 * sigma - rho)
        _add_scaled_(D.mul_(rho_next * rho), 2 * rho_next / delta, R)
        rho = rho_next
    residual = _relative(r_norm, b_norm)
    return SolveResult(X, applications, residual, residual <= tol)


def ppr(apply_P: Apply, a: float | Tensor, rhs: Tensor, tol: float, max_applications: int):
    """The PPR iteration X_{t+1} = rhs + a P X_t from X_0 = rhs / (1 - a) (for the values:
    W_0 = V, as the finite-T recursion). Its residual is X_{t+1} - X_t, free of charge."""
    b_norm = _norm(rhs)
    X = rhs / (1 - a)
    applications = 0
    while True:  # max_applications >= 1
        X_next = rhs + a * apply_P(X)
        applications += 1
        r_norm = _norm(X_next - X)  # the residual of X; X_next's is smaller
        X = X_next
        if _done(r_norm, b_norm, tol) or applications >= max_applications:
            break
    residual = _relative(r_norm, b_norm)
    return SolveResult(X, applications, residual, residual <= tol)


def gmres(
    apply_P: Apply,
    a: float | Tensor,
    rhs: Tensor,
    tol: float,
    max_applications: int,
    restart: int = GMRES_RESTART,
) -> SolveResult:
    """Restarted GMRES for (I - a P) X = rhs, each of the E columns its own Krylov space
    (inner products over N only), all columns and systems advancing together."""
    b_norm = _norm(rhs)
    X, R, applications = _start(apply_P, a, rhs)
    r_norm = _norm(R)
    while not _done(r_norm, b_norm, tol) and applications < max_applications:
        steps = min(restart, max_applications - applications)
        X, R, r_norm, used = _gmres_cycle(apply_P, a, X, R, b_norm, tol, steps)
        applications += used
    residual = _relative(r_norm, b_norm)
    return SolveResult(X, applications, residual, residual <= tol)


def _column_dot(X: Tensor, Y: Tensor) -> Tensor:
    return (X * Y).sum(-2, keepdim=True)  # [B, H, 1, E]


def _safe_divide(x: Tensor, y: Tensor) -> Tensor:
    return torch.where(y != 0, x / torch.where(y != 0, y, 1.0), 0.0)


def _gmres_cycle(apply_P, a, X, R, b_norm, tol, steps):
    """One GMRES(m) cycle from X with residual R: Arnoldi (modified Gram-Schmidt) on
    A = I - a P, Givens rotations for the least-squares residual, update. The new residual
    comes from the Arnoldi relation R' = V_{m+1} (beta e_1 - H y), so a cycle costs exactly its
    m products. Returns X, R, ||R||_F per system and m."""
    beta = R.square().sum(-2, keepdim=True).sqrt()  # [B, H, 1, E]
    basis = [_safe_divide(R, beta)]  # v_0
    hessenberg: list[list[Tensor]] = []  # column j: H_{0..j+1, j}, [B, H, 1, E] each
    triangular: list[list[Tensor]] = []  # the same columns after the Givens rotations
    rotations: list[tuple[Tensor, Tensor]] = []
    g = [beta]  # beta e_1, rotated along
    for j in range(steps):
        w = basis[j] - a * apply_P(basis[j])  # A v_j
        column = []
        for v in basis:
            h = _column_dot(w, v)
            w = w - h * v
            column.append(h)
        h_next = w.square().sum(-2, keepdim=True).sqrt()
        basis.append(_safe_divide(w, h_next))
        column.append(h_next)
        hessenberg.append(column)
        triangular.append(_givens_step(column, rotations, g))
        if _done(_norm(g[-1]), b_norm, tol):  # |g_{j+1}|: each column's residual norm
            break
    y = _back_substitute(triangular, g)
    X = X + sum(y_j * v for y_j, v in zip(y, basis, strict=False))
    coefficients = [beta] + [torch.zeros_like(beta)] * len(y)  # beta e_1 - H y (unrotated H)
    for y_j, column in zip(y, hessenberg, strict=True):
        for i, h in enumerate(column):
            coefficients[i] = coefficients[i] - h * y_j
    R = sum(c * v for c, v in zip(coefficients, basis, strict=True))
    return X, R, _norm(R), len(y)


def _givens_step(column: list[Tensor], rotations: list, g: list[Tensor]) -> list[Tensor]:
    """Rotate a new Hessenberg column by the previous rotations and append the rotation that
    zeroes its last entry (updating g); returns the rotated column (upper triangular)."""
    h = list(column)
    for i, (c, s) in enumerate(rotations):
        h[i], h[i + 1] = c * h[i] + s * h[i + 1], -s * h[i] + c * h[i + 1]
    j = len(rotations)
    radius = torch.sqrt(h[j].square() + h[j + 1].square())
    c = torch.where(radius > 0, _safe_divide(h[j], radius), 1.0)
    s = _safe_divide(h[j + 1], radius)
    rotations.append((c, s))
    h[j], h[j + 1] = radius, torch.zeros_like(radius)
    g.append(-s * g[j])
    g[j] = c * g[j]
    return h


def _back_substitute(triangular: list[list[Tensor]], g: list[Tensor]) -> list[Tensor]:
    """y solving the m x m upper-triangular system T y = g_{0..m-1}, per column."""
    m = len(triangular)
    y: list[Tensor] = [torch.zeros_like(g[0])] * m
    for i in reversed(range(m)):
        acc = g[i]
        for j in range(i + 1, m):
            acc = acc - triangular[j][i] * y[j]
        y[i] = _safe_divide(acc, triangular[i][i])
    return y
