"""The graph study's verdict, by the rules written before its runs.

Reads the results.json that ``python benchmarks/quality.py graph`` wrote and applies the rules of
docs/quality/graph/rules.md, seed by seed, printing every number the verdict rests on:

* excess error of a row in a seed = ``mse_over_bayes_10`` - 1;
* best graph-aware sdpa row = the lowest mean excess among GRAPH_AWARE_SDPA;
* **QGFD helps** if a GRAPH_QGFD row's excess is at least 20 % below the best sdpa row's in
  every seed, the paired mean difference is more than 2 paired standard deviations from zero,
  and its ``fd_over_floor`` mean is not above that sdpa row's mean + std;
* **does not help** if every GRAPH_QGFD row's mean excess is within +-10 % of the best sdpa
  row's or above it; otherwise **inconclusive**;
* the negative control (NEGATIVE_CONTROL) must tie plain sdpa: excess within +-10 %.

A script, not a library module: the rules belong to this one study.

Usage:
    python benchmarks/graph_verdict.py [docs/quality/graph/results.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from statistics import fmean as mean

from harness.report import mean_and_std

HEADLINE = "mse_over_bayes_10"
PLAIN_SDPA = "sdpa"
GRAPH_AWARE_SDPA = ("sdpa mask", "sdpa mask 4x depth", "sdpa lappe")
GRAPH_QGFD = ("qgfd graph a=0.9 fixed mask", "qgfd graph learned a mask", "qgfd graph a(t) mask")
NEGATIVE_CONTROL = "qgfd keys a=0.9 T=16"
HELPS_MARGIN = 0.2  # at least 20 % less excess error ...
PAIRED_SDS = 2.0  # ... with the paired mean this many paired sd from zero
TIE_BAND = 0.1  # within +-10 %: a tie
MIN_SEEDS = 3  # the rules speak of 3 paired seeds: fewer decide nothing


def by_variant(rows: list[dict], metric: str) -> dict[str, dict[int, float]]:
    """variant -> seed -> the metric."""
    table: dict[str, dict[int, float]] = {}
    for row in rows:
        table.setdefault(row["variant"], {})[row["seed"]] = float(row[metric])
    return table


def excess(rows: list[dict]) -> dict[str, dict[int, float]]:
    return {
        variant: {seed: ratio - 1 for seed, ratio in seeds.items()}
        for variant, seeds in by_variant(rows, HEADLINE).items()
    }


def compare(candidate: dict[int, float], reference: dict[int, float]) -> dict:
    """A QGFD row's excess against the reference's, seed by seed."""
    seeds = sorted(set(candidate) & set(reference))
    paired = mean_and_std([candidate[s] - reference[s] for s in seeds])
    return {
        "seeds": seeds,
        "excess": [candidate[s] for s in seeds],
        "reference_excess": [reference[s] for s in seeds],
        "below_by_margin_every_seed": all(
            candidate[s] <= (1 - HELPS_MARGIN) * reference[s] for s in seeds
        ),
        "paired_mean": paired["mean"],
        "paired_sd": paired["std"],
        "paired_significant": abs(paired["mean"]) > PAIRED_SDS * paired["std"],
        "ties_or_worse": mean(candidate[s] for s in seeds)
        >= (1 - TIE_BAND) * mean(reference[s] for s in seeds),
    }


def verdict(rows: list[dict]) -> dict:
    """Apply the rules to the study's rows (results.json's ``rows``)."""
    errors, fd = excess(rows), by_variant(rows, "fd_over_floor")
    best = min(GRAPH_AWARE_SDPA, key=lambda v: mean(errors[v].values()))
    best_fd = mean_and_std(list(fd[best].values()))
    fd_limit = best_fd["mean"] + best_fd["std"]
    rows_out = {}
    for variant in GRAPH_QGFD:
        result = compare(errors[variant], errors[best])
        result["fd_over_floor"] = mean(fd[variant].values())
        result["fd_no_worse"] = result["fd_over_floor"] <= fd_limit
        result["helps"] = (
            result["below_by_margin_every_seed"]
            and result["paired_significant"]
            and result["paired_mean"] < 0
            and result["fd_no_worse"]
        )
        rows_out[variant] = result
    if min(len(r["seeds"]) for r in rows_out.values()) < MIN_SEEDS:
        outcome = f"inconclusive (fewer than {MIN_SEEDS} paired seeds)"
    elif any(r["helps"] for r in rows_out.values()):
        outcome = "QGFD helps"
    elif all(r["ties_or_worse"] for r in rows_out.values()):
        outcome = "QGFD does not help"
    else:
        outcome = "inconclusive"
    control, plain = mean(errors[NEGATIVE_CONTROL].values()), mean(errors[PLAIN_SDPA].values())
    return {
        "verdict": outcome,
        "best_graph_aware_sdpa": best,
        "best_sdpa_fd_limit": fd_limit,
        "rows": rows_out,
        "negative_control_excess": control,
        "plain_sdpa_excess": plain,
        "negative_control_ties": abs(control - plain) <= TIE_BAND * abs(plain),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "results", nargs="?", type=Path, default=Path("docs/quality/graph/results.json")
    )
    args = parser.parse_args()
    result = verdict(json.loads(args.results.read_text())["rows"])
    print(json.dumps(result, indent=2))
    print(
        f"verdict: {result['verdict']} (against {result['best_graph_aware_sdpa']}); "
        f"negative control ties plain sdpa: {result['negative_control_ties']}"
    )


if __name__ == "__main__":
    main()
