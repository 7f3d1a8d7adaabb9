"""``QGFDState``: the one holder of a QGFD attention's alpha state.

Dimension legend: H heads.

Both the backbone's ``QGFDKernel`` and the transformers integration's ``MultiHeadQGFDLayer``
are ``QGFDState`` subclasses, so the state-dict keys stay ``<module>.step`` (and
``<module>.alpha_logit`` when alpha is learnable) and the alpha of a call is resolved by one
rule (:meth:`QGFDState.current_alpha`, ``QGFDOptions.alpha_mode``):

* ``fixed``     a = alpha, a python float
* ``warmup``    a(step) = alpha * min(1, step / warmup_steps) (prototype 003), a 0-d tensor; step is
                the optimiser step held in the ``step`` buffer (a float when warmup_steps = 0)
* ``learnable`` a_h = sigmoid(alpha_logit_h), one per head [H], starting at alpha

A constant alpha stays a float so that ``qgfd_attention`` keeps its exact SDPA shortcut at 0.
``step`` moves only through :meth:`QGFDState.set_step` / :func:`set_qgfd_step`, never inside
``forward``, so forward stays deterministic and torch.compile / checkpointing safe
(DESIGN.md section 7).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..checks import check_int
from .options import QGFDOptions

# A learnable alpha starts at the logit of alpha, kept off 0 and 1 where the logit is infinite.
LEARNABLE_ALPHA_MARGIN = 1e-4


class QGFDState(nn.Module):
    """QGFD options plus the alpha state: the ``step`` buffer and, when learnable, the per-head
    ``alpha_logit`` [H]. ``num_heads`` is needed only for ``alpha_mode="learnable"``."""

    step: Tensor

    def __init__(self, options: QGFDOptions, num_heads: int | None = None) -> None:
        super().__init__()
        if not isinstance(options, QGFDOptions):
            raise TypeError(f"options must be a QGFDOptions, got {type(options).__name__}")
        self.options = options
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        if options.alpha_mode == "learnable":
            if num_heads is None:
                raise ValueError("alpha_mode='learnable' needs num_heads (one alpha per head)")
            check_int("num_heads", num_heads, 1)
            self.alpha_logit = nn.Parameter(
                torch.full((num_heads,), alpha_logit(options.alpha))
            )  # [H]

    def set_step(self, step: int) -> None:
        """Set the optimiser step that drives the alpha warm-up."""
        check_int("step", step, 0)
        self.step.fill_(step)

    def current_alpha(self) -> float | Tensor:
        """The alpha of a call: a float when constant, else a 0-d (warm-up) or [H] tensor."""
        o = self.options
        if o.alpha_mode == "learnable":
            return torch.sigmoid(self.alpha_logit)  # [H]
        if o.alpha_mode == "warmup" and o.warmup_steps > 0 and o.alpha > 0:
            return warmup_alpha(o.alpha, self.step, o.warmup_steps)
        return o.alpha

    def extra_repr(self) -> str:
        return repr(self.options)


def alpha_logit(alpha: float) -> float:
    """logit(alpha), alpha clamped to [margin, 1 - margin]."""
    a = min(max(alpha, LEARNABLE_ALPHA_MARGIN), 1 - LEARNABLE_ALPHA_MARGIN)
    return math.log(a / (1 - a))


def warmup_alpha(target: float, step: Tensor, warmup_steps: int) -> Tensor:
    """alpha(step) = target * min(1, step / warmup_steps) (prototype 003), as a 0-d tensor op."""
    return target * (step.to(torch.float32) / warmup_steps).clamp(max=1.0)


def set_qgfd_step(model: nn.Module, step: int) -> int:
    """Tell every QGFD state in ``model`` the training step; returns how many.

    Covers the backbone's ``QGFDKernel`` and the per-module states that ``wrap_model_with_qgfd``
    attaches to transformers models (both are ``QGFDState``).
    """
    states = [m for m in model.modules() if isinstance(m, QGFDState)]
    for state in states:
        state.set_step(step)
    return len(states)
