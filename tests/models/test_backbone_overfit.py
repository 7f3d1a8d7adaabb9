"""A tiny backbone memorises one fixed noisy batch with every attention kind."""

import pytest
import torch

from qgfd_diffusion.latents import LatentBatch, LatentLayout
from qgfd_diffusion.models import QGFDDiffusionBackbone
from qgfd_diffusion.schedules import DiffusionObjective, NoiseScheduleConfig

STEPS, LR = 200, 1e-3


@pytest.mark.parametrize("kind", ["sdpa", "qgfd", "heat", "difformer"])
def test_tiny_backbone_overfits_a_fixed_batch(kind):
    model = QGFDDiffusionBackbone(
        d_model=32, num_heads=4, num_layers=2, d_ff=64, latent_dim=4, attention=kind
    )
    objective = DiffusionObjective(NoiseScheduleConfig())
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(4, 16, 4, generator=g), torch.randn(4, 16, 4, generator=g)
    batch = LatentBatch(latents=x0, layout=LatentLayout("sequence", (16,)))
    t = torch.tensor([50, 300, 600, 900])
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    losses = []
    for _ in range(STEPS):
        loss = objective(model, batch, t=t, noise=noise).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10, (kind, losses[0], losses[-1])
