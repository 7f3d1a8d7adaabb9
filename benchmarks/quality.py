"""Quality benchmark: train from configs/eval/*.yaml, sample, score against held-out real data.

Tasks (one or more eval files each, `TASKS`), every one scored by a function of `SCORERS`:
    mnist      class-conditional MNIST, classifier-free guidance: accuracy of generated digits
               against their requested class and the Frechet distance in a digit classifier's
               feature space, next to the real-vs-real floor (two held-out halves)
    tabular    TabDDPM machine-learning efficiency on wine and breast_cancer: a classifier
               trained on synthetic rows vs one trained on real rows, both tested on real
               held-out rows
    text       Shakespeare lines: perplexity under an n-gram model fitted on unseen real lines
               and distinct-n, for generated and for real held-out lines
    continual  text then image on one backbone: the text validation loss before and after the
               image phase (forgetting), with and without replay of text batches
    study      the mnist task over attention kinds (sdpa, qgfd alpha / T / transition, heat) at
               one model size and training budget, several seeds: mean and std, time per step

Every (eval file, variant, seed) trains one run folder with the library's `Trainer`
(`<runs>/<task>/<file>/<variant>/seed<k>/`; a finished run with the same config is reused, a
killed one resumed), then samples with the run's `sample` settings and scores with
`qgfd_diffusion.evaluation`. Held-out data is always the validation split of the scored phase's
own data config (plus, for text, lines past its `max_items`): nothing scored was trained on.

Outputs under `<out>/<task>/`: results.json (every run + mean/std per variant + targets),
results.md (tables, samples, the command), loss_curves.png, and for attention sweeps
quality_vs_alpha.png / quality_vs_T.png (matplotlib; skipped with a note if it is missing).

Usage:
    python benchmarks/quality.py mnist                       # full run, results in docs/quality/
    python benchmarks/quality.py study --seeds 0 1 2
    python benchmarks/quality.py study --attention sdpa heat
    python benchmarks/quality.py text --quick                # CI smoke run (runs/quality/quick/)
    python benchmarks/quality.py mnist --set run.phases.0.steps=2000 --set eval.samples_per_class=20
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import os
import re
import shlex
import shutil
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from qgfd_diffusion.configio import (
    ConfigError,
    apply_overrides,
    build_dataclass,
    load_yaml,
    to_plain,
)
from qgfd_diffusion.evaluation import (
    CLASSIFIERS,
    DigitClassifier,
    DigitTrainingConfig,
    digit_report,
    ml_efficiency,
    text_report,
    tokenize,
    train_digit_classifier,
)
from qgfd_diffusion.sample import make_scheduler
from qgfd_diffusion.sample.run import load_trained_model
from qgfd_diffusion.sample.writers import write_decoded
from qgfd_diffusion.train.config import DataConfig, PhaseConfig, RunConfig, run_config_from_dict
from qgfd_diffusion.train.data import dataset_metadata
from qgfd_diffusion.train.phases import load_phase_data, load_source
from qgfd_diffusion.train.trainer import Trainer

REPO = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO / "configs" / "eval"
TASKS: dict[str, tuple[str, ...]] = {
    "mnist": ("mnist.yaml",),
    "tabular": ("tabular_wine.yaml", "tabular_breast_cancer.yaml"),
    "text": ("text.yaml",),
    "continual": ("continual.yaml",),
    "study": ("study.yaml",),
}
DEFAULT_OUT, DEFAULT_RUNS, QUICK_FOLDER = Path("docs/quality"), Path("runs/quality"), "quick"
TIMING_FILE = "quality_timing.json"  # train wall-clock, next to the run's metrics.jsonl
FINAL_LOSS_FRACTION = 0.05  # "final loss": median over the last 5 % of the last phase's steps


# ------------------------------------------------------------------------------ the eval file
@dataclass
class Variant:
    """A named set of dotted overrides (``run.model.attention=sdpa``) on the eval file."""

    name: str
    set: list[str] = field(default_factory=list)

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9.=-]+", "_", self.name).strip("_") or "default"


@dataclass
class Target:
    """A threshold of the issue, checked on the mean over seeds (reported, never asserted)."""

    metric: str
    min: float | None = None
    max: float | None = None

    def met(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def describe(self) -> str:
        return " and ".join(
            part
            for part in (
                self.min is not None and f">= {self.min}",
                self.max is not None and f"<= {self.max}",
            )
            if part
        )


@dataclass
class EvalFile:
    """One configs/eval/*.yaml file (its header comment documents the keys)."""

    scorer: str
    run: dict[str, Any]
    seeds: list[int] = field(default_factory=lambda: [0])
    eval: dict[str, Any] = field(default_factory=dict)
    quick: list[str] = field(default_factory=list)
    variants: list[Variant] = field(default_factory=lambda: [Variant("default")])
    targets: list[Target] = field(default_factory=list)

    def __post_init__(self):
        if self.scorer not in SCORERS:
            raise ValueError(f"scorer must be one of {list(SCORERS)}, got {self.scorer!r}")
        if not self.seeds or min(self.seeds) < 0:
            raise ValueError(f"seeds must list at least one seed >= 0, got {self.seeds}")
        names = [variant.name for variant in self.variants]
        if not names or len({Variant(n).slug for n in names}) != len(names):
            raise ValueError(f"variants need distinct names, got {names}")


def read_document(path: Path) -> dict:
    """An eval file as a dict; ``base: other.yaml`` starts from that file, applies ``set``,
    appends ``quick`` to the base's and replaces every other key given."""
    data = load_yaml(path)
    base = data.pop("base", None)
    if base is None:
        return data
    merged = apply_overrides(read_document(path.parent / base), data.pop("set", []))
    merged["quick"] = merged.get("quick", []) + data.pop("quick", [])
    return {**merged, **data}


def load_eval_file(
    path: Path, *, quick: bool, overrides: list[str], seeds: list[int] | None
) -> EvalFile:
    """Read, apply --quick's then --set's overrides and --seeds, validate."""
    data = read_document(path)
    data = apply_overrides(data, (data.get("quick", []) if quick else []) + overrides)
    if seeds is not None:
        data["seeds"] = seeds
    return build_dataclass(EvalFile, data, path.name)


def with_attention(variants: list[Variant], kinds: list[str] | None) -> list[Variant]:
    """--attention: keep the variants that set one of these kinds; variants that set no kind
    run once per kind."""
    if not kinds:
        return variants
    chosen = []
    for variant in variants:
        setting = [o for o in variant.set if o.partition("=")[0] == "run.model.attention"]
        if setting:
            chosen += [variant] if setting[-1].partition("=")[2] in kinds else []
            continue
        for kind in kinds:
            name = kind if variant.name == "default" else f"{variant.name} {kind}"
            chosen.append(Variant(name, [*variant.set, f"run.model.attention={kind}"]))
    if not chosen:
        raise ValueError(
            f"no variant uses attention {kinds}; variants: {[v.name for v in variants]}"
        )
    return chosen


# ------------------------------------------------------------------------------------- a job
@dataclass
class Job:
    """One run to train and score: (eval file, variant, seed)."""

    name: str  # the eval file's stem
    variant: Variant
    seed: int
    config: RunConfig
    settings: Any  # the scorer's settings dataclass
    run_dir: Path
    cache_dir: Path  # shared by all jobs (digit classifiers)

    @cached_property
    def model(self):
        return load_trained_model(self.run_dir / "final")

    def phase(self, name: str) -> PhaseConfig:
        phases = {phase.name: phase for phase in self.config.phases}
        if name not in phases:
            raise ConfigError(
                "eval.phase", f"no phase {name!r} in the run (phases: {list(phases)})"
            )
        return phases[name]

    @property
    def eval_dir(self) -> Path:
        folder = self.run_dir / "eval"
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def make_jobs(document: EvalFile, name: str, runs_dir: Path, cache_dir: Path) -> list[Job]:
    jobs = []
    for variant in document.variants:
        data = apply_overrides(
            {"run": copy.deepcopy(document.run), "eval": copy.deepcopy(document.eval)}, variant.set
        )
        settings = build_dataclass(SCORERS[document.scorer].settings, data["eval"], "eval")
        for seed in document.seeds:
            config = run_config_from_dict({**data["run"], "seed": seed})
            run_dir = runs_dir / name / variant.slug / f"seed{seed}"
            jobs.append(Job(name, variant, seed, config, settings, run_dir, cache_dir))
    return jobs


def train(job: Job, progress: bool) -> float:
    """Train the job's run folder (reuse a finished one, resume a killed one); train seconds."""
    final, timing = job.run_dir / "final", job.run_dir / TIMING_FILE
    if (final / "run_config.json").is_file() and timing.is_file():
        saved = json.loads((final / "run_config.json").read_text())
        if saved != json.loads(json.dumps(job.config.to_dict())):
            raise ValueError(
                f"{job.run_dir} holds a run with another config: delete it or "
                "choose another --runs folder"
            )
        return json.loads(timing.read_text())["train_seconds"]
    resume = (job.run_dir / "metrics.jsonl").exists()
    started = time.perf_counter()
    Trainer(job.config, job.run_dir, resume=resume, progress=progress).fit()
    seconds = time.perf_counter() - started
    timing.write_text(json.dumps({"train_seconds": seconds, "resumed": resume}))
    return seconds


def generate(
    job: Job, phase: str, count: int, batch: int, condition: torch.Tensor | None = None
) -> list:
    """``count`` decoded samples of ``phase`` in chunks of ``batch`` (run.sample's sampler,
    steps, eta and guidance; one generator seeded with the run seed)."""
    options, model = job.config.sample, job.model
    generator = torch.Generator().manual_seed(job.config.seed)
    scheduler = make_scheduler(options.scheduler, model.backbone)
    chunks = []
    for start in range(0, count, batch):
        size = min(batch, count - start)
        chunk = None if condition is None else condition[start : start + size]
        output = model.sample(
            phase,
            size,
            condition=chunk,
            generator=generator,
            scheduler=scheduler,
            num_inference_steps=options.steps,
            eta=options.eta,
            guidance_scale=options.guidance,
        )
        if output.decoded is None:
            raise ValueError(f"phase {phase!r}: its adapter cannot decode samples to score")
        chunks.append(output.decoded)
    return chunks


# ------------------------------------------------------------------------------------ scorers
def _checked(name: str, value: int, low: int = 1) -> None:
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")


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
            _checked(name, getattr(self, name))
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
        _checked("sample_batch", self.sample_batch)
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
            _checked(name, getattr(self, name))
        _checked("shown_samples", self.shown_samples, 0)


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
    )
    vocabulary = ngram_vocabulary(fit_lines, settings.min_count)
    report.update(
        generated_unknown_rate=unknown_rate(generated, vocabulary),
        real_unknown_rate=unknown_rate(real, vocabulary),
    )
    shown = settings.shown_samples
    return {**report, "samples": {"generated": generated[:shown], "real": real[:shown]}}


def ngram_vocabulary(lines: list[str], min_count: int) -> set[str]:
    """The words the n-gram model keeps (seen >= min_count times); the rest map to <unk>."""
    counts = Counter(token for line in lines for token in tokenize(line))
    return {word for word, count in counts.items() if count >= min_count}


def unknown_rate(lines: list[str], vocabulary: set[str]) -> float:
    """Fraction of word tokens outside the n-gram vocabulary: perplexity scores them all as one
    <unk> word, so garbled text can look better than it is; read the two together."""
    tokens = [token for line in lines for token in tokenize(line)]
    return sum(token not in vocabulary for token in tokens) / max(len(tokens), 1)


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
            ("generated_perplexity", False),
            ("real_perplexity", False),
            ("perplexity_ratio", False),
            ("generated_distinct_1", True),
            ("real_distinct_1", True),
            ("generated_distinct_2", True),
            ("real_distinct_2", True),
            ("generated_unknown_rate", False),
            ("real_unknown_rate", False),
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
}


# --------------------------------------------------------------------------------- one run row
def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def run_facts(job: Job, metrics: list[dict]) -> dict[str, Any]:
    """What a row says about training: attention settings, size, time per step, final loss."""
    model = job.config.model
    last = [row["loss"] for row in metrics if row["phase"] == job.config.phases[-1].name]
    tail = last[-max(1, int(len(last) * FINAL_LOSS_FRACTION)) :]
    batch = {phase.name: phase.batch_size for phase in job.config.phases}
    return {
        "attention": model.attention,
        "qgfd_alpha": model.qgfd_alpha,
        "qgfd_steps": model.qgfd_steps,
        "transition": model.transition,
        "parameters": sum(p.numel() for p in job.model.backbone.parameters()),
        "steps": len(metrics),
        "final_loss": statistics.median(tail),
        "seconds_per_step": statistics.median(
            batch[row["phase"]] / row["samples_per_sec"] for row in metrics
        ),
    }


def run_job(job: Job, scorer: Scorer, progress: bool) -> dict[str, Any]:
    train_seconds = train(job, progress)
    started = time.perf_counter()
    scores = scorer.score(job)
    row = {
        "file": job.name,
        "variant": job.variant.name,
        "seed": job.seed,
        "run_dir": str(job.run_dir),
        **run_facts(job, read_metrics(job.run_dir)),
        "train_seconds": train_seconds,
        "score_seconds": time.perf_counter() - started,
        **scores,
    }
    (job.eval_dir / "scores.json").write_text(json.dumps(row, indent=2, default=str))
    return row


# ---------------------------------------------------------------------------------- summaries
def is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and standard deviation (n - 1; 0 for one seed) of every numeric field per
    (file, variant)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["file"], row["variant"]), []).append(row)
    summary = []
    for (name, variant), members in groups.items():
        keys = [k for k, v in members[0].items() if is_number(v) and k != "seed"]
        stats = {}
        for key in keys:
            values = [float(m[key]) for m in members]
            stats[key] = {
                "mean": statistics.fmean(values),
                "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            }
        summary.append(
            {
                "file": name,
                "variant": variant,
                "seeds": [m["seed"] for m in members],
                "metrics": stats,
            }
        )
    return summary


def check_targets(summary: list[dict], targets: dict[str, list[Target]]) -> list[dict]:
    return [
        {
            "file": group["file"],
            "variant": group["variant"],
            "metric": target.metric,
            "target": target.describe(),
            "mean": group["metrics"][target.metric]["mean"],
            "met": target.met(group["metrics"][target.metric]["mean"]),
        }
        for group in summary
        for target in targets[group["file"]]
        if target.metric in group["metrics"]
    ]


# ------------------------------------------------------------------------------------ markdown
TIMING_COLUMNS = ("parameters", "seconds_per_step", "train_seconds", "final_loss")


def _cell(stats: dict[str, float] | None, seeds: int) -> str:
    if stats is None:
        return "-"
    mean, std = stats["mean"], stats["std"]
    text = f"{mean:,.0f}" if abs(mean) >= 1000 and float(mean).is_integer() else f"{mean:.4g}"
    return f"{text} ± {std:.2g}" if seeds > 1 else text


def markdown_table(summary: list[dict], columns: list[str]) -> list[str]:
    lines = [
        "| file | variant | seeds | " + " | ".join(columns) + " |",
        "|" + "---|" * (3 + len(columns)),
    ]
    for group in summary:
        seeds = len(group["seeds"])
        cells = [_cell(group["metrics"].get(c), seeds) for c in columns]
        lines.append(
            f"| {group['file']} | {group['variant']} | {seeds} | " + " | ".join(cells) + " |"
        )
    return lines


def markdown_report(result: dict, headline: list[str], out_dir: Path) -> str:
    lines = [
        f"# Quality benchmark: {result['task']}{' (quick mode)' if result['quick'] else ''}",
        "",
        "Made by:",
        "",
        "```bash",
        result["command"],
        "```",
        "",
        f"Environment: {result['environment']}",
        "",
        "Mean ± standard deviation over seeds.",
        "",
    ]
    lines += markdown_table(result["summary"], headline) + [""]
    lines += ["Training cost (seconds_per_step: median wall-clock per optimiser step):", ""]
    lines += markdown_table(result["summary"], list(TIMING_COLUMNS)) + [""]
    if result["targets"]:
        lines += [
            "Targets of the issue (on the mean):",
            "",
            "| file | variant | metric | target | mean | met |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {t['file']} | {t['variant']} | {t['metric']} | {t['target']} | "
            f"{t['mean']:.4g} | {'yes' if t['met'] else 'NO'} |"
            for t in result["targets"]
        ] + [""]
    lines += [f"![{name}]({name})" for name in result["plots"]] + [""]
    lines += artifact_lines(result["rows"], out_dir) + sample_lines(result["rows"])
    return "\n".join(lines) + "\n"


def first_seed_rows(rows: list[dict]) -> list[dict]:
    seen, chosen = set(), []
    for row in rows:
        if (row["file"], row["variant"]) not in seen:
            seen.add((row["file"], row["variant"]))
            chosen.append(row)
    return chosen


def artifact_lines(rows: list[dict], out_dir: Path) -> list[str]:
    """Copy each variant's first-seed artifacts (sample grids) next to results.md."""
    lines = []
    for row in first_seed_rows(rows):
        for name, path in row.get("artifacts", {}).items():
            slug = Variant(row["variant"]).slug
            target = f"{row['file']}_{slug}_seed{row['seed']}_{name}{Path(path).suffix}"
            shutil.copyfile(path, out_dir / target)
            lines += [
                f"{name}, {row['file']} / {row['variant']} / seed {row['seed']} "
                "(rows: samples, columns: requested class 0-9):",
                "",
                f"![{target}]({target})",
                "",
            ]
    return lines


def sample_lines(rows: list[dict]) -> list[str]:
    lines = []
    for row in first_seed_rows(rows):
        for kind, texts in row.get("samples", {}).items():
            lines += [
                f"{kind} lines, {row['file']} / {row['variant']} / seed {row['seed']} (unedited):",
                "",
                "```text",
                *texts,
                "```",
                "",
            ]
    return lines


# --------------------------------------------------------------------------------------- plots
LOSS_SMOOTHING = 50  # optimiser steps in the moving average of the loss curves


def write_plots(
    rows: list[dict], summary: list[dict], headline: list[str], out_dir: Path
) -> list[str]:
    """loss_curves.png, and for attention sweeps quality_vs_alpha.png / quality_vs_T.png."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no PNG plots (pip install matplotlib)", file=sys.stderr)
        return []
    written = [plot_losses(plt, rows, out_dir)]
    for axis, other in (("qgfd_alpha", "qgfd_steps"), ("qgfd_steps", "qgfd_alpha")):
        name = plot_sweep(plt, summary, headline, axis, other, out_dir)
        written += [name] if name else []
    return written


def _smooth(values: list[float]) -> np.ndarray:
    window = max(1, min(LOSS_SMOOTHING, len(values)))
    return np.convolve(values, np.ones(window) / window, mode="valid")


def plot_losses(plt, rows: list[dict], out_dir: Path) -> str:
    files = sorted({row["file"] for row in rows})
    fig, axes = plt.subplots(1, len(files), figsize=(6 * len(files), 4), squeeze=False)
    for ax, name in zip(axes[0], files, strict=True):
        curves: dict[str, list[np.ndarray]] = {}
        for row in (r for r in rows if r["file"] == name):
            losses = [m["loss"] for m in read_metrics(Path(row["run_dir"]))]
            curves.setdefault(row["variant"], []).append(_smooth(losses))
        for variant, seeds in curves.items():
            length = min(len(c) for c in seeds)
            mean = np.mean([curve[:length] for curve in seeds], axis=0)
            ax.plot(np.arange(length) + 1, mean, label=variant)
        ax.set(
            title=f"{name}: training loss (moving average, mean over seeds)",
            xlabel="step",
            ylabel="loss",
            yscale="log",
        )
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(out_dir / "loss_curves.png", dpi=100)
    plt.close(fig)
    return "loss_curves.png"


def plot_sweep(
    plt, summary: list[dict], headline: list[str], axis: str, other: str, out_dir: Path
) -> str | None:
    """Headline metrics against qgfd_alpha (or T), one line per value of the other setting;
    the other attention kinds as horizontal reference lines."""
    qgfd = [g for g in summary if g["metrics"].get("attention_is_qgfd", {}).get("mean") == 1.0]
    if len({g["metrics"][axis]["mean"] for g in qgfd}) < 2:
        return None
    reference = [g for g in summary if g not in qgfd]
    fig, axes = plt.subplots(1, len(headline), figsize=(4.5 * len(headline), 3.8), squeeze=False)
    for ax, metric in zip(axes[0], headline, strict=True):
        lines: dict[tuple, list[dict]] = {}
        for group in qgfd:
            key = (group["metrics"][other]["mean"], group["transition"])
            lines.setdefault(key, []).append(group)
        for (value, transition), groups in sorted(lines.items()):
            groups.sort(key=lambda g: g["metrics"][axis]["mean"])
            ax.errorbar(
                [g["metrics"][axis]["mean"] for g in groups],
                [g["metrics"][metric]["mean"] for g in groups],
                yerr=[g["metrics"][metric]["std"] for g in groups],
                marker="o",
                capsize=3,
                label=f"qgfd {other}={value:g} {transition}",
            )
        for group in reference:
            ax.axhline(
                group["metrics"][metric]["mean"],
                linestyle="--",
                color="grey" if group["attention"] == "sdpa" else "tab:red",
                label=group["variant"],
            )
        ax.set(title=metric, xlabel="alpha" if axis == "qgfd_alpha" else "T (qgfd_steps)")
        ax.legend(fontsize="x-small")
    fig.tight_layout()
    name = f"quality_vs_{'alpha' if axis == 'qgfd_alpha' else 'T'}.png"
    fig.savefig(out_dir / name, dpi=100)
    plt.close(fig)
    return name


# ------------------------------------------------------------------------------------- the task
def environment() -> str:
    available = torch.accelerator.is_available()
    device = torch.accelerator.current_accelerator() if available else "cpu"
    return (
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs, device {device}"
    )


def annotate(summary: list[dict], rows: list[dict]) -> None:
    """Attention kind / transition (strings) per group, and a numeric qgfd flag for the plots."""
    for group in summary:
        row = next(
            r for r in rows if (r["file"], r["variant"]) == (group["file"], group["variant"])
        )
        group.update(attention=row["attention"], transition=row["transition"])
        is_qgfd = float(row["attention"] == "qgfd")
        group["metrics"]["attention_is_qgfd"] = {"mean": is_qgfd, "std": 0.0}


def run_task(task: str, args: argparse.Namespace) -> dict:
    out_dir = args.out / task
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, targets, headline = [], {}, []
    for file_name in TASKS[task]:
        document = load_eval_file(
            CONFIG_DIR / file_name, quick=args.quick, overrides=args.set, seeds=args.seeds
        )
        document.variants = with_attention(document.variants, args.attention)
        scorer, name = SCORERS[document.scorer], Path(file_name).stem
        headline += [metric for metric, _ in scorer.headline if metric not in headline]
        targets[name] = document.targets
        for job in make_jobs(document, name, args.runs / task, args.runs / "cache"):
            print(
                f"[{task}] {name} / {job.variant.name} / seed {job.seed}: {job.run_dir}", flush=True
            )
            rows.append(run_job(job, scorer, args.progress))
            shown = [f"{k}={rows[-1][k]:.4g}" for k in headline if k in rows[-1]]
            print("   " + ", ".join(shown), flush=True)
    summary = summarise(rows)
    annotate(summary, rows)
    result = {
        "task": task,
        "quick": args.quick,
        "command": args.command,
        "environment": environment(),
        "rows": rows,
        "summary": summary,
        "targets": check_targets(summary, targets),
    }
    result["plots"] = write_plots(rows, summary, headline, out_dir)
    (out_dir / "results.json").write_text(json.dumps(result, indent=2, default=str))
    (out_dir / "results.md").write_text(markdown_report(result, headline, out_dir))
    print(f"[{task}] results: {out_dir / 'results.md'}")
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("Usage:")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("task", choices=list(TASKS), help="what to train and score")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="apply each eval file's `quick` overrides: tiny runs that check the "
        "pipeline end to end (not the quality targets)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", help="run seeds (default: the eval file's)")
    parser.add_argument(
        "--attention",
        nargs="+",
        metavar="KIND",
        help="only variants with these attention kinds; variants that set none "
        "run once per kind (e.g. sdpa qgfd heat)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"results folder (default {DEFAULT_OUT}; with --quick {DEFAULT_RUNS / QUICK_FOLDER})",
    )
    parser.add_argument(
        "--runs",
        type=Path,
        default=None,
        help=f"training run folders (default {DEFAULT_RUNS}; with --quick "
        f"{DEFAULT_RUNS / QUICK_FOLDER})",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="DOTTED=VALUE",
        help="override the eval file, e.g. run.phases.0.steps=2000 or "
        "eval.samples_per_class=20 (repeatable; after --quick)",
    )
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no training progress bars"
    )
    return parser


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.command = shlex.join(["python", "benchmarks/quality.py", *argv])
    default = DEFAULT_RUNS / QUICK_FOLDER if args.quick else None
    args.out = args.out or default or DEFAULT_OUT
    args.runs = args.runs or default or DEFAULT_RUNS
    try:
        return run_task(args.task, args)
    except (ConfigError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main()
