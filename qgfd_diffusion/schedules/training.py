"""Diffusion maths on diffusers' schedulers: a_bar, SNR, targets, x0 conversion, loss weights.

Dimension legend: B batch, L latent tokens, C latent channels, T training timesteps.

Symbols (Ho et al. 2020, DDPM eq. 4; Salimans & Ho 2022 for v):
    a_bar_t   alphas_cumprod[t]                       (diffusers ``scheduler.alphas_cumprod``)
    x_t     = sqrt(a_bar_t) x0 + sqrt(1 - a_bar_t) eps
    v       = sqrt(a_bar_t) eps - sqrt(1 - a_bar_t) x0
    SNR(t)  = a_bar_t / (1 - a_bar_t)
Min-SNR-gamma weighting (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR Weighting
Strategy", eq. 11 and its epsilon / v forms): the x0-space weight min(SNR, gamma) becomes
    epsilon: min(SNR, gamma) / SNR     v: min(SNR, gamma) / (SNR + 1)     sample: min(SNR, gamma)

Precision: the schedule maths runs in float32 at least, whatever the model dtype.
"""

from __future__ import annotations

import torch
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from torch import Tensor


def _prediction_type(scheduler: SchedulerMixin) -> str:
    kind = scheduler.config.prediction_type
    if kind not in ("epsilon", "v_prediction", "sample"):
        raise ValueError(
            f"prediction_type must be one of ('epsilon', 'v_prediction', 'sample'), got {kind!r}"
        )
    return kind


def alpha_bar(scheduler: SchedulerMixin, t: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """a_bar_t [B] for integer timesteps t [B] (or 0-d), on t's device, float32 at least."""
    t = torch.as_tensor(t)
    dtype = torch.promote_types(dtype, torch.float32)
    a_bar = scheduler.alphas_cumprod.to(device=t.device, dtype=dtype)  # [T]
    return a_bar[t.long().reshape(-1)]  # [B]


def _alpha_bar_like(scheduler: SchedulerMixin, t: Tensor, like: Tensor) -> Tensor:
    """a_bar_t shaped [B, 1, ..., 1] to broadcast against ``like`` [B, ...]."""
    a_bar = alpha_bar(scheduler, torch.as_tensor(t, device=like.device), like.dtype)
    return a_bar.reshape(-1, *([1] * (like.dim() - 1)))


def snr(scheduler: SchedulerMixin, t: Tensor) -> Tensor:
    """SNR(t) = a_bar_t / (1 - a_bar_t), [B] float32."""
    a_bar = alpha_bar(scheduler, t)
    return a_bar / (1 - a_bar)


def training_target(scheduler: SchedulerMixin, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """What the network should output for x_t = add_noise(x0, noise, t): eps, v or x0."""
    kind = _prediction_type(scheduler)
    if kind == "epsilon":
        return noise
    if kind == "sample":
        return x0
    a_bar = _alpha_bar_like(scheduler, t, x0)
    v = a_bar.sqrt() * noise - (1 - a_bar).sqrt() * x0  # Salimans & Ho 2022
    return v.to(x0.dtype)


def predict_x0(scheduler: SchedulerMixin, model_output: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
    """x0 implied by the network output at x_t (diffusers' ``pred_original_sample``)."""
    kind = _prediction_type(scheduler)
    if kind == "sample":
        return model_output
    a_bar = _alpha_bar_like(scheduler, t, x_t)
    if kind == "epsilon":  # DDPM eq. 15
        x0 = (x_t - (1 - a_bar).sqrt() * model_output) / a_bar.sqrt()
    else:  # v-prediction
        x0 = a_bar.sqrt() * x_t - (1 - a_bar).sqrt() * model_output
    return x0.to(x_t.dtype)


def prediction_from_x0(scheduler: SchedulerMixin, x0: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
    """The network output that implies ``x0`` at x_t (inverse of ``predict_x0``): with
    eps = (x_t - sqrt(a_bar) x0) / sqrt(1 - a_bar), the target ``training_target`` gives."""
    a_bar = _alpha_bar_like(scheduler, t, x_t)
    noise = (x_t - a_bar.sqrt() * x0) / (1 - a_bar).sqrt()
    return training_target(scheduler, x0, noise.to(x_t.dtype), t)


def min_snr_weights(scheduler: SchedulerMixin, t: Tensor, gamma: float) -> Tensor:
    """Min-SNR-gamma loss weights [B] for the scheduler's prediction type (Hang et al. 2023)."""
    if gamma <= 0:
        raise ValueError(f"min_snr_gamma must be > 0, got {gamma}")
    ratio = snr(scheduler, t)  # [B]
    clipped = ratio.clamp(max=gamma)  # min(SNR, gamma)
    kind = _prediction_type(scheduler)
    if kind == "epsilon":
        return clipped / ratio
    if kind == "v_prediction":
        return clipped / (ratio + 1)
    return clipped


def per_sample_error(model_output: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean squared error [B, L, C] -> [B]: the mean over channels and real tokens of each
    sample. mask: [B, L] bool, True = real token."""
    error = (model_output.float() - target.float()).pow(2).mean(-1)  # [B, L]
    if mask is None:
        return error.mean(-1)  # [B]
    real = mask.to(error.dtype)
    return (error * real).sum(-1) / real.sum(-1).clamp(min=1.0)


def weighted_mean(
    per_sample: Tensor, t: Tensor, scheduler: SchedulerMixin, min_snr_gamma: float | None = None
) -> Tensor:
    """[B] errors -> scalar: their batch mean, weighted by min-SNR-gamma when gamma is set."""
    if min_snr_gamma is not None:
        per_sample = per_sample * min_snr_weights(scheduler, t, min_snr_gamma).to(per_sample.device)
    return per_sample.mean()


def diffusion_loss(
    model_output: Tensor,
    target: Tensor,
    t: Tensor,
    scheduler: SchedulerMixin,
    min_snr_gamma: float | None = None,
    mask: Tensor | None = None,
) -> Tensor:
    """Mean squared error [B, L, C] -> scalar: per-sample mean over real tokens, then weighted
    batch mean (weights 1, or min-SNR-gamma). mask: [B, L] bool, True = real token."""
    return weighted_mean(per_sample_error(model_output, target, mask), t, scheduler, min_snr_gamma)
