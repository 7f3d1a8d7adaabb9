"""``QGFDOptions``: the one vocabulary of QGFD attention's settings.

Every QGFD user reads its settings from this dataclass: the kernel module (``QGFDKernel``),
the transformers integration (``MultiHeadQGFDLayer`` / ``wrap_model_with_qgfd``), prototype 000's
``QGFDLayer`` and the backbone's ``DiffusionConfig.qgfd``. The alpha of a call (fixed, warmed
up with the optimiser step, or learned per head) is resolved from these options by one holder,
``QGFDState`` (state.py).

Symbols (DESIGN.md section 2): a = ``alpha`` (the weight of the walk; 1 - a teleports back to
p0), T = ``steps`` (PPR iterations of p <- (1 - a) p0 + a p P; None solves the fixed point),
tau = ``temperature`` of the ``cosine`` transition.

"steps" here always means T, the number of QGFD iterations, never DDPM timesteps; the one
exception is ``warmup_steps``, the length of the alpha warm-up in optimiser steps. Prototype
spellings are accepted at the edges by :func:`qgfd_options` and mapped here once
(``PROTOTYPE_ALIASES``): prototype 000's ``diffusion_steps``, prototype 003's ``target_alpha`` /
``temp`` / ``detach_P``, and the flat ``qgfd_*`` keys of DiffusionConfig YAML files written before
this class.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from ..checks import check_choice, check_int, check_range

TransitionKind = Literal["keys", "cosine", "attention", "graph", "linear"]
IterationKind = Literal["ppr", "power"]
PathKind = Literal["auto", "fused", "materialized"]
AlphaMode = Literal["fixed", "warmup", "learnable"]
SolverKind = Literal["auto", "chebyshev", "gmres", "ppr", "dense"]  # steps=None (fixed_point.py)
NonConvergence = Literal["warn", "raise"]


@dataclass(frozen=True)
class FixedPointSettings:
    """How ``steps=None`` solves (I - a P) W = (1 - a) V.

    solver: ``auto`` (Chebyshev where the spectrum is known real, else GMRES), ``chebyshev``,
        ``gmres``, ``ppr`` (the PPR iteration to the tolerance) or ``dense`` (LU; small N).
    tol: relative residual ||(1 - a) V - (I - a P) W||_F / ||(1 - a) V||_F of every sample
        and head, forward and adjoint alike.
    max_applications: products with P (or P^T) one solve may use.
    on_nonconvergence: ``warn`` (once per process, with the residual reached) or ``raise``.
    """

    solver: SolverKind = "auto"
    tol: float = 1e-4
    max_applications: int = 500
    on_nonconvergence: NonConvergence = "warn"

    def __post_init__(self) -> None:
        check_choice("solver", self.solver, SolverKind)
        check_range("tol", self.tol, 0.0)
        check_int("max_applications", self.max_applications, 1)
        check_choice("on_nonconvergence", self.on_nonconvergence, NonConvergence)


# prototype spelling -> QGFDOptions field
PROTOTYPE_ALIASES: dict[str, str] = {
    "diffusion_steps": "steps",  # prototypes 000 and 003: T, not the DDPM timesteps
    "qgfd_steps": "steps",  # prototype 001's DiffusionConfig field
    "target_alpha": "alpha",  # prototype 003 (the value alpha reaches after the warm-up)
    "qgfd_alpha": "alpha",
    "temp": "temperature",  # prototype 003
    "qgfd_temperature": "temperature",
    "detach_P": "detach_transition",  # prototype 003
    "qgfd_topk": "topk",
    "qgfd_alpha_mode": "alpha_mode",
    "qgfd_warmup_steps": "warmup_steps",
}


@dataclass(frozen=True)
class QGFDOptions:
    """QGFD attention settings (validated at construction; errors name the field).

    alpha: a in [0, 1]; with ``alpha_mode="warmup"`` the value reached after ``warmup_steps``.
    steps: T >= 0 iterations, or None for the PPR fixed point (1 - a) p0 (I - a P)^-1.
    transition: how P is built (``keys``, ``cosine``, ``attention``, ``graph``, ``linear``).
    iteration: ``ppr`` (personalised PageRank) or ``power`` (prototype 001).
    topk: keep the k largest entries of each row of a softmax-type P (None = all).
    temperature: tau of the ``cosine`` transition, softmax(K^ K^^T / tau).
    alpha_mode: ``fixed``; ``warmup`` alpha(step) = alpha * min(1, step / warmup_steps)
        (prototype 003); ``learnable`` one alpha per head, starting at ``alpha``.
    warmup_steps: optimiser steps of the warm-up (``alpha_mode="warmup"``).
    early_stop_eps: stop the iteration once max |W_{t+1} - W_t| < eps (None = never).
    detach_transition: build P from detached keys (prototype 003's ``detach_P``).
    path: ``auto``, ``fused`` (T + 1 fused attention calls) or ``materialized`` (P built once).
    solver: how steps=None solves the fixed point: ``auto`` (Chebyshev where P's spectrum is
        known real, GMRES elsewhere; fixed_point.py), ``chebyshev``, ``gmres``, ``ppr`` (the
        PPR iteration to ``tol``) or ``dense`` (P materialised and LU-solved; small N).
    tol: relative residual at which a steps=None solve stops (forward and adjoint).
    max_applications: products with P one steps=None solve may use.
    on_nonconvergence: ``warn`` (once per process) or ``raise`` when a solve ends above tol.
    """

    alpha: float = 0.1
    steps: int | None = 2
    transition: TransitionKind = "keys"
    iteration: IterationKind = "ppr"
    topk: int | None = None
    temperature: float = 1.0
    alpha_mode: AlphaMode = "fixed"
    warmup_steps: int = 0
    early_stop_eps: float | None = None
    detach_transition: bool = False
    path: PathKind = "auto"
    solver: SolverKind = "auto"
    tol: float = 1e-4
    max_applications: int = 500
    on_nonconvergence: NonConvergence = "warn"

    def __post_init__(self) -> None:
        check_range("alpha", self.alpha, 0.0, 1.0)
        if self.steps is not None:
            check_int("steps", self.steps, 0)
        elif self.alpha == 1.0:
            raise ValueError(
                "alpha must be in [0, 1) for the fixed point (steps=None): I - a P is singular "
                "at a = 1; got alpha=1.0"
            )
        check_choice("transition", self.transition, TransitionKind)
        check_choice("iteration", self.iteration, IterationKind)
        check_choice("alpha_mode", self.alpha_mode, AlphaMode)
        check_choice("path", self.path, PathKind)
        check_range("temperature", self.temperature, 1e-6)
        self.fixed_point()  # validates solver, tol, max_applications, on_nonconvergence
        check_int("warmup_steps", self.warmup_steps, 0)
        if self.early_stop_eps is not None:
            check_range("early_stop_eps", self.early_stop_eps, 0.0)
        if not isinstance(self.detach_transition, bool):
            raise ValueError(
                f"detach_transition must be True or False, got {self.detach_transition!r}"
            )
        if self.topk is not None:
            check_int("topk", self.topk, 1)
            if self.transition in ("linear", "graph"):
                raise ValueError(
                    "topk needs a softmax transition ('keys', 'cosine', 'attention'), "
                    f"got transition={self.transition!r}"
                )

    def fixed_point(self) -> FixedPointSettings:
        """How steps=None solves the fixed point (the four solver fields)."""
        return FixedPointSettings(
            self.solver, self.tol, self.max_applications, self.on_nonconvergence
        )

    def kernel_kwargs(self) -> dict[str, Any]:
        """The keyword options of ``qgfd_attention`` that these settings fix (all but alpha,
        which a module resolves per call from ``alpha_mode``)."""
        return dict(
            steps=self.steps,
            transition=self.transition,
            iteration=self.iteration,
            topk=self.topk,
            temperature=self.temperature,
            early_stop_eps=self.early_stop_eps,
            detach_transition=self.detach_transition,
            path=self.path,
            solver=self.solver,
            tol=self.tol,
            max_applications=self.max_applications,
            on_nonconvergence=self.on_nonconvergence,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain field -> value dict (saved with a config; ``from_dict`` reads it back)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "qgfd") -> QGFDOptions:
        """From a plain mapping (a YAML/JSON section) in any accepted spelling; ``where`` names
        the section in errors (e.g. ``"model.qgfd"``)."""
        return _build(None, data, where)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


def canonical_qgfd_keys(options: Mapping[str, Any], where: str = "qgfd") -> dict[str, Any]:
    """Prototype spellings -> ``QGFDOptions`` field names; a field given twice (in two spellings) or
    an unknown key is an error that names it."""
    spelled = _spellings(options, where)
    return {name: options[key] for name, key in spelled.items()}


def qgfd_options(base: QGFDOptions | None = None, /, **options: Any) -> QGFDOptions:
    """``QGFDOptions`` from keywords in any accepted spelling, on top of ``base``.

    ``qgfd_options(diffusion_steps=4, target_alpha=0.02, temp=0.5)`` ==
    ``QGFDOptions(steps=4, alpha=0.02, temperature=0.5)``.
    """
    return _build(base, options, "qgfd")


def _build(base: QGFDOptions | None, options: Mapping[str, Any], where: str) -> QGFDOptions:
    """``base`` with ``options`` (any spelling) replaced; an invalid value's error also names
    the prototype spelling it was given in (e.g. ``target_alpha`` for ``alpha``)."""
    spelled = _spellings(options, where)
    values = {name: options[key] for name, key in spelled.items()}
    try:
        return replace(base or QGFDOptions(), **values)
    except ValueError as error:
        message = str(error)
        notes = [
            f"{name} given as {key!r}"
            for name, key in spelled.items()
            if key != name and re.search(rf"\b{name}\b", message)
        ]
        if not notes:
            raise
        raise ValueError(f"{where}: {message} ({'; '.join(notes)})") from None


def _spellings(options: Mapping[str, Any], where: str) -> dict[str, str]:
    """field name -> the key it was given as."""
    spelled: dict[str, str] = {}
    for key in options:
        name = PROTOTYPE_ALIASES.get(key, key)
        if name in spelled:
            raise ValueError(f"{where}: {name!r} is given twice, as {spelled[name]!r} and {key!r}")
        spelled[name] = key
    unknown = sorted(key for name, key in spelled.items() if name not in QGFDOptions.field_names())
    if unknown:
        raise ValueError(
            f"{where}: unknown QGFD option(s) {unknown}; allowed: {list(QGFDOptions.field_names())}"
            f" (prototype spellings: {sorted(PROTOTYPE_ALIASES)})"
        )
    return spelled
