"""Self-conditioning (Chen et al. 2022): the backbone input, the training objective's two passes,
and the sampler feeding the previous x0 estimate, against hand-written references."""

import pytest
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

from qgfd_diffusion.latents import LatentBatch, LatentLayout
from qgfd_diffusion.models import QGFDDiffusionBackbone
from qgfd_diffusion.sample import make_scheduler, sample_latents
from qgfd_diffusion.schedules import DiffusionObjective, NoiseScheduleConfig, predict_x0

B, L, C = 4, 6, 3
SCHEDULE = NoiseScheduleConfig(num_train_timesteps=100, prediction_type="v_prediction")


def backbone(self_conditioning=True, cond_dim=None):
    model = QGFDDiffusionBackbone(
        d_model=32, num_heads=4, num_layers=1, d_ff=64, latent_dim=C, cond_dim=cond_dim,
        self_conditioning=self_conditioning,
    )  # fmt: skip
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # off the adaLN-Zero init, which predicts exactly zero
        for p in model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=generator))
    return model.eval()


def test_backbone_reads_the_estimate_next_to_x_t():
    model, x = backbone(), torch.randn(B, L, C)
    t = torch.tensor([5, 20, 50, 90])
    assert model.x_embedder.in_features == 2 * C
    assert torch.equal(model(x, t), model(x, t, self_cond=torch.zeros_like(x)))
    assert not torch.allclose(model(x, t), model(x, t, self_cond=torch.randn_like(x)))
    with pytest.raises(ValueError, match="self_cond must have x_t's shape"):
        model(x, t, self_cond=torch.zeros(B, L, C + 1))
    with pytest.raises(ValueError, match="self_conditioning=False"):
        backbone(self_conditioning=False)(x, t, self_cond=torch.zeros_like(x))


def test_objective_trains_half_the_samples_on_their_own_estimate():
    model = backbone()
    objective = DiffusionObjective(SCHEDULE, self_conditioning=True)
    batch = LatentBatch(latents=torch.randn(B, L, C), layout=LatentLayout("sequence", (L,)))
    out = objective(model, batch, generator=torch.Generator().manual_seed(3))
    # reference: t, eps, then the self-conditioning coin of each sample, from one generator
    g = torch.Generator().manual_seed(3)
    t = torch.randint(0, 100, (B,), generator=g)
    eps = torch.randn(B, L, C, generator=g)
    chosen = torch.rand(B, generator=g) < 0.5
    scheduler = SCHEDULE.training_scheduler()
    x_t = scheduler.add_noise(batch.latents, eps, t)
    with torch.no_grad():
        estimate = predict_x0(scheduler, model(x_t, t), x_t, t)
    x0_hat = torch.where(chosen[:, None, None], estimate, torch.zeros_like(estimate))
    prediction = model(x_t, t, self_cond=x0_hat)
    target = scheduler.get_velocity(batch.latents, eps, t)
    assert torch.equal(out.draws.self_cond, chosen) and 0 < chosen.sum() < B
    assert torch.allclose(out.loss, ((prediction - target) ** 2).mean(), atol=1e-6)


def test_estimate_gets_no_gradient():
    """The trained pass reads sg(x0_hat): the gradient equals that of the same loss with the
    estimate fed in as a constant, not that of a loss back-propagated through the first pass."""
    model = backbone().train()
    objective = DiffusionObjective(SCHEDULE, self_conditioning=True)
    batch = LatentBatch(latents=torch.randn(B, L, C), layout=LatentLayout("sequence", (L,)))
    draws = objective.draw(batch, generator=torch.Generator().manual_seed(0))
    draws.self_cond = torch.ones(B, dtype=torch.bool)  # every sample self-conditioned
    objective.loss(model, batch, draws).loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    # reference: the first pass run by hand, its estimate detached, then the plain loss
    model.zero_grad()
    scheduler = SCHEDULE.training_scheduler()
    x_t = scheduler.add_noise(batch.latents, draws.noise, draws.t)
    x0_hat = predict_x0(scheduler, model(x_t, draws.t), x_t, draws.t).detach()
    target = scheduler.get_velocity(batch.latents, draws.noise, draws.t)
    ((model(x_t, draws.t, self_cond=x0_hat) - target) ** 2).mean().backward()
    for grad, p in zip(grads, model.parameters(), strict=True):
        assert torch.allclose(grad, p.grad, rtol=1e-5, atol=1e-7)


def hand_loop(model, scheduler, x_T, steps, use_step_estimate=True):
    scheduler.set_timesteps(steps)
    x, x0_hat = x_T.clone(), None
    with torch.no_grad():
        for t in scheduler.timesteps:
            x_in = scheduler.scale_model_input(x, t)
            prediction = model(x_in, t, self_cond=x0_hat)
            step = scheduler.step(prediction, t, x)
            if use_step_estimate:
                x0_hat = step.pred_original_sample
            else:
                x0_hat = predict_x0(scheduler, prediction, x_in, t)
            x = step.prev_sample
    return x


@pytest.mark.parametrize("name, reports_x0", [("ddim", True), ("dpm++", False)])
def test_sampler_feeds_the_previous_estimate(name, reports_x0):
    model, x_T = backbone(), torch.randn(B, L, C, generator=torch.Generator().manual_seed(1))
    scheduler = make_scheduler(name, SCHEDULE)
    assert isinstance(scheduler, DDIMScheduler if reports_x0 else DPMSolverMultistepScheduler)
    sampled = sample_latents(model, scheduler, latents=x_T, num_inference_steps=5, progress=False)
    reference = hand_loop(model, make_scheduler(name, SCHEDULE), x_T, 5, reports_x0)
    assert torch.allclose(sampled, reference, atol=1e-6)
    scheduler = make_scheduler(name, SCHEDULE)
    scheduler.set_timesteps(5)
    x = x_T.clone()
    with torch.no_grad():  # the same loop with zeros for the estimate: the feed matters
        for t in scheduler.timesteps:
            x = scheduler.step(model(scheduler.scale_model_input(x, t), t), t, x).prev_sample
    assert not torch.allclose(x, reference, atol=1e-3)


def guided_hand_loop(model, scheduler, x_T, steps, cond, scale, feed_estimate=True):
    """DDIM with classifier-free guidance written out: both halves read the previous step's
    x0 estimate (or zeros throughout when ``feed_estimate`` is False)."""
    scheduler.set_timesteps(steps)
    x, x0_hat = x_T.clone(), torch.zeros_like(x_T)
    with torch.no_grad():
        for t in scheduler.timesteps:
            x_in = scheduler.scale_model_input(x, t)
            uncond = model(x_in, t, cond, force_drop_cond=True, self_cond=x0_hat)
            cond_pred = model(x_in, t, cond, force_drop_cond=False, self_cond=x0_hat)
            step = scheduler.step(uncond + scale * (cond_pred - uncond), t, x)
            if feed_estimate:
                x0_hat = step.pred_original_sample
            x = step.prev_sample
    return x


def test_sampler_with_guidance_feeds_the_estimate_to_both_halves():
    model = backbone(cond_dim=4)
    cond = torch.randn(B, 2, 4)
    x_T = torch.randn(B, L, C, generator=torch.Generator().manual_seed(2))
    sampled = sample_latents(
        model, make_scheduler("ddim", SCHEDULE), latents=x_T, num_inference_steps=4,
        cond_tokens=cond, guidance_scale=3.0, progress=False,
    )  # fmt: skip
    reference = guided_hand_loop(model, make_scheduler("ddim", SCHEDULE), x_T, 4, cond, 3.0)
    assert torch.allclose(sampled, reference, atol=1e-5)
    zeros = guided_hand_loop(model, make_scheduler("ddim", SCHEDULE), x_T, 4, cond, 3.0, False)
    assert not torch.allclose(sampled, zeros, atol=1e-3)  # the estimate changes the samples
