"""Training targets, x0 conversion, min-SNR weights and the masked loss, against diffusers."""

import pytest
import torch
from diffusers import DDPMScheduler

from qgfd_diffusion.compat import DDPMBetaSchedule, q_sample
from qgfd_diffusion.schedules import (
    NoiseScheduleConfig,
    diffusion_loss,
    min_snr_weights,
    predict_x0,
    snr,
    training_target,
)

PREDICTIONS = ["epsilon", "v_prediction", "sample"]
BETAS = ["linear", "scaled_linear", "squaredcos_cap_v2"]


def batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(4, 6, 3, generator=g), torch.randn(4, 6, 3, generator=g)


@pytest.mark.parametrize("beta_schedule", BETAS)
@pytest.mark.parametrize("prediction_type", PREDICTIONS)
def test_every_target_converts_back_to_x0(prediction_type, beta_schedule):
    schedule = NoiseScheduleConfig(prediction_type=prediction_type, beta_schedule=beta_schedule)
    scheduler = schedule.training_scheduler()
    x0, noise = batch()
    t = torch.tensor([0, 10, 500, 999])
    x_t = scheduler.add_noise(x0, noise, t)
    target = training_target(scheduler, x0, noise, t)
    assert torch.allclose(predict_x0(scheduler, target, x_t, t), x0, atol=2e-3)
    # diffusers' own formula: DDPMScheduler.step's pred_original_sample, one sample at a time
    for i in range(len(t)):
        scheduler.set_timesteps(1000)
        step = scheduler.step(target[i : i + 1], int(t[i]), x_t[i : i + 1])
        ours = predict_x0(scheduler, target[i : i + 1], x_t[i : i + 1], t[i : i + 1])
        assert torch.allclose(ours, step.pred_original_sample, atol=1e-5)


def test_v_target_matches_diffusers_velocity():
    scheduler = NoiseScheduleConfig(prediction_type="v_prediction").training_scheduler()
    x0, noise = batch()
    t = torch.tensor([3, 100, 700, 999])
    assert torch.allclose(
        training_target(scheduler, x0, noise, t), scheduler.get_velocity(x0, noise, t), atol=1e-6
    )


@pytest.mark.parametrize("prediction_type", PREDICTIONS)
def test_min_snr_weights_equal_the_formula(prediction_type):
    scheduler = DDPMScheduler(prediction_type=prediction_type)
    t = torch.tensor([0, 50, 200, 999])
    gamma = 5.0
    a_bar = scheduler.alphas_cumprod[t]
    ratio = a_bar / (1 - a_bar)
    assert torch.allclose(snr(scheduler, t), ratio)
    expected = {
        "epsilon": torch.minimum(ratio, torch.tensor(gamma)) / ratio,
        "v_prediction": torch.minimum(ratio, torch.tensor(gamma)) / (ratio + 1),
        "sample": torch.minimum(ratio, torch.tensor(gamma)),
    }[prediction_type]
    assert torch.allclose(min_snr_weights(scheduler, t, gamma), expected)
    with pytest.raises(ValueError, match="min_snr_gamma must be > 0"):
        min_snr_weights(scheduler, t, 0.0)


def test_masked_loss_averages_real_tokens_and_applies_weights():
    scheduler = DDPMScheduler()
    output, target = batch()
    t = torch.tensor([5, 50, 500, 900])
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[0, 4:] = mask[2, 1:] = False
    error = (output - target).pow(2).mean(-1)  # [B, L]
    per_sample = torch.stack([error[b][mask[b]].mean() for b in range(4)])
    assert torch.allclose(
        diffusion_loss(output, target, t, scheduler, mask=mask), per_sample.mean()
    )
    weights = min_snr_weights(scheduler, t, 5.0)
    assert torch.allclose(
        diffusion_loss(output, target, t, scheduler, 5.0, mask), (per_sample * weights).mean()
    )
    padded_changed = output.clone()
    padded_changed[~mask] = 1e3
    assert torch.equal(
        diffusion_loss(padded_changed, target, t, scheduler, mask=mask),
        diffusion_loss(output, target, t, scheduler, mask=mask),
    )
    assert torch.allclose(diffusion_loss(output, target, t, scheduler), error.mean())


@pytest.mark.parametrize("beta_schedule", BETAS)
def test_seed_schedule_and_q_sample_match_diffusers(beta_schedule):
    schedule = DDPMBetaSchedule(1000, beta_schedule)
    reference = DDPMScheduler(num_train_timesteps=1000, beta_schedule=beta_schedule)
    assert schedule.alphas_cumprod.dtype == torch.float32
    assert torch.allclose(schedule.alphas_cumprod, reference.alphas_cumprod, rtol=1e-5, atol=1e-7)
    assert schedule.to("cpu") is schedule
    x0, noise = batch()
    t = torch.tensor([1, 250, 600, 999])
    x_t, eps = q_sample(x0, t, schedule, noise=noise)
    assert eps is noise
    assert torch.allclose(x_t, reference.add_noise(x0, noise, t), atol=1e-5)


def test_q_sample_draws_noise_from_the_generator():
    schedule = DDPMBetaSchedule(100)
    x0, _ = batch()
    t = torch.full((4,), 50)
    first = q_sample(x0, t, schedule, generator=torch.Generator().manual_seed(1))
    again = q_sample(x0, t, schedule, generator=torch.Generator().manual_seed(1))
    other = q_sample(x0, t, schedule, generator=torch.Generator().manual_seed(2))
    assert torch.equal(first[0], again[0]) and not torch.equal(first[0], other[0])


def test_schedule_rejects_bad_choices():
    with pytest.raises(ValueError, match="beta_schedule must be one of"):
        DDPMBetaSchedule(10, "cosine")
    with pytest.raises(ValueError, match="num_train_timesteps must be an int >= 1"):
        DDPMBetaSchedule(0)
