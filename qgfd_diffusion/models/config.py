"""``DiffusionConfig``: the typed description of a diffusion model: its network and noise schedule.

Dimension legend: L latent tokens, C latent channels (``latent_dim``), D model width
(``d_model``), H heads (``num_heads``), Dc condition width (``cond_dim``).

Two parts with two homes: the network fields (what ``QGFDDiffusionBackbone`` is built from and
saves in its ``config.json``; QGFD's settings nested as ``qgfd``, a ``QGFDOptions``) and the
noise schedule (``schedule``, a ``NoiseScheduleConfig`` from ``qgfd_diffusion.schedules``,
saved as ``scheduler/`` beside the model). The backbone never sees the schedule.

Prototype 001 wrote one flat config: ``DiffusionConfig(d_model=512, ..., num_timesteps=1000,
qgfd_steps=1)``. Those spellings, and the flat ``qgfd_*`` / schedule keys of configs written
before the split, are accepted at the edge (``formats.fold_flat_keys``) and stored in their one
place; ``cfg.num_timesteps`` still reads the schedule's T.

Closed choices are Literals checked at construction, with an error that names the field and
lists the allowed values. Named presets live in one registry, ``DIFFUSION_PRESETS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any, Literal

from ..attention.kernels import AttentionKind, DIFFormerVariant, HeatMode
from ..attention.options import QGFDOptions, canonical_qgfd_keys
from ..checks import check_choice, check_int, check_range
from ..formats import fold_flat_keys
from ..graphs import LayoutGraphKind
from ..schedules.config import NoiseScheduleConfig

# Default of ``cond_dim``: condition tokens as wide as the model (prototype 001's contract).
MODEL_WIDTH = "d_model"


@dataclass(frozen=True, init=False)
class DiffusionConfig:
    """Backbone width/depth, attention kind and options, conditioning, and the noise schedule.

    attention: self-attention kind (``qgfd``, ``sdpa``, ``heat``, ``difformer``); ``qgfd``
        holds QGFD's settings (``QGFDOptions``).
    cond_dim: width Dc of the condition tokens; ``"d_model"`` (default) = the model width, as
        prototype 001 documents; None builds no cross-attention.
    cond_dropout_prob: probability of replacing the condition by the learned null condition in
        training (classifier-free guidance, Ho & Salimans 2022).
    num_modalities: rows of the modality embedding; None = as many as the model's adapters.
    self_conditioning: the denoiser also reads an estimate of x0 (``forward(..., self_cond=)``,
        zeros when absent); training feeds its own no-grad estimate half of the time and
        sampling the previous step's (Chen et al. 2022).
    graph_mask: self-attention sees only 1-hop neighbours (and itself) of the sample's graph
        (``forward(..., graph=)`` or ``layout_graph``): a graph-aware plain attention baseline.
    layout_graph: a graph built from the latent layout when the data gives none (``chain``,
        ``grid4``, ``grid8``, ``video``; ``none``); see ``qgfd_diffusion.graphs``.
    graph_positions: k > 0 adds Laplacian-eigenvector positions of the graph (k vectors, random
        signs in training, GraphGPS-style); 0: none.
    alpha_from_timestep: QGFD's alpha per head is a learned function of the block's
        conditioning vector (timestep embedding + condition): a_h = sigmoid(logit(alpha) +
        w_h . SiLU(c)), w zero-initialised, so training starts at ``qgfd.alpha``.
    schedule: the noise schedule (None in a network-only config, e.g. a backbone's).

    Graph fields default to off, so configs saved before them load unchanged.
    """

    # Prototype 001's network fields.
    d_model: int = 512
    num_heads: int = 8
    num_layers: int = 4
    d_ff: int = 2048
    latent_dim: int = 512
    # Self-attention kind and its options.
    attention: AttentionKind = "qgfd"
    qgfd: QGFDOptions = field(default_factory=QGFDOptions)
    heat_t: float = 0.28
    heat_mode: HeatMode = "fixed"
    difformer_variant: DIFFormerVariant = "s"
    dropout: float = 0.0
    # Conditioning.
    cond_dim: int | Literal["d_model"] | None = MODEL_WIDTH
    cond_dropout_prob: float = 0.1
    num_modalities: int | None = None
    # Self-conditioning (Chen et al. 2022, "Analog Bits"): the previous x0 estimate is an input.
    self_conditioning: bool = False
    # Graphs over the latent tokens (off by default, so configs saved before them load).
    graph_mask: bool = False
    layout_graph: LayoutGraphKind = "none"
    graph_positions: int = 0
    alpha_from_timestep: bool = False
    # Memory.
    gradient_checkpointing: bool = False
    # The noise schedule (not the network's: saved as scheduler/).
    schedule: NoiseScheduleConfig | None = field(default_factory=NoiseScheduleConfig)

    def __init__(self, **values: Any):
        """Keyword fields, nested or as flat prototype-001 keys (``qgfd_steps=...``)."""
        values = fold_flat_keys(values)
        unknown = sorted(set(values) - set(self.field_names()))
        if unknown:
            raise ValueError(
                f"unknown DiffusionConfig field(s) {unknown}; allowed: {self.field_names()}"
            )
        for f in fields(self):
            default = f.default_factory() if f.default is MISSING else f.default
            object.__setattr__(self, f.name, values.get(f.name, default))
        self.__post_init__()

    def __post_init__(self) -> None:
        if isinstance(self.qgfd, Mapping):
            object.__setattr__(self, "qgfd", QGFDOptions(**canonical_qgfd_keys(self.qgfd)))
        if isinstance(self.schedule, Mapping):
            object.__setattr__(self, "schedule", NoiseScheduleConfig.from_mapping(self.schedule))
        if self.cond_dim == MODEL_WIDTH:
            object.__setattr__(self, "cond_dim", self.d_model)
        self._check_sizes()
        check_choice("attention", self.attention, AttentionKind)
        check_choice("heat_mode", self.heat_mode, HeatMode)
        check_choice("difformer_variant", self.difformer_variant, DIFFormerVariant)
        check_range("heat_t", self.heat_t, 1e-6)
        check_range("dropout", self.dropout, 0.0, 1.0)
        check_range("cond_dropout_prob", self.cond_dropout_prob, 0.0, 1.0)
        if not isinstance(self.qgfd, QGFDOptions):
            raise ValueError(f"qgfd must be QGFDOptions or a mapping, got {self.qgfd!r}")
        self._check_graph_options()
        if self.schedule is not None and not isinstance(self.schedule, NoiseScheduleConfig):
            raise ValueError(f"schedule must be a NoiseScheduleConfig, got {self.schedule!r}")
        for flag in ("gradient_checkpointing", "self_conditioning"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"{flag} must be True or False, got {getattr(self, flag)!r}")

    def _check_graph_options(self) -> None:
        for flag in ("graph_mask", "alpha_from_timestep"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"{flag} must be True or False, got {getattr(self, flag)!r}")
        check_choice("layout_graph", self.layout_graph, LayoutGraphKind)
        check_int("graph_positions", self.graph_positions, 0)
        linear = self.attention == "difformer" or (
            self.attention == "qgfd" and self.qgfd.transition == "linear"
        )
        if self.graph_mask and linear:
            raise ValueError(
                "graph_mask needs an attention that takes a per-entry mask (sdpa, heat, or qgfd "
                "with a transition other than 'linear'); linear-time kernels take key padding only"
            )
        if self.alpha_from_timestep and (
            self.attention != "qgfd" or self.qgfd.alpha_mode != "fixed"
        ):
            raise ValueError(
                "alpha_from_timestep needs attention='qgfd' with qgfd.alpha_mode='fixed' (the "
                f"map starts at qgfd.alpha); got attention={self.attention!r}, "
                f"alpha_mode={self.qgfd.alpha_mode!r}"
            )

    @property
    def uses_graph(self) -> bool:
        """Whether the network reads a graph over the latent tokens."""
        graph_qgfd = self.attention == "qgfd" and self.qgfd.transition == "graph"
        return graph_qgfd or self.graph_mask or self.graph_positions > 0

    def _check_sizes(self) -> None:
        for name in ("d_model", "num_heads", "num_layers", "d_ff", "latent_dim"):
            check_int(name, getattr(self, name), 1)
        for name in ("cond_dim", "num_modalities"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), 1)
        if self.d_model % self.num_heads != 0:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})"
            )

    # -- prototype-001 reads -----------------------------------------------------------------

    @property
    def num_timesteps(self) -> int:
        """T of the noise schedule (prototype 001 reads ``cfg.num_timesteps``)."""
        if self.schedule is None:
            raise AttributeError(
                "this config describes a network only (a backbone's); its noise schedule is "
                "saved beside the model in scheduler/"
            )
        return self.schedule.num_train_timesteps

    # -- the two parts ----------------------------------------------------------------------

    def attention_options(self) -> dict[str, Any]:
        """Keyword options for ``make_attention(self.attention, ...)`` (self-attention)."""
        if self.attention == "qgfd":
            return dict(options=self.qgfd)
        if self.attention == "heat":
            return dict(t=self.heat_t, mode=self.heat_mode, depth=self.num_layers)
        if self.attention == "difformer":
            return dict(variant=self.difformer_variant)
        return {}

    def network_dict(self) -> dict[str, Any]:
        """The network fields as plain JSON values (what the backbone saves)."""
        data = self.to_dict()
        del data["schedule"]
        return data

    def network_only(self) -> DiffusionConfig:
        return replace(self, schedule=None)

    def with_schedule(self, schedule: NoiseScheduleConfig) -> DiffusionConfig:
        return replace(self, schedule=schedule)

    def with_modalities(self, count: int) -> DiffusionConfig:
        """``num_modalities`` resolved for a model with ``count`` adapters (None -> count)."""
        if self.num_modalities is not None:
            return self
        return replace(self, num_modalities=max(1, count))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DiffusionConfig:
        """Build from a plain dict (nested or flat spellings); unknown keys are rejected."""
        return cls(**data)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def network_field_names(cls) -> list[str]:
        return [name for name in cls.field_names() if name != "schedule"]

    @classmethod
    def preset(cls, name: str, **overrides) -> DiffusionConfig:
        """A named size from ``DIFFUSION_PRESETS`` with some fields replaced (any spelling)."""
        if name not in DIFFUSION_PRESETS:
            raise ValueError(f"preset must be one of {tuple(DIFFUSION_PRESETS)}, got {name!r}")
        return cls(**{**DIFFUSION_PRESETS[name], **overrides})


# The one registry of named sizes (DiT's ``DiT_models``); CLIs list its keys. Sizes only: the
# other fields keep their defaults (``cond_dim`` follows ``d_model``) unless overridden.
DIFFUSION_PRESETS: dict[str, dict[str, int]] = {
    "tiny": dict(d_model=64, num_heads=4, num_layers=2, d_ff=256, latent_dim=16),
    "small": dict(d_model=256, num_heads=4, num_layers=6, d_ff=1024, latent_dim=64),
    "base": dict(d_model=512, num_heads=8, num_layers=12, d_ff=2048, latent_dim=512),
}
