"""The PNG plots of a task (matplotlib, imported only when plotting; skipped if it is missing)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .jobs import read_metrics

LOSS_SMOOTHING = 50  # optimiser steps in the moving average of the loss curves
SETTING_LABELS = {"qgfd_alpha": "alpha", "qgfd_steps": "T"}  # the paper's symbols


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
    qgfd = [g for g in qgfd if {axis, other} <= set(g["metrics"])]  # T = None: the fixed point
    # rounded: a mean over seeds of one setting can differ from it in the last bit
    if len({round(g["metrics"][axis]["mean"], 9) for g in qgfd}) < 2:
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
                label=f"qgfd {SETTING_LABELS[other]}={value:g} {transition}",
            )
        for group in reference:
            ax.axhline(
                group["metrics"][metric]["mean"],
                linestyle="--",
                color="grey" if group["attention"] == "sdpa" else "tab:red",
                label=group["variant"],
            )
        ax.set(title=metric, xlabel=f"{SETTING_LABELS[axis]} ({axis})")
        ax.legend(fontsize="x-small")
    fig.tight_layout()
    name = f"quality_vs_{SETTING_LABELS[axis]}.png"
    fig.savefig(out_dir / name, dpi=100)
    plt.close(fig)
    return name
