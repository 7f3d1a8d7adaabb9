"""Gaussian Markov random fields on graphs: the covariance and the draws of the graph-signal data.

Dimension legend: B samples (graphs), N nodes.

The graph-signal data (``graph_signals``) draws x ~ N(0, S) on each sample's graph with

    Q = L_G + eps I        (precision: combinatorial Laplacian D - A, plus eps for a proper field)
    Sigma = Q^-1,  S = diag(Sigma)^-1/2 Sigma diag(Sigma)^-1/2     (unit variance per node)

The exact Bayes denoiser of such data, and the whitening that scores samples of it, are in
``qgfd_diffusion.evaluation.gmrf``.

Precision policy: float64 throughout.
"""

from __future__ import annotations

import torch
from torch import Tensor


def gmrf_covariance(adjacency: Tensor, eps: float) -> Tensor:
    """Unit-variance GMRF covariance S [.., N, N] of adjacency [.., N, N] (dense, >= 0)."""
    if eps <= 0:
        raise ValueError(f"eps must be > 0 (Q = L + eps I must be positive definite), got {eps}")
    A = (adjacency.to_dense() if adjacency.is_sparse else adjacency).double()
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    precision = torch.diag_embed(A.sum(-1)) - A + eps * eye  # Q = D - A + eps I
    Sigma = torch.cholesky_inverse(torch.linalg.cholesky(precision))
    scale = Sigma.diagonal(dim1=-2, dim2=-1).rsqrt()  # diag(Sigma)^-1/2 [.., N]
    S = scale[..., :, None] * Sigma * scale[..., None, :]
    return (S + S.transpose(-1, -2)) / 2  # exactly symmetric


def sample_gmrf(S: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One draw x ~ N(0, S) per covariance: S [B, N, N] -> x [B, N] (x = C z, S = C C^T)."""
    C = torch.linalg.cholesky(S.double())
    z = torch.randn(S.shape[:-1], generator=generator, dtype=torch.float64)  # [B, N]
    return (C @ z[..., None])[..., 0]
