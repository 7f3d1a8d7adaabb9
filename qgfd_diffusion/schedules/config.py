"""``NoiseScheduleConfig``: the forward process a model is trained on, apart from the network.

Dimension legend: T training timesteps.

The denoiser never sees betas (STYLE.md 1): the schedule is this config, saved the diffusers
way as a ``scheduler/`` folder beside the model and read back from there. The folder holds the
default sampler (a ``DDIMScheduler``, as ``qgfd sample`` uses) with exactly these fields, so a
diffusers pipeline loaded from the folder samples with it; training reads only the fields here
and builds its ``DDPMScheduler`` from them. (Folders written before ``scheduler/`` existed kept
the same fields in the backbone's ``config.json``; ``qgfd_diffusion.formats`` reads them there.)

Symbols (Ho et al. 2020): beta_t for t in {0, ..., T-1} from ``beta_schedule`` between
``beta_start`` and ``beta_end``; the network predicts ``prediction_type`` (epsilon, v or x0).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

from diffusers import DDIMScheduler, DDPMScheduler

from ..checks import check_choice, check_int, check_range

PredictionType = Literal["epsilon", "v_prediction", "sample"]
BetaSchedule = Literal["linear", "scaled_linear", "squaredcos_cap_v2"]

SCHEDULER_FOLDER = "scheduler"
SCHEDULER_CONFIG = "scheduler_config.json"
# prototype-001 spelling -> field
SCHEDULE_ALIASES = {"num_timesteps": "num_train_timesteps"}


@dataclass(frozen=True)
class NoiseScheduleConfig:
    """A DDPM noise schedule (diffusers' ``DDPMScheduler`` arguments, same names).

    num_train_timesteps: T. beta_schedule / beta_start / beta_end: the betas.
    prediction_type: what the network predicts (epsilon, v (Salimans & Ho 2022) or x0).
    """

    num_train_timesteps: int = 1000
    beta_schedule: BetaSchedule = "linear"
    beta_start: float = 1e-4
    beta_end: float = 0.02
    prediction_type: PredictionType = "epsilon"

    def __post_init__(self) -> None:
        check_int("num_train_timesteps", self.num_train_timesteps, 1)
        check_choice("beta_schedule", self.beta_schedule, BetaSchedule)
        check_choice("prediction_type", self.prediction_type, PredictionType)
        check_range("beta_start", self.beta_start, 0.0, 1.0)
        check_range("beta_end", self.beta_end, self.beta_start, 1.0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> NoiseScheduleConfig:
        """The schedule fields of any mapping (a scheduler's config, an old backbone config.json);
        other keys are ignored, missing ones take their defaults."""
        values = {SCHEDULE_ALIASES.get(key, key): value for key, value in config.items()}
        return cls(**{name: values[name] for name in cls.field_names() if name in values})

    def training_scheduler(self) -> DDPMScheduler:
        """The DDPM scheduler of the schedule; latents are not clipped to [-1, 1]."""
        return DDPMScheduler(**self.to_dict(), clip_sample=False)

    def sampling_scheduler(self) -> DDIMScheduler:
        """The default sampler of the schedule: DDIM, latents not clipped."""
        return DDIMScheduler(**self.to_dict(), clip_sample=False)

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``directory/scheduler/`` (the default sampler's folder); returns it."""
        folder = Path(directory) / SCHEDULER_FOLDER
        self.sampling_scheduler().save_pretrained(folder)
        return folder
