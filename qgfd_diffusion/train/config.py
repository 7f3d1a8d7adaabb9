"""The training run config: YAML -> validated dataclasses (the single source of truth).

A run trains one backbone through a list of phases (e.g. text, then image). Each phase names
its adapter, dataset, steps, batch size and learning rate. The resolved config is saved inside
every checkpoint and the final model.

    seed: 0
    model:                                  # DiffusionConfig: network fields + schedule
      preset: tiny
      attention: qgfd
      qgfd: {alpha: 0.1, steps: 2}          # QGFDOptions (flat qgfd_* keys still accepted)
      schedule: {num_train_timesteps: 1000, prediction_type: v_prediction}
    train: {mixed_precision: "no", ema_decay: 0.999, checkpoint_every: 50}
    phases:
      - name: text
        adapter: text
        adapter_options: {encoder_name_or_path: "tiny:t5", decoder: rounding}
        data: {source: bundled, name: shakespeare, max_items: 2000}
        steps: 300
        batch_size: 16
        lr: 1.0e-3
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from ..configio import ConfigError, apply_overrides, build_dataclass, load_yaml, to_plain
from ..data.config import DataConfig
from ..formats import fold_flat_keys, upgrade_run_config
from ..models.config import DIFFUSION_PRESETS, DiffusionConfig
from ..sample.options import SampleSettings
from .config_checks import check_run_config
from .logs import check_trackers

MixedPrecision = Literal["no", "bf16", "fp16"]
LRSchedule = Literal["constant", "cosine"]


def _positive(field_name: str, value: float) -> None:
    if value <= 0:
        raise ValueError(f"{field_name} must be > 0, got {value!r}")


def _fraction(field_name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{field_name} must be in [0, 1], got {value!r}")


@dataclass
class PhaseConfig:
    """One stage of the run on the shared backbone."""

    name: str
    adapter: str
    data: DataConfig
    steps: int
    batch_size: int
    lr: float
    adapter_options: dict[str, Any] = field(default_factory=dict)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    cond_dropout: float | None = None  # None: the model's cond_dropout_prob
    fit_steps: int = 200  # steps to fit the adapter's decoder head / latent statistics
    replay_phase: str | None = None  # interleave batches of an earlier phase (forgetting study)
    replay_every: int = 0

    def __post_init__(self):
        for name in ("steps", "batch_size", "lr"):
            _positive(name, getattr(self, name))
        if self.warmup_steps < 0 or self.fit_steps < 0 or self.replay_every < 0:
            raise ValueError("warmup_steps, fit_steps and replay_every must be >= 0")
        if self.cond_dropout is not None:
            _fraction("cond_dropout", self.cond_dropout)


@dataclass
class TrainingConfig:
    """Optimisation and bookkeeping shared by all phases.

    log_with: accelerate trackers (``tensorboard``, ``wandb``, ``mlflow``, ...; [] for none);
        metrics.jsonl is written in any case, as the exact record.
    sample_every: every this many steps, a few samples of the current phase go to the
        trackers (0: only at the end of the run, as files).
    gradient_accumulation_steps: K: each process's share of the global ``batch_size`` is
        trained in K micro-batches, one optimiser step per global batch (same result as K = 1
        within float rounding, less memory).
    """

    mixed_precision: MixedPrecision = "no"
    ema_decay: float = 0.999
    grad_clip: float | None = 1.0
    lr_schedule: LRSchedule = "cosine"
    adam_betas: tuple[float, float] = (0.9, 0.999)
    min_snr_gamma: float | None = None
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    max_nonfinite: int = 10
    validation_batches: int = 2
    log_with: list[str] = field(default_factory=lambda: ["tensorboard"])
    sample_every: int = 0
    gradient_accumulation_steps: int = 1

    def __post_init__(self):
        _fraction("ema_decay", self.ema_decay)
        for name in ("checkpoint_every", "keep_checkpoints", "max_nonfinite"):
            _positive(name, getattr(self, name))
        _positive("gradient_accumulation_steps", self.gradient_accumulation_steps)
        if self.sample_every < 0:
            raise ValueError(f"sample_every must be >= 0 (0: never), got {self.sample_every}")
        try:
            check_trackers(self.log_with)
        except ValueError as error:
            raise ValueError(f"log_with {error}") from None  # located at train.log_with
        if self.grad_clip is not None:
            _positive("grad_clip", self.grad_clip)
        if self.validation_batches < 0:
            raise ValueError(f"validation_batches must be >= 0, got {self.validation_batches}")


@dataclass
class RunConfig:
    phases: list[PhaseConfig]
    model: DiffusionConfig = field(default_factory=DiffusionConfig)
    seed: int = 0
    train: TrainingConfig = field(default_factory=TrainingConfig)
    sample: SampleSettings = field(default_factory=SampleSettings)

    def __post_init__(self):
        if not self.phases:
            raise ValueError("phases must list at least one phase")
        names = [phase.name for phase in self.phases]
        if len(set(names)) != len(names):
            raise ValueError(f"phase names must be unique, got {names}")
        self.check_accumulation()
        for index, phase in enumerate(self.phases):
            if phase.replay_phase is not None and phase.replay_phase not in names[:index]:
                raise ConfigError(
                    f"phases[{index}].replay_phase",
                    f"must name an earlier phase (one of: {names[:index]}), "
                    f"got {phase.replay_phase!r}",
                )

    def check_accumulation(self) -> None:
        K = self.train.gradient_accumulation_steps
        for index, phase in enumerate(self.phases):
            if phase.batch_size % K:
                raise ConfigError(
                    f"phases[{index}].batch_size",
                    f"must be divisible by train.gradient_accumulation_steps={K}, "
                    f"got {phase.batch_size}",
                )

    def model_config(self) -> DiffusionConfig:
        """The model config with ``num_modalities`` resolved: one per phase unless given."""
        names = {phase.name for phase in self.phases}
        if self.model.num_modalities is None:
            return replace(self.model, num_modalities=len(names))
        return self.model

    def to_dict(self) -> dict:
        return to_plain(self)


def resolve_model_section(data: dict) -> dict:
    """``model: {preset: NAME, ...}`` -> the preset's sizes overridden by the rest; flat prototype
    keys (``qgfd_alpha``, ``num_timesteps``, ...) folded into ``qgfd`` / ``schedule``."""
    model = dict(data.get("model") or {})
    preset = model.pop("preset", None)
    if preset is not None and preset not in DIFFUSION_PRESETS:
        raise ConfigError(
            "model.preset", f"must be one of {list(DIFFUSION_PRESETS)}, got {preset!r}"
        )
    try:
        model = fold_flat_keys(model)
    except ValueError as error:
        raise ConfigError("model", str(error)) from None
    sizes = DIFFUSION_PRESETS[preset] if preset is not None else {}
    return {**data, "model": {**sizes, **model}}


def run_config_from_dict(data: dict, overrides: list[str] | None = None) -> RunConfig:
    """Dict (+ ``dotted.key=value`` overrides) -> a RunConfig checked in full: the dataclasses'
    own checks, then the registries' (``config_checks``): every error names its dotted path.
    Old keys are upgraded first (``formats.upgrade_run_config``), so configs written before load."""
    data = upgrade_run_config(apply_overrides(data, overrides or []))
    config = build_dataclass(RunConfig, resolve_model_section(data))
    check_run_config(config)
    return config


def load_run_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    return run_config_from_dict(load_yaml(path), overrides)
