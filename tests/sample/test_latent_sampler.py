"""sample_latents with DDIM (against a hand-written loop), other schedulers, and guidance."""

import pytest
import torch
from diffusers import DDIMScheduler

from qgfd_diffusion.latents import LatentLayout
from qgfd_diffusion.models import QGFDDiffusionBackbone
from qgfd_diffusion.sample import (
    SAMPLING_SCHEDULERS,
    classifier_free_guidance,
    guided_prediction,
    make_scheduler,
    sample_latents,
)
from qgfd_diffusion.schedules import NoiseScheduleConfig

SHAPE = (2, 8, 4)
STEPS = 6


SCHEDULE = NoiseScheduleConfig(num_train_timesteps=1000, prediction_type="v_prediction")


def ddim():
    return make_scheduler("ddim", NoiseScheduleConfig())


@pytest.fixture(scope="module")
def backbone() -> QGFDDiffusionBackbone:
    model = QGFDDiffusionBackbone(
        d_model=32, num_heads=4, num_layers=2, d_ff=64, latent_dim=4, cond_dim=6
    )
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # random weights: a fresh adaLN-Zero model would predict zero
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.1)
    return model.eval()


def noise(seed: int = 0) -> torch.Tensor:
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed))


def test_ddim_eta0_equals_a_hand_written_loop(backbone):
    x_T = noise()
    sampled = sample_latents(
        backbone, ddim(), latents=x_T, num_inference_steps=STEPS, progress=False
    )
    scheduler = DDIMScheduler(num_train_timesteps=1000, clip_sample=False)
    scheduler.set_timesteps(STEPS)
    x = x_T.clone()
    with torch.no_grad():
        for t in scheduler.timesteps:
            x = scheduler.step(backbone(x, t), t, x, eta=0.0).prev_sample
    assert torch.allclose(sampled, x, atol=1e-6)


def test_ddim_with_eta_is_reproducible_per_generator(backbone):
    def run(seed):
        return sample_latents(
            backbone,
            ddim(),
            shape=SHAPE,
            eta=1.0,
            num_inference_steps=STEPS,
            generator=torch.Generator().manual_seed(seed),
            progress=False,
        )

    assert torch.equal(run(3), run(3))
    assert not torch.allclose(run(3), run(4))
    same_start = [
        sample_latents(
            backbone,
            ddim(),
            latents=noise(),
            eta=1.0,
            num_inference_steps=STEPS,
            generator=torch.Generator().manual_seed(seed),
            progress=False,
        )
        for seed in (5, 6)
    ]
    assert not torch.allclose(*same_start)  # the posterior noise comes from the generator


@pytest.mark.parametrize("name", ["dpm++", "euler"])
def test_other_schedulers_run_and_stay_finite(backbone, name):
    scheduler = make_scheduler(name, SCHEDULE)
    if name == "euler":
        assert scheduler.init_noise_sigma > 1  # the sampler must scale x_T by it
    out = sample_latents(
        backbone,
        scheduler,
        shape=SHAPE,
        num_inference_steps=STEPS,
        generator=torch.Generator().manual_seed(0),
        progress=False,
        cond_tokens=torch.randn(2, 3, 6),
        guidance_scale=2.0,
    )
    assert out.shape == SHAPE and torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(SAMPLING_SCHEDULERS))
def test_every_registered_scheduler_matches_the_training_schedule(backbone, name):
    scheduler = make_scheduler(name, SCHEDULE)
    assert scheduler.config.num_train_timesteps == SCHEDULE.num_train_timesteps
    assert scheduler.config.prediction_type == SCHEDULE.prediction_type
    out = sample_latents(
        backbone,
        scheduler,
        shape=SHAPE,
        num_inference_steps=3,
        generator=torch.Generator().manual_seed(0),
        progress=False,
    )
    assert torch.isfinite(out).all()


def test_unknown_scheduler_lists_the_names(backbone):
    with pytest.raises(ValueError, match="scheduler must be one of.*'ddim'.*'euler'"):
        make_scheduler("k-lms", SCHEDULE)


def test_guidance_scale_one_equals_the_conditional_prediction(backbone):
    x, t = noise(), torch.tensor(500)
    cond, cond_mask = torch.randn(2, 3, 6), torch.tensor([[True, True, False]] * 2)
    layout, latent_mask = LatentLayout("grid", (2, 4)), torch.ones(2, 8, dtype=torch.bool)
    kwargs = dict(layout=layout, latent_mask=latent_mask, modality=0)
    with torch.no_grad():
        conditional = backbone(x, t, cond, cond_mask, **kwargs)
        unconditional = backbone(x, t, **kwargs)
        batched = classifier_free_guidance(backbone, x, t, 1.0, cond, cond_mask, **kwargs)
        guided = guided_prediction(
            backbone, x, t, guidance_scale=3.0, cond_tokens=cond, cond_mask=cond_mask, **kwargs
        )
    assert torch.allclose(batched, conditional, atol=1e-5)
    assert torch.allclose(guided, unconditional + 3.0 * (conditional - unconditional), atol=1e-5)


def test_start_needs_exactly_one_of_shape_and_latents(backbone):
    with pytest.raises(ValueError, match="exactly one of shape"):
        sample_latents(backbone, ddim(), progress=False)
    with pytest.raises(ValueError, match="exactly one of shape"):
        sample_latents(backbone, ddim(), shape=SHAPE, latents=noise(), progress=False)


def test_the_scheduler_must_come_from_the_noise_schedule(backbone):
    with pytest.raises(TypeError, match="make_scheduler"):
        sample_latents(backbone, None, shape=SHAPE, progress=False)
    with pytest.raises(TypeError, match="NoiseScheduleConfig"):
        make_scheduler("ddim", backbone)  # the backbone never holds the schedule


def test_identity_clamp_changes_nothing(backbone):
    x_T = noise()
    plain = sample_latents(backbone, ddim(), latents=x_T, num_inference_steps=STEPS, progress=False)
    clamped = sample_latents(
        backbone,
        ddim(),
        latents=x_T,
        num_inference_steps=STEPS,
        clamp=lambda x0: x0,
        clamp_steps=STEPS,
        progress=False,
    )
    torch.testing.assert_close(clamped, plain, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_clamped_steps_move_towards_the_clamped_x0(backbone, prediction_type):
    """A clamp to a fixed target x0*: DDIM's eta=0 step from x_t with x0 = x0* lands on
    sqrt(a_prev) x0* + sqrt(1 - a_prev) eps(x_t, x0*); the last step (a_prev ~ 1) gives ~x0*."""
    target = torch.full(SHAPE, 0.7)
    scheduler = make_scheduler("ddim", NoiseScheduleConfig(prediction_type=prediction_type))
    out = sample_latents(
        backbone,
        scheduler,
        latents=noise(),
        num_inference_steps=STEPS,
        clamp=lambda x0: target,
        clamp_steps=2,
        progress=False,
    )
    assert (out - target).abs().max() < 0.05


def test_clamp_steps_need_a_clamp(backbone):
    with pytest.raises(ValueError, match="clamp"):
        sample_latents(backbone, ddim(), shape=SHAPE, num_inference_steps=2, clamp_steps=1)
