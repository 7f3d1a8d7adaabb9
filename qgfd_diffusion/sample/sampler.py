"""Sampling latents with any diffusers scheduler, with classifier-free guidance.

Dimension legend: B batch, L latent tokens, C latent channels, Lc condition tokens,
Dc condition width.

One loop serves every scheduler (DDIM by default, Song et al. 2021; its eq. 12 with eta is
``DDIMScheduler.step``): scale the initial noise by ``init_noise_sigma``, and at each timestep
t feed ``scale_model_input(x_t, t)`` to the backbone and hand its prediction to
``scheduler.step``. ``eta`` and ``generator`` go only to schedulers whose ``step`` accepts them.

Self-conditioning (Chen et al. 2022): a backbone built with ``self_conditioning`` reads the
previous step's x0 estimate (the scheduler's ``pred_original_sample``, or x0 from the guided
prediction where a scheduler reports none), zeros at the first step.

Clamping (Diffusion-LM's clamping trick, Li et al. 2022, for discrete data): over the last
``clamp_steps`` steps the guided prediction's x0 estimate is replaced by ``clamp(x0)`` (for
text: the latents of its rounded tokens) and the prediction by the one that implies it, so the
scheduler steps towards real tokens. Dieleman et al. 2022 (CDCD) note that it lowers diversity.

Classifier-free guidance (Ho & Salimans 2022, eq. 6 with g = 1 + w):
    pred = pred(x_t, null) + g * (pred(x_t, c) - pred(x_t, null)),
computed with one batched forward of [unconditional; conditional].
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from typing import Any

import torch
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..latents import LatentLayout
from ..schedules.training import predict_x0, prediction_from_x0


def _double(value: Any) -> Any:
    """[B, ...] -> [2B, ...] (two copies); numbers, 0-d tensors and None pass through."""
    if isinstance(value, Tensor) and value.dim() > 0:
        return torch.cat([value, value])
    return value


def classifier_free_guidance(
    backbone: nn.Module,
    x_t: Tensor,
    t: Tensor | float,
    guidance_scale: float,
    cond_tokens: Tensor,
    cond_mask: Tensor | None = None,
    **forward_kwargs,
) -> Tensor:
    """Guided prediction from one batched forward: rows [0, B) unconditional (null condition),
    rows [B, 2B) conditional. ``forward_kwargs``: layout, latent_mask, modality, graph."""
    B = x_t.shape[0]
    shared_graph = forward_kwargs.get("graph") is not None and forward_kwargs["graph"].dim() == 2
    batched = {
        k: v if k == "graph" and shared_graph else _double(v) for k, v in forward_kwargs.items()
    }  # a graph [L, L] is shared by every row
    drop = torch.arange(2 * B, device=x_t.device) < B  # [2B] True = unconditional
    prediction = backbone(
        _double(x_t),
        _double(t),
        _double(cond_tokens),
        _double(cond_mask),
        force_drop_cond=drop,
        **batched,
    )  # [2B, L, C]
    uncond, cond = prediction.chunk(2)
    return uncond + guidance_scale * (cond - uncond)


def guided_prediction(
    backbone: nn.Module,
    x_t: Tensor,
    t: Tensor | float,
    *,
    guidance_scale: float = 1.0,
    cond_tokens: Tensor | None = None,
    cond_mask: Tensor | None = None,
    **forward_kwargs,
) -> Tensor:
    """The backbone's prediction, guided when there is a condition and ``guidance_scale != 1``.

    A given condition is never dropped at random here (even in training mode).
    """
    if cond_tokens is None or guidance_scale == 1.0:
        drop = None if cond_tokens is None else False
        return backbone(x_t, t, cond_tokens, cond_mask, force_drop_cond=drop, **forward_kwargs)
    return classifier_free_guidance(
        backbone, x_t, t, guidance_scale, cond_tokens, cond_mask, **forward_kwargs
    )


def step_kwargs(
    scheduler: SchedulerMixin, eta: float, generator: torch.Generator | None
) -> dict[str, Any]:
    """``eta`` and ``generator`` for ``scheduler.step``, where its signature accepts them."""
    accepted = inspect.signature(scheduler.step).parameters
    kwargs: dict[str, Any] = {}
    if "eta" in accepted:
        kwargs["eta"] = eta
    elif eta != 0.0:
        warnings.warn(
            f"{type(scheduler).__name__}.step takes no eta; eta={eta} is ignored", stacklevel=3
        )
    if "generator" in accepted:
        kwargs["generator"] = generator
    return kwargs


def initial_latents(
    scheduler: SchedulerMixin,
    shape: tuple[int, ...] | None,
    latents: Tensor | None,
    generator: torch.Generator | None,
    device: torch.device,
    dtype: torch.dtype,
) -> Tensor:
    """x_T: given ``latents`` or N(0, I) noise of ``shape``, times ``init_noise_sigma``."""
    if (shape is None) == (latents is None):
        raise ValueError("give exactly one of shape= (draws noise) or latents= (the start x_T)")
    if latents is None:
        latents = randn_tensor(tuple(shape), generator=generator, device=device, dtype=dtype)
    if latents.dim() != 3:
        raise ValueError(f"latents must be [B, L, C], got shape {tuple(latents.shape)}")
    return latents.to(device=device, dtype=dtype) * scheduler.init_noise_sigma


@torch.no_grad()
def sample_latents(
    backbone: nn.Module,
    scheduler: SchedulerMixin,
    *,
    shape: tuple[int, int, int] | None = None,
    latents: Tensor | None = None,
    generator: torch.Generator | None = None,
    num_inference_steps: int = 50,
    eta: float = 0.0,
    guidance_scale: float = 1.0,
    cond_tokens: Tensor | None = None,
    cond_mask: Tensor | None = None,
    layout: LatentLayout | None = None,
    latent_mask: Tensor | None = None,
    modality: int | Tensor = 0,
    clamp: Callable[[Tensor], Tensor] | None = None,
    clamp_steps: int = 0,
    graph: Tensor | None = None,
    progress: bool = True,
) -> Tensor:
    """Run the reverse process from x_T to x_0 and return latents [B, L, C].

    scheduler: any diffusers scheduler of the model's noise schedule (``make_scheduler``).
    shape / latents: [B, L, C] to draw x_T from ``generator``, or x_T itself.
    eta: DDIM's eta (0 = deterministic, 1 = DDPM-like); passed only where ``step`` takes it.
    guidance_scale: classifier-free guidance scale g (1 = plain conditional prediction).
    clamp / clamp_steps: x0 [B, L, C] -> x0 of the nearest data, applied over the last
    ``clamp_steps`` steps (module docstring).
    graph: the adjacency over the L tokens to generate on ([B, L, L] or [L, L], dense or
        sparse), a condition held fixed through the reverse process.
    Device and dtype come from the backbone's parameters; the backbone samples in the mode it is
    in (loaded backbones are in eval mode; nothing here switches it).
    """
    parameter = next(backbone.parameters())
    device, dtype = parameter.device, parameter.dtype
    if not isinstance(scheduler, SchedulerMixin):
        raise TypeError(
            "scheduler must be a diffusers scheduler of the model's noise schedule, e.g. "
            f"make_scheduler('ddim', model.schedule); got {type(scheduler).__name__}"
        )
    if clamp_steps < 0 or (clamp_steps and clamp is None):
        raise ValueError(f"clamp_steps={clamp_steps} needs clamp= (and must be >= 0)")
    scheduler.set_timesteps(num_inference_steps, device=device)
    first_clamped = max(len(scheduler.timesteps) - clamp_steps, 0)
    x = initial_latents(scheduler, shape, latents, generator, device, dtype)
    kwargs = step_kwargs(scheduler, eta, generator)
    forward_kwargs = dict(layout=layout, latent_mask=latent_mask, modality=modality)
    if graph is not None:
        forward_kwargs["graph"] = graph
    self_conditioning = reads_self_condition(backbone)
    x0_hat = None  # self-conditioning: the previous step's estimate of x0 (zeros at the start)
    for i, t in enumerate(tqdm(scheduler.timesteps, desc="sampling", disable=not progress)):
        x_in = scheduler.scale_model_input(x, t)
        extra = {"self_cond": x0_hat} if self_conditioning else {}
        prediction = guided_prediction(
            backbone,
            x_in,
            t,
            guidance_scale=guidance_scale,
            cond_tokens=cond_tokens,
            cond_mask=cond_mask,
            **forward_kwargs,
            **extra,
        )
        if i >= first_clamped:
            x0_clamped = clamp(predict_x0(scheduler, prediction, x_in, t))
            prediction = prediction_from_x0(scheduler, x0_clamped, x_in, t)
        step = scheduler.step(prediction, t, x, **kwargs)
        if self_conditioning:
            x0_hat = x0_estimate(scheduler, step, prediction, x_in, t)
        x = step.prev_sample
    return x


def reads_self_condition(backbone: nn.Module) -> bool:
    """Whether the backbone (or the module DDP wraps) takes a self-conditioning input."""
    config = getattr(getattr(backbone, "module", backbone), "config", None)
    return bool(getattr(config, "self_conditioning", False))


def x0_estimate(scheduler: SchedulerMixin, step, prediction: Tensor, x_in: Tensor, t) -> Tensor:
    """The step's x0 estimate: the scheduler's own ``pred_original_sample`` where it reports
    one (DDIM, DDPM, Euler, Heun, ...), else x0 from the prediction at the model input x_in."""
    estimate = getattr(step, "pred_original_sample", None)
    return predict_x0(scheduler, prediction, x_in, t) if estimate is None else estimate
