"""A task: every job of its eval files trained and scored, then summarised into results.json,
results.md and plots."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from qgfd_diffusion.evaluation.quality import SCORERS

from .evalfile import load_eval_file, with_attention
from .jobs import make_jobs, run_job
from .plots import write_plots
from .report import (
    check_targets,
    generated_metrics,
    markdown_report,
    paired_differences,
    summarise,
)


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


def run_task(
    task: str,
    eval_files: list[Path],
    *,
    out: Path,
    runs: Path,
    command: str,
    quick: bool = False,
    overrides: list[str] | None = None,
    seeds: list[int] | None = None,
    attention: list[str] | None = None,
    progress: bool = True,
) -> dict:
    """Train and score every job of ``eval_files`` (runs under ``runs/task``, shared caches under
    ``runs/cache``); write results.json, results.md and the plots to ``out/task``.

    quick, overrides, seeds and attention are load_eval_file's and with_attention's; command is
    the command line recorded in the results."""
    out_dir = out / task
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, targets, headline = [], {}, []
    for path in eval_files:
        document = load_eval_file(path, quick=quick, overrides=overrides or [], seeds=seeds)
        document.variants = with_attention(document.variants, attention)
        scorer, name = SCORERS[document.scorer], path.stem
        headline += [metric for metric, _ in scorer.headline if metric not in headline]
        targets[name] = document.targets
        for job in make_jobs(document, name, runs / task, runs / "cache"):
            print(
                f"[{task}] {name} / {job.variant.name} / seed {job.seed}: {job.run_dir}", flush=True
            )
            rows.append(run_job(job, scorer, progress))
            shown = [f"{k}={rows[-1][k]:.4g}" for k in headline if k in rows[-1]]
            print("   " + ", ".join(shown), flush=True)
    summary = summarise(rows)
    annotate(summary, rows)
    result = {
        "task": task,
        "quick": quick,
        "command": command,
        "environment": environment(),
        "rows": rows,
        "summary": summary,
        "targets": check_targets(summary, targets),
        "paired": paired_differences(rows, generated_metrics(headline)),
    }
    result["plots"] = write_plots(rows, summary, generated_metrics(headline), out_dir)
    (out_dir / "results.json").write_text(json.dumps(result, indent=2, default=str))
    (out_dir / "results.md").write_text(markdown_report(result, headline, out_dir))
    print(f"[{task}] results: {out_dir / 'results.md'}")
    return result
