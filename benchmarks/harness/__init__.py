"""The quality benchmark's harness: train runs from eval files, score them, report (the command
line is benchmarks/quality.py). The scorers themselves are library code,
``qgfd_diffusion.evaluation.quality`` (``SCORERS``); this package trains what they score.

evalfile  an eval file (configs/eval/*.yaml): variants, seeds, targets, --quick / --set
jobs      one (eval file, variant, seed) run: train it in its folder, score it into a row
report    mean and std over seeds, paired differences by seed, targets met, results.md
plots     loss curves and quality against the QGFD settings (matplotlib, optional)
task      all of a task's eval files end to end: ``run_task``

Scripts in benchmarks/ import it as ``harness`` (their folder is on ``sys.path``).
"""

from .evalfile import EvalFile, Target, Variant, load_eval_file, read_document, with_attention
from .jobs import Job, make_jobs, read_metrics, run_facts, run_job, train
from .plots import plot_losses, plot_sweep, write_plots
from .report import (
    check_targets,
    generated_metrics,
    markdown_report,
    markdown_table,
    mean_and_std,
    paired_differences,
    summarise,
)
from .task import annotate, environment, run_task

__all__ = [
    "EvalFile",
    "Job",
    "Target",
    "Variant",
    "annotate",
    "check_targets",
    "environment",
    "generated_metrics",
    "load_eval_file",
    "make_jobs",
    "markdown_report",
    "markdown_table",
    "mean_and_std",
    "paired_differences",
    "plot_losses",
    "plot_sweep",
    "read_document",
    "read_metrics",
    "run_facts",
    "run_job",
    "run_task",
    "summarise",
    "train",
    "with_attention",
    "write_plots",
]
