"""Frechet distance between two sets of feature vectors (the FID formula).

Dimension legend: N, M samples of the two sets, F feature dimension.

Both sets are summarised by a Gaussian (mean mu [F], covariance S [F, F]) and compared with the
Frechet (2-Wasserstein) distance between Gaussians (Dowson & Landau 1982; Heusel et al. 2017,
"GANs trained by a two time-scale update rule", eq. 6):

    d^2 = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))

Precision policy: everything in float64. Tr((S_a S_b)^(1/2)) is computed without a general
(non-symmetric) matrix square root: with R = S_a^(1/2) (symmetric, from an eigen-decomposition),
S_a S_b = R (R S_b R) R^-1 is similar to the symmetric positive semi-definite R S_b R, so the
trace is the sum of the square roots of that matrix's eigenvalues. Eigenvalues that rounding
leaves slightly negative are clipped to 0, so no imaginary parts ever appear.

The finite-sample estimate is biased upwards (two samples of one distribution are not at 0);
`real_vs_real_floor` measures that floor on real data, to report next to a model's distance.
"""

from __future__ import annotations

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


def _as_feature_matrix(features: ArrayLike, name: str) -> np.ndarray:
    """[N, F] array / tensor -> float64 numpy [N, F], checked (>= 2 rows, finite)."""
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().numpy()
    matrix = np.asarray(features, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be a 2-D [N, F] array, got shape {matrix.shape}")
    if matrix.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 samples for a covariance, got {matrix.shape[0]}")
    if not np.isfinite(matrix).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return matrix


def gaussian_statistics(features: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """[N, F] features -> (mu [F], S [F, F]): mean and unbiased covariance, float64.

    Cache these for a fixed real set and pass them to `frechet_distance_from_statistics`.
    """
    matrix = _as_feature_matrix(features, "features")
    return matrix.mean(axis=0), np.cov(matrix, rowvar=False).reshape(matrix.shape[1], -1)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD [F, F] matrix (negative rounding noise -> 0)."""
    eigvals, eigvecs = np.linalg.eigh((matrix + matrix.T) / 2)
    return (eigvecs * np.sqrt(np.clip(eigvals, 0.0, None))) @ eigvecs.T


def trace_sqrt_product(sigma_a: np.ndarray, sigma_b: np.ndarray) -> float:
    """Tr((S_a S_b)^(1/2)) via the eigenvalues of the symmetric S_a^(1/2) S_b S_a^(1/2)."""
    root_a = _psd_sqrt(sigma_a)
    middle = root_a @ sigma_b @ root_a  # [F, F], symmetric PSD up to rounding
    eigvals = np.linalg.eigvalsh((middle + middle.T) / 2)
    return float(np.sqrt(np.clip(eigvals, 0.0, None)).sum())


def frechet_distance_from_statistics(
    mu_a: np.ndarray, sigma_a: np.ndarray, mu_b: np.ndarray, sigma_b: np.ndarray
) -> float:
    """d^2 = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) for means [F], covs [F, F]."""
    mu_a, mu_b = np.asarray(mu_a, np.float64), np.asarray(mu_b, np.float64)
    sigma_a, sigma_b = np.asarray(sigma_a, np.float64), np.asarray(sigma_b, np.float64)
    dim = mu_a.shape[0]
    for name, value, shape in (
        ("mu_b", mu_b, (dim,)),
        ("sigma_a", sigma_a, (dim, dim)),
        ("sigma_b", sigma_b, (dim, dim)),
    ):
        if value.shape != shape:
            raise ValueError(f"{name} has shape {value.shape}; expected {shape} to match mu_a")
    mean_term = float(np.sum((mu_a - mu_b) ** 2))
    cov_term = float(np.trace(sigma_a) + np.trace(sigma_b)) - 2.0 * trace_sqrt_product(
        sigma_a, sigma_b
    )
    return max(mean_term + cov_term, 0.0)  # exact value is >= 0; rounding may leave -1e-12


def frechet_distance(features_a: ArrayLike, features_b: ArrayLike) -> float:
    """Frechet distance between feature sets [N, F] and [M, F] (N and M may differ)."""
    matrix_a = _as_feature_matrix(features_a, "features_a")
    matrix_b = _as_feature_matrix(features_b, "features_b")
    if matrix_a.shape[1] != matrix_b.shape[1]:
        raise ValueError(
            f"feature dimensions differ: features_a has F={matrix_a.shape[1]}, "
            f"features_b has F={matrix_b.shape[1]}"
        )
    return frechet_distance_from_statistics(
        *gaussian_statistics(matrix_a), *gaussian_statistics(matrix_b)
    )


def random_halves(features: ArrayLike, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint random halves [N // 2, F] of one set [N, F] (N >= 4), drawn from `seed`."""
    matrix = _as_feature_matrix(features, "features")
    if matrix.shape[0] < 4:
        raise ValueError(f"features needs at least 4 samples to split in halves, got {len(matrix)}")
    order = np.random.default_rng(seed).permutation(matrix.shape[0])
    half = matrix.shape[0] // 2
    return matrix[order[:half]], matrix[order[half : 2 * half]]


def random_group_halves(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint random halves of the indices 0..count-1 (count >= 4), drawn as
    `random_halves` draws rows: split whole clips, then pool their frames, so frames of one clip
    never sit on both sides of a floor."""
    index = np.arange(count, dtype=np.float64)[:, None]  # [count, 1]: the index as one feature
    half_a, half_b = random_halves(index, seed)
    return half_a[:, 0].astype(np.int64), half_b[:, 0].astype(np.int64)


def real_vs_real_floor(features: ArrayLike, seed: int = 0) -> float:
    """Frechet distance between two random halves of one real set [N, F] (N >= 4).

    The estimate's upward bias grows as the sample sizes shrink, so the floor is N/2 vs N/2:
    score a model with about N/2 generated samples against one of the halves (`random_halves`
    with the same seed gives them; `digit_report` does this).
    """
    return frechet_distance(*random_halves(features, seed))
