"""A job: one (eval file, variant, seed) run to train in its own folder, then score into one
result row (training facts, timings and the scorer's figures)."""

from __future__ import annotations

import copy
import json
import statistics
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from qgfd_diffusion.configio import ConfigError, apply_overrides, build_dataclass
from qgfd_diffusion.evaluation.quality import SCORERS, Scorer
from qgfd_diffusion.sample.run import load_trained_model
from qgfd_diffusion.train.config import PhaseConfig, RunConfig, run_config_from_dict
from qgfd_diffusion.train.trainer import Trainer

from .evalfile import EvalFile, Variant

TIMING_FILE = "quality_timing.json"  # train wall-clock, next to the run's metrics.jsonl
FINAL_LOSS_FRACTION = 0.05  # "final loss": median over the last 5 % of the last phase's steps


@dataclass
class Job:
    """One run to train and score: (eval file, variant, seed); what a scorer reads of it is
    ``qgfd_diffusion.evaluation.quality.ScoringJob``."""

    name: str  # the eval file's stem
    variant: Variant
    seed: int
    config: RunConfig
    settings: Any  # the scorer's settings dataclass
    run_dir: Path
    cache_dir: Path  # shared by all jobs (digit classifiers)
    eval_name: str = "eval"  # the scores' folder in run_dir (runs shared by variants differ)

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
        folder = self.run_dir / self.eval_name
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def make_jobs(document: EvalFile, name: str, runs_dir: Path, cache_dir: Path) -> list[Job]:
    jobs, trained = [], {}  # trained: training config -> the run folder that trains it
    for variant in document.variants:
        data = apply_overrides(
            {"run": copy.deepcopy(document.run), "eval": copy.deepcopy(document.eval)}, variant.set
        )
        settings = build_dataclass(SCORERS[document.scorer].settings, data["eval"], "eval")
        seeds = [s for s in document.seeds if variant.seeds is None or s in variant.seeds]
        for seed in seeds:
            config = run_config_from_dict({**data["run"], "seed": seed})
            key = json.dumps(_training_part(config.to_dict()), sort_keys=True)
            if key in trained:  # only the sampling differs: score the same run again
                job = Job(name, variant, seed, config, settings, trained[key], cache_dir)
                job.eval_name = f"eval-{variant.slug}"
            else:
                run_dir = trained[key] = runs_dir / name / variant.slug / f"seed{seed}"
                job = Job(name, variant, seed, config, settings, run_dir, cache_dir)
            jobs.append(job)
    return jobs


def train(job: Job, progress: bool) -> dict[str, Any]:
    """Train the job's run folder (reuse a finished one, resume a killed one). Returns the
    timing record: train_seconds, resumed, train_threads (torch's intra-op threads, which the
    seconds per step depend on)."""
    final, timing = job.run_dir / "final", job.run_dir / TIMING_FILE
    if (final / "run_config.json").is_file() and timing.is_file():
        # Read back through the config loader, so a run saved before a field was renamed
        # (train.tensorboard -> train.log_with) compares by meaning, not by spelling.
        saved = run_config_from_dict(json.loads((final / "run_config.json").read_text()))
        if _training_part(saved.to_dict()) != _training_part(job.config.to_dict()):
            raise ValueError(
                f"{job.run_dir} holds a run with another training config: delete it or "
                "choose another --runs folder"
            )
        return json.loads(timing.read_text())
    resume = (job.run_dir / "metrics.jsonl").exists()
    started = time.perf_counter()
    Trainer(job.config, job.run_dir, resume=resume, progress=progress).fit()
    record = {
        "train_seconds": time.perf_counter() - started,
        "resumed": resume,
        "train_threads": torch.get_num_threads(),
    }
    timing.write_text(json.dumps(record))
    return record


def _training_part(config: dict[str, Any]) -> dict[str, Any]:
    """A run config as JSON without its ``sample`` section: the scorers sample with the job's
    own settings, so a finished run is rescored at another guidance or step count, not retrained."""
    plain = json.loads(json.dumps(config))
    plain.pop("sample", None)
    return plain


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
        "qgfd_alpha": model.qgfd.alpha,
        "qgfd_steps": model.qgfd.steps,
        "transition": model.qgfd.transition,
        "parameters": sum(p.numel() for p in job.model.backbone.parameters()),
        "steps": len(metrics),
        "final_loss": statistics.median(tail),
        "seconds_per_step": statistics.median(
            batch[row["phase"]] / row["samples_per_sec"] for row in metrics
        ),
    }


def run_job(job: Job, scorer: Scorer, progress: bool) -> dict[str, Any]:
    timing = train(job, progress)
    started = time.perf_counter()
    scores = scorer.score(job)
    row = {
        "file": job.name,
        "variant": job.variant.name,
        "seed": job.seed,
        "run_dir": str(job.run_dir),
        **run_facts(job, read_metrics(job.run_dir)),
        "train_seconds": timing["train_seconds"],
        "train_threads": timing.get("train_threads"),  # absent from older timing files
        "score_seconds": time.perf_counter() - started,
        **scores,
    }
    (job.eval_dir / "scores.json").write_text(json.dumps(row, indent=2, default=str))
    return row
