"""The GMRF covariance and draws of the bundled graph signals against independent numpy maths."""

import numpy as np
import pytest
import torch

from qgfd_diffusion.data.bundled.gmrf import gmrf_covariance, sample_gmrf

nx = pytest.importorskip("networkx")
N, DRAWS = 12, 40_000


def _adjacency():
    G = nx.connected_watts_strogatz_graph(N, 4, 0.2, seed=3)
    return torch.as_tensor(nx.to_numpy_array(G))


def test_covariance_is_the_rescaled_inverse_precision():
    A = _adjacency()
    S = gmrf_covariance(A, 0.1)
    Q = np.diag(A.sum(1).numpy()) - A.numpy() + 0.1 * np.eye(N)  # independent numpy inverse
    Sigma = np.linalg.inv(Q)
    d = np.sqrt(np.diag(Sigma))
    np.testing.assert_allclose(S.numpy(), Sigma / np.outer(d, d), atol=1e-10)
    np.testing.assert_allclose(np.diag(S.numpy()), 1.0, atol=1e-12)


def test_draws_have_the_covariance():
    S = gmrf_covariance(_adjacency(), 0.1)
    x = sample_gmrf(S.expand(DRAWS, N, N), torch.Generator().manual_seed(0))  # [M, N]
    np.testing.assert_allclose(np.cov(x.numpy().T), S.numpy(), atol=0.03)


def test_eps_must_make_the_precision_positive_definite():
    with pytest.raises(ValueError, match="eps"):
        gmrf_covariance(_adjacency(), 0.0)
