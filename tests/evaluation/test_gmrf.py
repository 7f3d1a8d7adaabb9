"""The GMRF's Bayes denoiser and whitening against Monte Carlo and the DDPM forward process."""

import pytest
import torch

from qgfd_diffusion.data.bundled.gmrf import gmrf_covariance, sample_gmrf
from qgfd_diffusion.evaluation.gmrf import (
    bayes_denoise,
    bayes_mse,
    sigma2_of_alpha_bar,
    whiten,
    whitened_report,
)
from qgfd_diffusion.schedules import NoiseScheduleConfig

nx = pytest.importorskip("networkx")
N, DRAWS = 12, 40_000


def _adjacency():
    G = nx.connected_watts_strogatz_graph(N, 4, 0.2, seed=3)
    return torch.as_tensor(nx.to_numpy_array(G))


def _draws(S, count, seed):
    return sample_gmrf(S.expand(count, N, N), torch.Generator().manual_seed(seed))  # [M, N]


@pytest.mark.parametrize("sigma2", [1.0, 10.0, 100.0])
def test_bayes_mse_matches_monte_carlo(sigma2):
    S = gmrf_covariance(_adjacency(), 0.1)
    x0 = _draws(S, DRAWS, 0)
    y = (
        x0
        + sigma2**0.5 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(1)).double()
    )
    mc = ((bayes_denoise(S.expand(DRAWS, N, N), y, sigma2) - x0) ** 2).mean()
    exact = bayes_mse(S, sigma2)
    assert abs(float(mc) / float(exact) - 1) < 0.03  # MC standard error here: ~0.5 %
    # No other linear denoiser does better: shrinking y alone (ignoring the graph) is worse.
    shrink = ((y / (1 + sigma2) - x0) ** 2).mean()
    assert float(shrink) > float(exact)


def test_posterior_mean_matches_a_monte_carlo_regression():
    """E[x0 | y] is linear in y: least squares of x0 on y over draws recovers S (S + s I)^-1."""
    S, sigma2 = gmrf_covariance(_adjacency(), 0.1), 10.0
    x0 = _draws(S, DRAWS, 2)
    y = (
        x0
        + sigma2**0.5 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(3)).double()
    )
    K_mc = torch.linalg.lstsq(y, x0).solution.T  # x0 ~ K y
    K = bayes_denoise(S.expand(N, N, N), torch.eye(N, dtype=torch.float64), sigma2).T
    torch.testing.assert_close(K_mc, K, atol=0.03, rtol=0)


def test_sigma2_maps_the_variance_preserving_step():
    """x_t = sqrt(a) x0 + sqrt(1 - a) eps from diffusers' add_noise is x0 + sigma eps scaled."""
    scheduler = NoiseScheduleConfig().training_scheduler()
    t = torch.tensor([500])
    a_bar = scheduler.alphas_cumprod[t].double()
    x0, eps = torch.randn(1, 8, 1), torch.randn(1, 8, 1)
    x_t = scheduler.add_noise(x0, eps, t).double()
    y = x_t / a_bar.sqrt()
    torch.testing.assert_close(y, x0 + sigma2_of_alpha_bar(a_bar).sqrt() * eps, atol=1e-5, rtol=0)


def test_whitened_real_samples_are_standard_normal():
    S = gmrf_covariance(_adjacency(), 0.1)
    z = whiten(_draws(S, DRAWS, 4), S.expand(DRAWS, N, N))
    torch.testing.assert_close(torch.cov(z.T), torch.eye(N, dtype=torch.float64), atol=0.03, rtol=0)
    report = whitened_report(z)
    assert abs(report["mean_sq_norm"] - 1) < 0.02 and report["frechet_to_normal"] < 0.01
    scaled = whitened_report(2 * z)  # a wrong scale is caught by both figures
    assert scaled["mean_sq_norm"] > 3.5 and scaled["frechet_to_normal"] > 5


def test_bad_noise_levels_are_rejected():
    S = gmrf_covariance(_adjacency(), 0.1)
    with pytest.raises(ValueError, match="sigma"):
        bayes_mse(S, 0.0)
