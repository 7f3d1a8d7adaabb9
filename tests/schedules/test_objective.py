"""THE training objective: its draws, x_t, target and loss against a hand-built reference."""

import pytest
import torch
from torch import nn

from qgfd_diffusion.latents import LatentBatch, LatentLayout
from qgfd_diffusion.schedules import DiffusionObjective, NoiseScheduleConfig

B, L, C, LC, DC = 6, 5, 3, 2, 4


class Recorder(nn.Module):
    """A stand-in denoiser: a fixed linear map of x_t; remembers what it was called with."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(C, C, generator=torch.Generator().manual_seed(3)))
        self.calls = []

    def forward(self, x_t, t, cond_tokens, cond_mask, **kwargs):
        self.calls.append(dict(x_t=x_t, t=t, cond_tokens=cond_tokens, **kwargs))
        return x_t @ self.weight


def batch(conditional=False, masked=False):
    g = torch.Generator().manual_seed(1)
    mask = None
    if masked:
        mask = torch.ones(B, L, dtype=torch.bool)
        mask[0, 3:] = mask[4, 1:] = False
    cond = torch.randn(B, LC, DC, generator=g) if conditional else None
    return LatentBatch(
        latents=torch.randn(B, L, C, generator=g),
        layout=LatentLayout("sequence", (L,)),
        mask=mask,
        cond_tokens=cond,
        cond_mask=None if cond is None else torch.ones(B, LC, dtype=torch.bool),
    )


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
@pytest.mark.parametrize("gamma", [None, 5.0])
def test_loss_equals_the_hand_built_formula(prediction_type, gamma):
    schedule = NoiseScheduleConfig(num_train_timesteps=100, prediction_type=prediction_type)
    objective, model, data = DiffusionObjective(schedule, gamma), Recorder(), batch(masked=True)
    out = objective(model, data, generator=torch.Generator().manual_seed(7))
    # the reference: the same generator drawn by hand, t then eps (DDPM eq. 4 / 14)
    g = torch.Generator().manual_seed(7)
    t = torch.randint(0, 100, (B,), generator=g)
    eps = torch.randn(B, L, C, generator=g)
    a_bar = schedule.training_scheduler().alphas_cumprod[t].reshape(B, 1, 1)
    x_t = a_bar.sqrt() * data.latents + (1 - a_bar).sqrt() * eps
    target = {
        "epsilon": eps,
        "v_prediction": a_bar.sqrt() * eps - (1 - a_bar).sqrt() * data.latents,
        "sample": data.latents,
    }[prediction_type]
    error = ((x_t @ model.weight - target) ** 2).mean(-1)  # [B, L]
    per_sample = torch.stack([error[b][data.mask[b]].mean() for b in range(B)])
    weights = torch.ones(B)
    if gamma is not None:
        snr = (a_bar / (1 - a_bar)).reshape(B)
        weights = {
            "epsilon": snr.clamp(max=gamma) / snr,
            "v_prediction": snr.clamp(max=gamma) / (snr + 1),
            "sample": snr.clamp(max=gamma),
        }[prediction_type]
    assert torch.equal(out.draws.t, t) and torch.equal(out.draws.noise, eps)
    assert torch.allclose(model.calls[0]["x_t"], x_t, atol=1e-6)
    assert torch.allclose(out.per_sample, per_sample, atol=1e-6)
    assert torch.allclose(out.loss, (per_sample * weights).mean(), atol=1e-6)


def test_condition_drop_is_drawn_only_with_conditions_and_a_rate():
    objective = DiffusionObjective(NoiseScheduleConfig(num_train_timesteps=10))
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert objective.draw(batch(), generator=g(), cond_dropout=0.5).drop_cond is None
    assert objective.draw(batch(True), generator=g(), cond_dropout=None).drop_cond is None
    never = objective.draw(batch(True), generator=g(), cond_dropout=0.0).drop_cond
    always = objective.draw(batch(True), generator=g(), cond_dropout=1.0).drop_cond
    assert never.dtype == torch.bool and not never.any() and always.all()
    model = Recorder()
    objective(model, batch(True), generator=g(), cond_dropout=1.0)
    assert model.calls[0]["force_drop_cond"].all()


def test_given_t_and_noise_are_used_and_only_the_rest_is_drawn():
    objective, data = DiffusionObjective(NoiseScheduleConfig(num_train_timesteps=10)), batch(True)
    t, noise = torch.full((B,), 3), torch.zeros(B, L, C)
    draws = objective.draw(
        data, generator=torch.Generator().manual_seed(0), t=t, noise=noise, cond_dropout=0.5
    )
    assert torch.equal(draws.t, t) and torch.equal(draws.noise, noise)
    first_draw = torch.rand(B, generator=torch.Generator().manual_seed(0)) < 0.5
    assert torch.equal(draws.drop_cond, first_draw)  # the drop is the generator's first draw


def test_shards_draw_for_the_global_batch():
    """Two processes' halves see exactly the global batch's draws (data parallelism)."""
    objective, data = DiffusionObjective(NoiseScheduleConfig(num_train_timesteps=50)), batch(True)
    whole = objective(
        Recorder(), data, generator=torch.Generator().manual_seed(2), cond_dropout=0.5
    )
    halves = [
        objective(
            Recorder(),
            data,
            generator=torch.Generator().manual_seed(2),
            cond_dropout=0.5,
            shard=index,
        )
        for index in (slice(0, B // 2), slice(B // 2, B))
    ]
    assert torch.equal(torch.cat([h.draws.t for h in halves]), whole.draws.t)
    assert torch.equal(torch.cat([h.draws.drop_cond for h in halves]), whole.draws.drop_cond)
    assert torch.allclose(torch.stack([h.loss for h in halves]).mean(), whole.loss)


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="NoiseScheduleConfig"):
        DiffusionObjective({"num_train_timesteps": 10})
    with pytest.raises(ValueError, match="min_snr_gamma must be > 0"):
        DiffusionObjective(NoiseScheduleConfig(), 0.0)


def test_schedule_saves_as_a_diffusers_scheduler_folder(tmp_path):
    from diffusers import DDIMScheduler

    schedule = NoiseScheduleConfig(200, "squaredcos_cap_v2", prediction_type="v_prediction")
    folder = schedule.save_pretrained(tmp_path / "model")
    saved = DDIMScheduler.from_pretrained(folder)  # the default sampler, as qgfd sample uses
    assert saved.config.num_train_timesteps == 200 and saved.config.clip_sample is False
    public = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}  # noqa: E731
    assert public(saved.config) == public(schedule.sampling_scheduler().config)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_prediction_from_x0_inverts_predict_x0(prediction_type):
    from qgfd_diffusion.schedules.training import predict_x0, prediction_from_x0

    scheduler = NoiseScheduleConfig(prediction_type=prediction_type).training_scheduler()
    g = torch.Generator().manual_seed(0)
    x_t, x0 = torch.randn(B, L, C, generator=g), torch.randn(B, L, C, generator=g)
    t = torch.randint(0, 1000, (B,), generator=g)
    output = prediction_from_x0(scheduler, x0, x_t, t)
    torch.testing.assert_close(predict_x0(scheduler, output, x_t, t), x0, atol=1e-4, rtol=1e-4)


def test_token_loss_adds_alpha_bar_weighted_mean():
    """loss(token_loss) - loss() = mean_B a_bar_t r_b, with r read from the x0 estimate."""
    from qgfd_diffusion.schedules.training import alpha_bar, predict_x0

    objective = DiffusionObjective(NoiseScheduleConfig(prediction_type="v_prediction"))
    model, data = Recorder(), batch(masked=True)
    draws = objective.draw(data, generator=torch.Generator().manual_seed(0))
    seen = {}

    def token_loss(x0_hat, latent_batch):
        seen["x0_hat"] = x0_hat
        return x0_hat.pow(2).mean(dim=(1, 2))  # [B]

    plain = objective.loss(model, data, draws).loss
    with_tokens = objective.loss(model, data, draws, token_loss=token_loss).loss
    x_t = objective.scheduler.add_noise(data.latents, draws.noise, draws.t)
    x0_hat = predict_x0(objective.scheduler, x_t @ model.weight, x_t, draws.t)
    torch.testing.assert_close(seen["x0_hat"], x0_hat)
    expected = (alpha_bar(objective.scheduler, draws.t) * x0_hat.pow(2).mean(dim=(1, 2))).mean()
    torch.testing.assert_close(with_tokens - plain, expected)
    none = objective.loss(model, data, draws, token_loss=lambda x0, b: None).loss
    torch.testing.assert_close(none, plain)
