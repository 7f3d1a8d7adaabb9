"""``DiffusionConfig``: the one typed description of the denoiser and its noise schedule.

Dimension legend: L latent tokens, C latent channels (``latent_dim``), D model width
(``d_model``), H heads (``num_heads``), Dc condition width (``cond_dim``).

The seed-001 fields (d_model, num_heads, num_layers, d_ff, latent_dim, num_timesteps,
qgfd_steps) keep their names. Closed choices are Literals checked at construction, with an error
that names the field and lists the allowed values. Named presets live in one registry,
``DIFFUSION_PRESETS``, which CLIs list for their choices.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from ..attention.functional import IterationKind, TransitionKind
from ..attention.kernels import AlphaMode, AttentionKind, DIFFormerVariant, HeatMode
from ..checks import check_choice, check_int, check_range

PredictionType = Literal["epsilon", "v_prediction", "sample"]
BetaSchedule = Literal["linear", "scaled_linear", "squaredcos_cap_v2"]


@dataclass(frozen=True)
class DiffusionConfig:
    """Backbone width/depth, attention kind and options, conditioning and noise schedule.

    cond_dim: width Dc of the condition tokens; None builds no cross-attention.
    cond_dropout_prob: probability of replacing the condition by the learned null condition in
        training (classifier-free guidance, Ho & Salimans 2022).
    prediction_type: what the network predicts: epsilon, v (Salimans & Ho 2022) or x0.
    """

    # Seed-001 fields.
    d_model: int = 512
    num_heads: int = 8
    num_layers: int = 4
    d_ff: int = 2048
    latent_dim: int = 512
    num_timesteps: int = 1000
    qgfd_steps: int = 2
    # Self-attention kind and its options.
    attention: AttentionKind = "qgfd"
    qgfd_alpha: float = 0.1
    transition: TransitionKind = "keys"
    iteration: IterationKind = "ppr"
    qgfd_topk: int | None = None
    qgfd_temperature: float = 1.0
    qgfd_alpha_mode: AlphaMode = "fixed"
    qgfd_warmup_steps: int = 0
    heat_t: float = 0.28
    heat_mode: HeatMode = "fixed"
    difformer_variant: DIFFormerVariant = "s"
    dropout: float = 0.0
    # Conditioning.
    cond_dim: int | None = None
    cond_dropout_prob: float = 0.1
    num_modalities: int = 1
    # Noise schedule (diffusers' DDPMScheduler arguments).
    prediction_type: PredictionType = "epsilon"
    beta_schedule: BetaSchedule = "linear"
    beta_start: float = 1e-4
    beta_end: float = 0.02
    # Memory.
    gradient_checkpointing: bool = False

    def __post_init__(self):
        self._check_sizes()
        check_choice("attention", self.attention, AttentionKind)
        check_choice("transition", self.transition, TransitionKind)
        check_choice("iteration", self.iteration, IterationKind)
        check_choice("qgfd_alpha_mode", self.qgfd_alpha_mode, AlphaMode)
        check_choice("heat_mode", self.heat_mode, HeatMode)
        check_choice("difformer_variant", self.difformer_variant, DIFFormerVariant)
        check_choice("prediction_type", self.prediction_type, PredictionType)
        check_choice("beta_schedule", self.beta_schedule, BetaSchedule)
        check_range("qgfd_alpha", self.qgfd_alpha, 0.0, 1.0)
        check_range("qgfd_temperature", self.qgfd_temperature, 1e-6)
        check_range("heat_t", self.heat_t, 1e-6)
        check_range("dropout", self.dropout, 0.0, 1.0)
        check_range("cond_dropout_prob", self.cond_dropout_prob, 0.0, 1.0)
        check_range("beta_start", self.beta_start, 0.0, 1.0)
        check_range("beta_end", self.beta_end, self.beta_start, 1.0)
        if self.transition == "graph":
            raise ValueError(
                "transition='graph' needs an adjacency that the backbone's self-attention does not "
                "have; choose one of ('keys', 'cosine', 'attention', 'linear')"
            )
        if self.qgfd_topk is not None:
            check_int("qgfd_topk", self.qgfd_topk, 1)
            if self.transition == "linear":
                raise ValueError(
                    "qgfd_topk needs a softmax transition ('keys', 'cosine', "
                    "'attention'), got transition='linear'"
                )
        if not isinstance(self.gradient_checkpointing, bool):
            raise ValueError(
                f"gradient_checkpointing must be True or False, got {self.gradient_checkpointing!r}"
            )

    def _check_sizes(self) -> None:
        for name in (
            "d_model",
            "num_heads",
            "num_layers",
            "d_ff",
            "latent_dim",
            "num_timesteps",
            "num_modalities",
        ):
            check_int(name, getattr(self, name), 1)
        check_int("qgfd_steps", self.qgfd_steps, 0)
        check_int("qgfd_warmup_steps", self.qgfd_warmup_steps, 0)
        if self.cond_dim is not None:
            check_int("cond_dim", self.cond_dim, 1)
        if self.d_model % self.num_heads != 0:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})"
            )

    def attention_options(self) -> dict[str, Any]:
        """Keyword options for ``make_attention(self.attention, ...)`` (self-attention)."""
        if self.attention == "qgfd":
            return dict(
                alpha=self.qgfd_alpha,
                steps=self.qgfd_steps,
                transition=self.transition,
                iteration=self.iteration,
                topk=self.qgfd_topk,
                temperature=self.qgfd_temperature,
                alpha_mode=self.qgfd_alpha_mode,
                warmup_steps=self.qgfd_warmup_steps,
            )
        if self.attention == "heat":
            return dict(t=self.heat_t, mode=self.heat_mode, depth=self.num_layers)
        if self.attention == "difformer":
            return dict(variant=self.difformer_variant)
        return {}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DiffusionConfig:
        """Build from a plain dict; unknown keys are rejected by name."""
        unknown = sorted(set(data) - set(cls.field_names()))
        if unknown:
            raise ValueError(
                f"unknown DiffusionConfig field(s) {unknown}; allowed: {cls.field_names()}"
            )
        return cls(**data)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def preset(cls, name: str, **overrides) -> DiffusionConfig:
        """A named preset from ``DIFFUSION_PRESETS`` with some fields replaced."""
        if name not in DIFFUSION_PRESETS:
            raise ValueError(f"preset must be one of {tuple(DIFFUSION_PRESETS)}, got {name!r}")
        unknown = sorted(set(overrides) - set(cls.field_names()))
        if unknown:
            raise ValueError(f"unknown DiffusionConfig field(s) {unknown} in preset overrides")
        return replace(DIFFUSION_PRESETS[name], **overrides)


# The one registry of named sizes (DiT's ``DiT_models``); CLIs list its keys.
DIFFUSION_PRESETS: dict[str, DiffusionConfig] = {
    "tiny": DiffusionConfig(d_model=64, num_heads=4, num_layers=2, d_ff=256, latent_dim=16),
    "small": DiffusionConfig(d_model=256, num_heads=4, num_layers=6, d_ff=1024, latent_dim=64),
    "base": DiffusionConfig(d_model=512, num_heads=8, num_layers=12, d_ff=2048, latent_dim=512),
}
