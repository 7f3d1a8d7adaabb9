"""Adapter test helpers (the tiny encoders fixture ``tiny_dir`` lives in tests/conftest.py)."""

import pytest
import torch

from qgfd_diffusion.adapters.tiny import DEFAULT_TEXTS


@pytest.fixture()
def texts():
    return list(DEFAULT_TEXTS)


def _trainable_names(adapter) -> list[str]:
    return [name for name, p in adapter.named_parameters() if p.requires_grad]


def _assert_frozen_upstream(adapter, batch) -> None:
    """Nothing upstream of the latents can be trained: only decoder heads require grad,
    the frozen modules are in eval mode even after train(), and latents carry no graph."""
    adapter.train()
    assert all("decoder_head" in name for name in _trainable_names(adapter))
    for module in adapter.frozen_modules():
        assert not module.training
        assert not any(p.requires_grad for p in module.parameters())
    latents = adapter.encode(batch).latents
    assert not latents.requires_grad and latents.grad_fn is None


def _assert_unit_stats(latents: torch.Tensor, mask: torch.Tensor | None, tol: float = 1e-3) -> None:
    real = latents if mask is None else latents[mask]
    real = real.reshape(-1, latents.shape[-1]).double()
    assert real.mean(0).abs().max() < tol
    assert (real.std(0, unbiased=False) - 1).abs().max() < tol


@pytest.fixture()
def assert_frozen_upstream():
    return _assert_frozen_upstream


@pytest.fixture()
def assert_unit_stats():
    return _assert_unit_stats
