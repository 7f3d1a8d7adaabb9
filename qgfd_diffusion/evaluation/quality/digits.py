"""The ``digits`` scorer: class-conditional digits read by a digit classifier (class accuracy,
Frechet distance in its feature space over the real-vs-real floor)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from ...checks import check_int
from ...configio import ConfigError, build_dataclass
from ...data.splits import load_phase_data
from ...sample.writers import write_decoded
from ..digits import DigitTrainingConfig, digit_report
from .common import ScoringJob, digit_arrays, digit_classifier, generate

HEADLINE = (
    ("class_accuracy", True),
    ("frechet_distance", False),
    ("real_vs_real_floor", False),
    ("fd_over_floor", False),
    ("real_class_accuracy", True),
)


@dataclass
class DigitsSettings:
    """phase: the class-conditional patch_image phase; samples_per_class: generated digits per
    class (score against about twice as many held-out ones); sample_batch: digits per sampler
    call; classifier: DigitTrainingConfig fields of the scoring classifier; grid_per_class:
    digits per class in the PNG grid."""

    phase: str
    samples_per_class: int = 50
    sample_batch: int = 250
    classifier: dict[str, Any] = field(default_factory=dict)
    grid_per_class: int = 10

    def __post_init__(self):
        for name in ("samples_per_class", "sample_batch", "grid_per_class"):
            check_int(name, getattr(self, name), 1)
        self.training_config()  # a clear error now rather than after training

    def training_config(self) -> DigitTrainingConfig:
        return build_dataclass(DigitTrainingConfig, self.classifier, "eval.classifier")


def score_digits(job: ScoringJob) -> dict[str, Any]:
    settings = job.settings
    phase = job.phase(settings.phase)
    classes = job.model.adapters[phase.name].condition_dim
    if classes is None:
        raise ConfigError(
            "eval.phase",
            f"phase {phase.name!r} is not class-conditional (set adapter_options.num_classes)",
        )
    data = load_phase_data(phase.data, job.config.seed)
    train_images, train_labels = digit_arrays(data.train)
    heldout = digit_arrays(data.validation)
    classifier = digit_classifier(job, phase.data, train_images, train_labels)
    requested = torch.arange(settings.samples_per_class * classes) % classes  # [N]: 0..K-1, 0..
    # Decoded pixels are the exact inverse of the patch latents, not clipped: clip to the data
    # range [0, 1] as the PNG writer does (the last step of DDPM sampling, Ho et al. 2020).
    images = torch.cat(
        generate(job, phase.name, len(requested), settings.sample_batch, requested)
    ).clamp(0.0, 1.0)  # [N, 1, 28, 28]
    report = digit_report(classifier, images, requested, heldout, seed=job.seed)
    report["fd_over_floor"] = report["frechet_distance"] / report["real_vs_real_floor"]
    report["classifier_train_accuracy"] = classifier.training_record.get("train_accuracy", math.nan)
    shown = min(settings.grid_per_class, settings.samples_per_class)
    per_class = torch.stack(
        [torch.nonzero(requested == k)[:shown, 0] for k in range(classes)]
    )  # [K, G] sample indices
    grid = images[per_class.T.flatten()]  # [G, K] -> [G*K, 1, 28, 28]: one class per column
    written = write_decoded(job.eval_dir / "digits", "image", grid, nrow=classes)
    return {**report, "artifacts": {"samples": str(written[0])}}
