"""The ``video`` scorer: class-conditional Moving MNIST clips scored by
``qgfd_diffusion.evaluation.video_report`` against the phase's held-out clips."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ...checks import check_int
from ...configio import ConfigError, build_dataclass
from ...data.bundled import read_moving_mnist
from ...data.config import DataConfig
from ...data.splits import load_phase_data
from ...sample.writers import write_decoded
from ..digits import DigitTrainingConfig
from ..video import video_report
from .common import ScoringJob, digit_arrays, digit_classifier, generate

HEADLINE = (
    ("frame_class_accuracy", True),
    ("frame_class_agreement", True),
    ("motion_residual", False),
    ("centre_speed", True),
    ("frame_fd", False),
    ("frame_fd_floor", False),
    ("frame_fd_over_floor", False),
    ("real_frame_class_accuracy", True),
    ("real_frame_class_agreement", True),
    ("real_motion_residual", False),
    ("real_centre_speed", True),
)
CAPTION = "rows: one clip per requested class 0-9, columns: its frames"


@dataclass
class VideoSettings:
    """phase: the class-conditional video phase on bundled ``moving_mnist``; samples_per_class:
    generated clips per class (the floor's halves hold half the held-out clips: match them);
    sample_batch: clips per sampler call; classifier: DigitTrainingConfig fields of the frame
    classifier; digits: the DataConfig of the digits it is trained on (its training split)."""

    phase: str
    samples_per_class: int = 10
    sample_batch: int = 50
    classifier: dict[str, Any] = field(default_factory=dict)
    digits: dict[str, Any] = field(
        default_factory=lambda: {"source": "bundled", "name": "mnist", "validation_fraction": 0.2}
    )

    def __post_init__(self):
        for name in ("samples_per_class", "sample_batch"):
            check_int(name, getattr(self, name), 1)
        self.training_config()  # clear errors now rather than after training
        self.digit_data()

    def training_config(self) -> DigitTrainingConfig:
        return build_dataclass(DigitTrainingConfig, self.classifier, "eval.classifier")

    def digit_data(self) -> DataConfig:
        return build_dataclass(DataConfig, self.digits, "eval.digits")


def digit_size(data: DataConfig) -> int:
    """The digit side d of the phase's Moving MNIST clips (its option, else the reader's)."""
    if data.source != "bundled" or data.name != "moving_mnist":
        raise ConfigError("eval.phase", "the video scorer reads bundled moving_mnist clips")
    default = inspect.signature(read_moving_mnist).parameters["digit_size"].default
    return int(data.options.get("digit_size", default))


def heldout_clips(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    rows = dataset[:]  # video float32 [M, T, 1, S, S] in [0, 1], label [M]
    return torch.as_tensor(np.asarray(rows["video"])), torch.as_tensor(np.asarray(rows["label"]))


def score_video(job: ScoringJob) -> dict[str, Any]:
    settings = job.settings
    phase = job.phase(settings.phase)
    size = digit_size(phase.data)
    classes = job.model.adapters[phase.name].condition_dim
    if classes is None:
        raise ConfigError("eval.phase", f"phase {phase.name!r} is not class-conditional")
    real, real_labels = heldout_clips(load_phase_data(phase.data, job.config.seed).validation)
    digits = settings.digit_data()
    train = load_phase_data(digits, job.config.seed).train
    classifier = digit_classifier(job, digits, *digit_arrays(train))
    requested = torch.arange(settings.samples_per_class * classes) % classes  # [V]
    videos = torch.cat(
        generate(job, phase.name, len(requested), settings.sample_batch, requested)
    ).clamp(0.0, 1.0)  # [V, T, 1, S, S], the writer's range
    report = video_report(classifier, videos, requested, real, real_labels, size, seed=job.seed)
    written = write_decoded(job.eval_dir / "clips", "video", videos[:classes], nrow=classes)
    strip = written[-1]  # frames.png, or its enlarged copy when there is one
    return {**report, "artifacts": {"clips": str(strip)}, "captions": {"clips": CAPTION}}
