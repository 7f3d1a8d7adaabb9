"""Prototype 001's ``DDPMBetaSchedule`` and ``q_sample``, on top of diffusers' ``DDPMScheduler``.

Dimension legend: B batch, L latent tokens, C latent channels, T training timesteps.

Symbols (Ho et al. 2020, DDPM): beta_t the noise schedule, alpha_t = 1 - beta_t,
a_bar_t = prod_{s <= t} alpha_s, and the forward process (eq. 4)
    q(x_t | x0) = N(sqrt(a_bar_t) x0, (1 - a_bar_t) I),
    x_t = sqrt(a_bar_t) x0 + sqrt(1 - a_bar_t) eps.

Precision: betas come from diffusers (its beta schedules); the cumulative product and square
roots are computed in float64 and stored as float32 buffers.
"""

from __future__ import annotations

import torch
from diffusers.utils.torch_utils import randn_tensor
from torch import Tensor, nn

from ..schedules.config import BetaSchedule, NoiseScheduleConfig, PredictionType


class DDPMBetaSchedule(nn.Module):
    """The DDPM noise schedule as buffers (prototype 001), backed by a diffusers ``DDPMScheduler``.

    Buffers [T] float32: ``betas``, ``alphas_cumprod``, ``sqrt_alphas_cumprod``,
    ``sqrt_one_minus_alphas_cumprod``. ``.to(device)`` moves them and returns ``self``;
    ``.schedule`` is its ``NoiseScheduleConfig``, ``.scheduler`` the diffusers scheduler.
    """

    def __init__(
        self,
        num_timesteps: int = 1000,
        beta_schedule: BetaSchedule = "linear",
        *,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        prediction_type: PredictionType = "epsilon",
    ):
        super().__init__()
        self.schedule = NoiseScheduleConfig(
            num_train_timesteps=num_timesteps,
            beta_schedule=beta_schedule,
            beta_start=beta_start,
            beta_end=beta_end,
            prediction_type=prediction_type,
        )
        self.scheduler = self.schedule.training_scheduler()
        betas = self.scheduler.betas.to(torch.float64)  # beta_t [T]
        alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)  # a_bar_t [T], float64
        self.register_buffer("betas", betas.float())
        self.register_buffer("alphas_cumprod", alphas_cumprod.float())
        self.register_buffer("sqrt_alphas_cumprod", alphas_cumprod.sqrt().float())
        self.register_buffer("sqrt_one_minus_alphas_cumprod", (1 - alphas_cumprod).sqrt().float())

    @property
    def num_timesteps(self) -> int:
        return self.betas.shape[0]

    @classmethod
    def from_config(cls, schedule: NoiseScheduleConfig) -> DDPMBetaSchedule:
        """The prototype-style buffers of a ``NoiseScheduleConfig``."""
        return cls(
            schedule.num_train_timesteps,
            schedule.beta_schedule,
            beta_start=schedule.beta_start,
            beta_end=schedule.beta_end,
            prediction_type=schedule.prediction_type,
        )

    def extra_repr(self) -> str:
        schedule = self.scheduler.config.beta_schedule
        return f"num_timesteps={self.num_timesteps}, beta_schedule={schedule!r}"


def q_sample(
    x0: Tensor,
    t: Tensor,
    schedule: DDPMBetaSchedule,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Draw x_t ~ q(x_t | x0) (DDPM eq. 4). x0 [B, ...], t [B] long -> (x_t, eps), both like x0."""
    if noise is None:
        noise = randn_tensor(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    t = torch.as_tensor(t, device=schedule.betas.device).long().reshape(-1)  # [B]
    shape = (-1, *([1] * (x0.dim() - 1)))  # [B, 1, ..., 1]
    sqrt_a_bar = schedule.sqrt_alphas_cumprod[t].to(x0.device).reshape(shape)
    sqrt_one_minus = schedule.sqrt_one_minus_alphas_cumprod[t].to(x0.device).reshape(shape)
    x_t = sqrt_a_bar * x0.float() + sqrt_one_minus * noise.float()
    return x_t.to(x0.dtype), noise
