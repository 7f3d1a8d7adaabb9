"""Scorers: each samples a trained job's run and scores the samples against real held-out data
with `qgfd_diffusion.evaluation`; `SCORERS` names them for the eval files' ``scorer`` key."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from ...checks import check_int
from ...configio import ConfigError, build_dataclass, to_plain
from ...sample import generate as generate_modality
from ...sample import make_scheduler
from ...sample.writers import write_decoded
from ...train.config import DataConfig
from ...train.data import dataset_metadata
from ...train.phases import load_phase_data, load_source
from .. import (
    CLASSIFIERS,
    DigitClassifier,
    DigitTrainingConfig,
    digit_report,
    ml_efficiency,
    text_report,
    train_digit_classifier,
)
from .audio_scorer import HEADLINE as AUDIO_HEADLINE
from .audio_scorer import AudioSettings, score_audio
from .scorers_graph import GRAPH_HEADLINE, GraphSettings, score_graph
from .video_scorer import HEADLINE as VIDEO_HEADLINE
from .video_scorer import VideoSettings, score_video

if TYPE_CHECKING:  # jobs imports SCORERS; a scorer only reads a Job's attributes
    from .jobs import Job


def generate(
    job: Job, phase: str, count: int, batch: int, condition: torch.Tensor | None = None
) -> list:
    """``count`` decoded samples of ``phase`` in chunks of ``batch`` (run.sample's sampler,
    steps, eta and guidance; one generator seeded with the run seed)."""
    options, model = job.config.sample, job.model
    generator = torch.Generator().manual_seed(job.config.seed)
    scheduler = make_scheduler(options.scheduler, model.schedule)
    chunks = []
    for start in range(0, count, batch):
        size = min(batch, count - start)
        chunk = None if condition is None else condition[start : start + size]
        output = generate_modality(
            model,
            phase,
            size,
            condition=chunk,
            generator=generator,
            scheduler=scheduler,
            num_inference_steps=options.num_inference_steps,
            eta=options.eta,
            guidance_scale=options.guidance_scale,
            clamp_steps=options.clamp_steps,
        )
        if output.decoded is None:
            raise ValueError(f"phase {phase!r}: its adapter cannot decode samples to score")
        chunks.append(output.decoded)
    return chunks


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


def digit_arrays(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    rows = dataset[:]  # images float32 [N, 1, 28, 28] in [0, 1], labels [N]
    return torch.as_tensor(np.asarray(rows["image"])), torch.as_tensor(np.asarray(rows["label"]))


def digit_classifier(
    job: Job, data: DataConfig, images: torch.Tensor, labels: torch.Tensor
) -> DigitClassifier:
    """The scoring classifier of this data split, trained once and cached under the runs folder
    (keyed by the data config, run seed and training config)."""
    key = json.dumps(
        {"data": to_plain(data), "seed": job.seed, "classifier": job.settings.classifier},
        sort_keys=True,
    )
    folder = job.cache_dir / "digit_classifiers" / hashlib.sha1(key.encode()).hexdigest()[:12]
    if (folder / "classifier.json").is_file():
        return DigitClassifier.load(folder)
    classifier = train_digit_classifier(images, labels, config=job.settings.training_config())
    classifier.save(folder)
    (folder / "key.json").write_text(key)
    return classifier


def score_digits(job: Job) -> dict[str, Any]:
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


@dataclass
class TableSettings:
    """phase: the tabular phase; classifier: ml_efficiency's classifier kind; sample_batch:
    rows per sampler call. As many rows are generated as the real training split has."""

    phase: str
    classifier: str = "random_forest"
    sample_batch: int = 512

    def __post_init__(self):
        check_int("sample_batch", self.sample_batch, 1)
        if self.classifier not in CLASSIFIERS:
            raise ValueError(
                f"classifier must be one of {list(CLASSIFIERS)}, got {self.classifier!r}"
            )


def score_table(job: Job) -> dict[str, Any]:
    settings = job.settings
    phase = job.phase(settings.phase)
    data = load_phase_data(phase.data, job.config.seed)
    meta = dataset_metadata(data.train)
    if not meta.get("target_column"):
        raise ConfigError("eval.phase", f"the data of phase {phase.name!r} has no target column")
    real_train, real_test = data.train.to_pandas(), data.validation.to_pandas()
    synthetic = pd.concat(
        generate(job, phase.name, len(real_train), settings.sample_batch), ignore_index=True
    )
    synthetic.to_csv(job.eval_dir / "synthetic.csv", index=False)
    report = ml_efficiency(
        synthetic,
        real_train,
        real_test,
        meta["target_column"],
        meta.get("categorical_columns") or [],
        seed=job.seed,
        classifier=settings.classifier,
    )
    report["missing_classes"] = len(report["missing_classes"])
    return report


@dataclass
class TextSettings:
    """phase: the text phase; num_samples: generated lines (and real validation lines scored
    alike); fit_lines: unseen real lines past the phase's data.max_items that the n-gram model
    is fitted on; ngram_order, min_count, distinct_orders: text_report's; shown_samples: lines
    printed in results.md."""

    phase: str
    num_samples: int = 500
    sample_batch: int = 250
    fit_lines: int = 20000
    ngram_order: int = 3
    min_count: int = 2
    distinct_orders: list[int] = field(default_factory=lambda: [1, 2, 3])
    shown_samples: int = 20

    def __post_init__(self):
        for name in ("num_samples", "sample_batch", "fit_lines", "ngram_order", "min_count"):
            check_int(name, getattr(self, name), 1)
        check_int("shown_samples", self.shown_samples, 0)


def unseen_lines(data: DataConfig, seed: int, count: int) -> list[str]:
    """Real lines the run never saw: the source is shuffled with the run seed and cut to
    max_items (train/data.py), so the lines after max_items in that order are unseen."""
    if data.max_items is None:
        raise ConfigError(
            "data.max_items",
            "text scoring needs max_items so that unseen lines remain to fit the n-gram model on",
        )
    full = load_source(data, seed, limit=False)
    rest = range(data.max_items, min(len(full), data.max_items + count))
    if len(rest) == 0:
        raise ConfigError("data.max_items", f"all {len(full)} lines are used in training")
    return full.select(rest)["text"]


def score_text(job: Job) -> dict[str, Any]:
    settings = job.settings
    phase = job.phase(settings.phase)
    data = load_phase_data(phase.data, job.config.seed)
    generated = [
        line
        for chunk in generate(job, phase.name, settings.num_samples, settings.sample_batch)
        for line in chunk
    ]
    (job.eval_dir / "generated.txt").write_text("\n".join(generated) + "\n", encoding="utf-8")
    real = data.validation["text"][: settings.num_samples]
    fit_lines = unseen_lines(phase.data, job.seed, settings.fit_lines)
    report = text_report(
        generated,
        real,
        fit_lines,
        n=settings.ngram_order,
        min_count=settings.min_count,
        distinct_orders=settings.distinct_orders,
        training_lines=data.train["text"],
        seed=job.seed,
    )
    report["round_trip_accuracy"] = round_trip_accuracy(job.model.adapters[phase.name], real)
    shown = settings.shown_samples
    return {**report, "samples": {"generated": generated[:shown], "real": real[:shown]}}


def round_trip_accuracy(adapter, lines: list[str], batch: int = 250) -> float | None:
    """Token accuracy of clean latents -> rounding head -> tokens on real lines; None for a
    decoder without a token-level round trip (a seq2seq decoder)."""
    if getattr(adapter, "decode_mode", None) != "rounding":
        return None
    chunks = [lines[i : i + batch] for i in range(0, len(lines), batch)]
    accuracies = [adapter.round_trip_accuracy(chunk) for chunk in chunks]
    return sum(a * len(c) for a, c in zip(accuracies, chunks, strict=True)) / len(lines)


@dataclass
class ForgettingSettings:
    """phase: the phase whose validation loss is watched; later_phase: the phase after which it
    is measured again (validation.jsonl: after every phase, every earlier phase's loss)."""

    phase: str
    later_phase: str


def score_forgetting(job: Job) -> dict[str, Any]:
    settings = job.settings
    later = job.phase(settings.later_phase)
    job.phase(settings.phase)
    lines = (job.run_dir / "validation.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    loss = {(row["after_phase"], row["phase"]): row["loss"] for row in rows}
    before, after = loss[settings.phase, settings.phase], loss[later.name, settings.phase]
    return {
        "loss_before": before,
        "loss_after": after,
        "forgetting": after - before,
        "relative_forgetting": (after - before) / before,
        "later_phase_loss": loss[later.name, later.name],
        "replay_every": later.replay_every if later.replay_phase == settings.phase else 0,
    }


@dataclass(frozen=True)
class Scorer:
    """settings: the dataclass of the file's `eval` section; headline: metrics in the tables
    and plots (name, higher is better)."""

    settings: type
    score: Callable[[Job], dict[str, Any]]
    headline: tuple[tuple[str, bool], ...]


SCORERS: dict[str, Scorer] = {
    "digits": Scorer(
        DigitsSettings,
        score_digits,
        (
            ("class_accuracy", True),
            ("frechet_distance", False),
            ("real_vs_real_floor", False),
            ("fd_over_floor", False),
            ("real_class_accuracy", True),
        ),
    ),
    "table": Scorer(
        TableSettings,
        score_table,
        (
            ("synthetic_accuracy", True),
            ("real_accuracy", True),
            ("ratio", True),
            ("f1_ratio", True),
        ),
    ),
    "text": Scorer(
        TextSettings,
        score_text,
        (
            ("perplexity_ratio", False),
            ("distinct_1_ratio", True),
            ("distinct_2_ratio", True),
            ("entropy_ratio", True),
            ("generated_unknown_rate", False),
            ("mean_tokens_ratio", True),
            ("generated_copy_rate", False),
            ("round_trip_accuracy", True),
            ("reference_shuffled_perplexity_ratio", False),
            ("reference_frequent_perplexity_ratio", False),
            ("reference_bigram_perplexity_ratio", False),
        ),
    ),
    "forgetting": Scorer(
        ForgettingSettings,
        score_forgetting,
        (
            ("loss_before", False),
            ("loss_after", False),
            ("forgetting", False),
            ("relative_forgetting", False),
            ("later_phase_loss", False),
        ),
    ),
    "graph": Scorer(GraphSettings, score_graph, GRAPH_HEADLINE),
    "video": Scorer(VideoSettings, score_video, VIDEO_HEADLINE),
    "audio": Scorer(AudioSettings, score_audio, AUDIO_HEADLINE),
}
