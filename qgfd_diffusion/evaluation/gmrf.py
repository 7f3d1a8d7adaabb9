"""Gaussian Markov random fields on graphs: the exact Bayes denoiser of their signals, whitening.

Dimension legend: B samples (graphs), N nodes, M samples scored together.

The bundled graph-signal data draws x ~ N(0, S) on each sample's graph, S the unit-variance GMRF
covariance of its graph (``qgfd_diffusion.data.bundled.gmrf``: Q = L_G + eps I, Sigma = Q^-1,
S = diag(Sigma)^-1/2 Sigma diag(Sigma)^-1/2). For such data the minimum-MSE denoiser is known in
closed form. Under x_t = x0 + sigma eps, eps ~ N(0, I), the posterior of x0 is Gaussian with
mean and error

    E[x0 | x_t] = S (S + sigma^2 I)^-1 x_t
    Bayes MSE   = tr(S - S (S + sigma^2 I)^-1 S) / N
                = mean_i lambda_i sigma^2 / (lambda_i + sigma^2)

(lambda_i the eigenvalues of S). A variance-preserving DDPM step x_t = sqrt(a_bar) x0 +
sqrt(1 - a_bar) eps is the same observation scaled by sqrt(a_bar): x_t / sqrt(a_bar) = x0 +
sigma eps with sigma^2 = (1 - a_bar) / a_bar (``sigma2_of_alpha_bar``).

Whitening: with S = C C^T (C lower-triangular Cholesky), z = C^-1 x is exactly N(0, I) for real
samples, so generated samples are scored by the Frechet distance of their z to N(0, I) and by
mean ||z||^2 / N (1 for real data).

Precision policy: float64 throughout.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .frechet import frechet_distance_from_statistics, gaussian_statistics


def sigma2_of_alpha_bar(alpha_bar: float | Tensor) -> float | Tensor:
    """sigma^2 = (1 - a_bar) / a_bar: the noise level of x_t / sqrt(a_bar) = x0 + sigma eps."""
    return (1 - alpha_bar) / alpha_bar


def bayes_denoise(S: Tensor, y: Tensor, sigma2: float) -> Tensor:
    """E[x0 | y] = S (S + sigma^2 I)^-1 y for y = x0 + sigma eps; S [B, N, N], y [B, N]."""
    check_noise_level(sigma2)
    S = S.double()
    eye = torch.eye(S.shape[-1], dtype=S.dtype, device=S.device)
    # S (S + s I)^-1 y = S w with (S + s I) w = y (S symmetric)
    w = torch.linalg.solve(S + sigma2 * eye, y.double()[..., None])
    return (S @ w)[..., 0]


def bayes_mse(S: Tensor, sigma2: float) -> Tensor:
    """The exact per-node Bayes MSE tr(S - S (S + sigma^2 I)^-1 S) / N per graph: [B]."""
    check_noise_level(sigma2)
    lam = torch.linalg.eigvalsh(S.double()).clamp_min(0.0)  # [B, N]
    return (lam * sigma2 / (lam + sigma2)).mean(-1)


def whiten(x: Tensor, S: Tensor) -> Tensor:
    """z = C^-1 x with S = C C^T: x [B, N], S [B, N, N] -> z [B, N], N(0, I) for real x."""
    C = torch.linalg.cholesky(S.double())
    return torch.linalg.solve_triangular(C, x.double()[..., None], upper=False)[..., 0]


def whitened_report(z: Tensor) -> dict[str, float]:
    """Frechet distance of whitened samples z [M, N] to N(0, I_N), and mean ||z||^2 / N."""
    mu, cov = gaussian_statistics(z)
    N = z.shape[-1]
    fd = frechet_distance_from_statistics(mu, cov, torch.zeros(N).numpy(), torch.eye(N).numpy())
    return {"frechet_to_normal": fd, "mean_sq_norm": float((z.double() ** 2).mean())}


def check_noise_level(sigma2: float) -> None:
    """Reject a noise level sigma^2 that is not a positive finite number."""
    if not (sigma2 > 0 and math.isfinite(sigma2)):
        raise ValueError(f"sigma^2 must be a positive finite number, got {sigma2}")
