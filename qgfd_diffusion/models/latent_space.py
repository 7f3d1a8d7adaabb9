"""Fixed, exactly invertible maps from an adapter's channels into the backbone's shared width.

Dimension legend: B batch, L tokens, Ca adapter channels, C shared channels (C >= Ca).

Every modality lives in one latent space of width C = ``DiffusionConfig.latent_dim``. An
adapter whose latents are narrower (e.g. 16-channel 4x4 MNIST patches next to 64-channel text
states) is embedded by a seeded column-orthonormal Q [C, Ca]:
    x0 = sqrt(C / Ca) z Q^T        z = sqrt(Ca / C) x0 Q        (Q^T Q = I)
The factor keeps unit-variance latents at unit variance per channel on average. Nothing here is
trained: a map into the latent space optimised by the diffusion loss collapses (DESIGN.md 7).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from ..adapters.base import seeded_orthogonal


class FixedLatentEmbedding(nn.Module):
    """z [.., Ca] <-> x [.., C]; the identity when Ca == C."""

    def __init__(self, in_dim: int, out_dim: int, seed: int = 0):
        super().__init__()
        if in_dim > out_dim:
            raise ValueError(
                f"the adapter's latent width {in_dim} exceeds the backbone's {out_dim}: raise "
                "the model's latent_dim, or give the adapter a latent_dim with a fixed projection"
            )
        self.in_dim, self.out_dim = in_dim, out_dim
        Q = seeded_orthogonal(out_dim, in_dim, seed) if in_dim < out_dim else None
        self.register_buffer("Q", Q, persistent=False)  # [C, Ca] or None; rebuilt from the seed
        self.scale = math.sqrt(out_dim / in_dim)

    def forward(self, z: Tensor) -> Tensor:
        self._check(z, self.in_dim, "adapter latents")
        if self.Q is None:
            return z
        return self.scale * z @ self.Q.to(z.dtype).T  # [.., C]

    def inverse(self, x: Tensor) -> Tensor:
        self._check(x, self.out_dim, "shared latents")
        if self.Q is None:
            return x
        return (x @ self.Q.to(x.dtype)) / self.scale  # [.., Ca]

    @staticmethod
    def _check(t: Tensor, width: int, what: str) -> None:
        if t.shape[-1] != width:
            raise ValueError(f"{what} must have {width} channels, got shape {tuple(t.shape)}")

    def extra_repr(self) -> str:
        return f"{self.in_dim} -> {self.out_dim}"
