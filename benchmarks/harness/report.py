"""Summaries over seeds (mean and std per variant), the targets checked on them, and results.md."""

from __future__ import annotations

import shutil
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from .evalfile import Target, Variant


# ---------------------------------------------------------------------------------- summaries
def is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def generated_metrics(headline: list[str]) -> list[str]:
    """The headline metrics that score generated samples: real_* ones score the real data and
    are the same for every variant of a seed (nothing to compare or plot across variants)."""
    return [metric for metric in headline if not metric.startswith("real_")]


def mean_and_std(values: list[float]) -> dict[str, float]:
    """Mean and sample standard deviation (n - 1; 0 for one value)."""
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


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
            stats[key] = mean_and_std([float(m[key]) for m in members])
        summary.append(
            {
                "file": name,
                "variant": variant,
                "seeds": [m["seed"] for m in members],
                "metrics": stats,
            }
        )
    return summary


def paired_differences(rows: list[dict], metrics: list[str]) -> list[dict]:
    """Per file, each variant minus the file's first variant, seed by seed: mean and standard
    deviation of those differences over the seeds both ran.

    Runs of one seed share the initialisation and the data order, so the per-seed difference
    removes most of the seed-to-seed spread that the unpaired means carry."""
    runs: dict[str, dict[str, dict[int, dict]]] = {}  # file -> variant -> seed -> row
    for row in rows:
        runs.setdefault(row["file"], {}).setdefault(row["variant"], {})[row["seed"]] = row
    paired = []
    for name, variants in runs.items():
        (reference, base), *others = variants.items()
        for variant, runs_by_seed in others:
            seeds = sorted(set(runs_by_seed) & set(base))
            pairs = [(runs_by_seed[seed], base[seed]) for seed in seeds]
            stats = {
                metric: mean_and_std([float(run[metric] - ref[metric]) for run, ref in pairs])
                for metric in metrics
                if pairs and all(is_number(r.get(metric)) for pair in pairs for r in pair)
            }
            if seeds:
                paired.append(
                    {
                        "file": name,
                        "variant": variant,
                        "reference": reference,
                        "seeds": seeds,
                        "metrics": stats,
                    }
                )
    return paired


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
TIMING_COLUMNS = ("parameters", "train_threads", "seconds_per_step", "train_seconds", "final_loss")


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


RULES_FILE = "rules.md"


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
        f"Environment (of the process that wrote this report): {result['environment']}",
        "",
        "Mean ± standard deviation over seeds.",
        "",
    ]
    if (out_dir / RULES_FILE).exists():  # written before the runs; the task never rewrites it
        lines += [
            f"Rules, settings and budget, fixed before the runs: [{RULES_FILE}]({RULES_FILE}).",
            "",
        ]
    lines += markdown_table(result["summary"], headline) + [""]
    for reference in dict.fromkeys(p["reference"] for p in result.get("paired", [])):
        groups = [p for p in result["paired"] if p["reference"] == reference]
        lines += [
            f"Paired by seed: difference from `{reference}` (runs of one seed share the "
            "initialisation and the data order; mean ± standard deviation of the per-seed "
            "differences):",
            "",
        ]
        columns = [m for m in headline if any(m in group["metrics"] for group in groups)]
        lines += markdown_table(groups, columns) + [""]
    lines += [
        "Training cost (seconds_per_step: median wall-clock per optimiser step; train_seconds: "
        "the training call that finished the run, only the part after resuming for a resumed "
        "run; train_threads: torch's threads during that call):",
        "",
    ]
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


DEFAULT_CAPTION = "rows: samples, columns: requested class 0-9"


def artifact_lines(rows: list[dict], out_dir: Path) -> list[str]:
    """Copy each variant's first-seed artifacts (sample grids) next to results.md, captioned by
    the row's ``captions`` (default: the digit grids' layout)."""
    lines = []
    for row in first_seed_rows(rows):
        for name, path in row.get("artifacts", {}).items():
            slug = Variant(row["variant"]).slug
            target = f"{row['file']}_{slug}_seed{row['seed']}_{name}{Path(path).suffix}"
            shutil.copyfile(path, out_dir / target)
            caption = row.get("captions", {}).get(name, DEFAULT_CAPTION)
            lines += [
                f"{name}, {row['file']} / {row['variant']} / seed {row['seed']} ({caption}):",
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
