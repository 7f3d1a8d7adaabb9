"""THE training objective: one place that turns clean latents into a diffusion loss.

Dimension legend: B batch, L latent tokens, C latent channels, Lc condition tokens.

Symbols (Ho et al. 2020, DDPM eq. 4 and 14; Salimans & Ho 2022 for v):
    x0      clean latents [B, L, C] (``LatentBatch.latents``), mask [B, L] of real tokens
    t       timestep ~ U{0, ..., T-1};  eps ~ N(0, I);  drop ~ Bernoulli(p_uncond) per sample
    x_t     sqrt(a_bar_t) x0 + sqrt(1 - a_bar_t) eps          (``scheduler.add_noise``)
    target  eps, v or x0 (the schedule's ``prediction_type``)
    loss    mean_B w(t) * mean_{real tokens} || f_theta(x_t, t, c) - target ||^2
            w = 1, or min-SNR-gamma (Hang et al. 2023)

Token loss (Diffusion-LM's rounding term, Li et al. 2022): a caller may add a per-sample loss
r(x0_hat) [B] on the x0 estimate x0_hat = x0(f_theta(x_t, ...)); it is weighed by a_bar_t, so it
speaks at low noise, where x0_hat can name its tokens, and fades where x0_hat is a blur:
    loss += mean_B a_bar_t * r(x0_hat)

Self-conditioning (Chen et al. 2022, "Analog Bits", Alg. 1): for a random half of the samples
(``SELF_COND_RATE``) a first, no-grad pass estimates x0_hat = x0(f_theta(x_t, t, c, 0)); the
trained pass reads it, f_theta(x_t, t, c, sg(x0_hat)); the other samples read zeros.

Like DiT's ``training_losses``, every caller goes through :class:`DiffusionObjective`: the
trainer (training and validation), ``SharedQGFDDiffusionModel.loss``, prototype 001's models and
the benchmarks. Its randomness (t, eps, the condition drop, in that order) comes from one
explicit ``torch.Generator``, drawn for the whole batch; ``shard=`` then keeps one process's
slice, so N data-parallel processes match one process at the same global batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from diffusers.utils.torch_utils import randn_tensor
from torch import Tensor, nn

from ..latents import LatentBatch
from .config import NoiseScheduleConfig
from .training import alpha_bar, per_sample_error, predict_x0, training_target, weighted_mean

SELF_COND_RATE = 0.5  # share of samples trained on their own x0 estimate (Chen et al. 2022)

# x0_hat [B, L, C] and the batch -> a per-sample loss [B], or None (no token loss here)
TokenLoss = Callable[[Tensor, LatentBatch], Tensor | None]


@dataclass
class TrainingDraws:
    """The random draws of one batch: t [B] long, eps [B, L, C], drop [B] bool or None,
    self_cond [B] bool (which samples get a self-conditioning estimate) or None."""

    t: Tensor
    noise: Tensor
    drop_cond: Tensor | None
    self_cond: Tensor | None = None

    def shard(self, index: slice) -> TrainingDraws:
        pick = lambda x: None if x is None else x[index]  # noqa: E731
        return TrainingDraws(
            self.t[index], self.noise[index], pick(self.drop_cond), pick(self.self_cond)
        )


@dataclass
class ObjectiveOutput:
    """loss: the scalar to backpropagate; per_sample [B]: unweighted per-sample errors;
    draws: what was drawn (of this process's shard)."""

    loss: Tensor
    per_sample: Tensor
    draws: TrainingDraws


class DiffusionObjective:
    """The denoising loss of a model on latent batches under one noise schedule.

    schedule: the forward process (``NoiseScheduleConfig``).
    min_snr_gamma: None for the plain loss, or gamma of min-SNR-gamma weighting.
    self_conditioning: train a self-conditioning model (``DiffusionConfig.self_conditioning``).
    """

    def __init__(
        self,
        schedule: NoiseScheduleConfig,
        min_snr_gamma: float | None = None,
        self_conditioning: bool = False,
    ):
        if not isinstance(schedule, NoiseScheduleConfig):
            raise TypeError(
                f"schedule must be a NoiseScheduleConfig, got {type(schedule).__name__}"
            )
        if min_snr_gamma is not None and min_snr_gamma <= 0:
            raise ValueError(f"min_snr_gamma must be > 0 or None, got {min_snr_gamma}")
        self.schedule, self.min_snr_gamma = schedule, min_snr_gamma
        self.self_conditioning = self_conditioning
        self.scheduler = schedule.training_scheduler()

    def draw(
        self,
        batch: LatentBatch,
        *,
        generator: torch.Generator | None = None,
        cond_dropout: float | None = None,
        t: Tensor | None = None,
        noise: Tensor | None = None,
    ) -> TrainingDraws:
        """t, eps, the guidance drop and the self-conditioning choice for ``batch``, in that
        order, each unless given (the last only for a self-conditioning objective).

        cond_dropout: None draws no drop mask (the model decides, e.g. none in eval mode);
        a probability draws one for batches with condition tokens (0 keeps every condition).
        """
        x0 = batch.latents  # [B, L, C]
        B = x0.shape[0]
        gen_device = generator.device if generator is not None else torch.device("cpu")
        if t is None:
            T = self.schedule.num_train_timesteps
            t = torch.randint(0, T, (B,), generator=generator, device=gen_device)
        t = torch.as_tensor(t).to(x0.device)
        if noise is None:
            noise = randn_tensor(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        drop = None
        if cond_dropout is not None and batch.cond_tokens is not None:
            drop = torch.rand(B, generator=generator, device=gen_device) < cond_dropout
            drop = drop.to(x0.device)
        self_cond = None
        if self.self_conditioning:
            self_cond = torch.rand(B, generator=generator, device=gen_device) < SELF_COND_RATE
            self_cond = self_cond.to(x0.device)
        return TrainingDraws(t, noise, drop, self_cond)

    def loss(
        self,
        model: nn.Module,
        batch: LatentBatch,
        draws: TrainingDraws,
        *,
        modality: int = 0,
        token_loss: TokenLoss | None = None,
    ) -> ObjectiveOutput:
        """Build x_t and the target from ``draws``, call ``model`` (plain or DDP-wrapped);
        add ``token_loss`` of the x0 estimate where one is given (module docstring)."""
        x0 = batch.latents  # [B, L, C]
        x_t = self.scheduler.add_noise(x0, draws.noise, draws.t)
        forward = dict(
            layout=batch.layout,
            latent_mask=batch.mask,
            modality=modality,
            force_drop_cond=draws.drop_cond,
        )
        if batch.graph is not None:  # a condition of the sample, like its tokens
            forward["graph"] = batch.graph
        if self.self_conditioning:
            forward["self_cond"] = self._self_condition(model, batch, draws, x_t, forward)
        prediction = model(x_t, draws.t, batch.cond_tokens, batch.cond_mask, **forward)
        target = training_target(self.scheduler, x0, draws.noise, draws.t)
        per_sample = per_sample_error(prediction, target, batch.mask)  # [B]
        loss = weighted_mean(per_sample, draws.t, self.scheduler, self.min_snr_gamma)
        if token_loss is not None:
            loss = loss + self._token_term(token_loss, prediction, x_t, draws.t, batch)
        return ObjectiveOutput(loss, per_sample.detach(), draws)

    def _token_term(self, token_loss, prediction, x_t, t, batch) -> Tensor:
        """mean_B a_bar_t r(x0_hat), or 0 when ``token_loss`` returns None."""
        per_sample = token_loss(predict_x0(self.scheduler, prediction, x_t, t), batch)  # [B]
        if per_sample is None:
            return torch.zeros((), device=x_t.device)
        return (alpha_bar(self.scheduler, t).to(per_sample) * per_sample).mean()

    @torch.no_grad()
    def _self_condition(self, model, batch, draws, x_t, forward) -> Tensor:
        """sg(x0_hat) [B, L, C] for the samples ``draws.self_cond`` picks, zeros elsewhere."""
        x0_hat = torch.zeros_like(x_t)
        if draws.self_cond is None or not draws.self_cond.any():
            return x0_hat
        first = model(x_t, draws.t, batch.cond_tokens, batch.cond_mask, **forward)
        estimate = predict_x0(self.scheduler, first, x_t, draws.t)  # [B, L, C]
        return torch.where(draws.self_cond[:, None, None], estimate, x0_hat)

    def __call__(
        self,
        model: nn.Module,
        batch: LatentBatch,
        *,
        generator: torch.Generator | None = None,
        modality: int = 0,
        cond_dropout: float | None = None,
        t: Tensor | None = None,
        noise: Tensor | None = None,
        shard: slice | None = None,
        token_loss: TokenLoss | None = None,
    ) -> ObjectiveOutput:
        """Draw for the whole batch (see ``draw``), keep ``shard`` of it, return the loss."""
        draws = self.draw(batch, generator=generator, cond_dropout=cond_dropout, t=t, noise=noise)
        if shard is not None:
            batch, draws = batch.select(shard), draws.shard(shard)
        return self.loss(model, batch, draws, modality=modality, token_loss=token_loss)
