"""The offline quality benchmark as a library (its command line: benchmarks/quality.py).

evalfile  an eval file (configs/eval/*.yaml): variants, seeds, targets, --quick / --set
jobs      one (eval file, variant, seed) run: train it in its folder, score it into a row
scorers   the scoring functions by name (`SCORERS`), each with its `eval` settings dataclass
report    mean and std over seeds, paired differences by seed, targets met, results.md
plots     loss curves and quality against the QGFD settings (matplotlib, optional)
task      all of a task's eval files end to end: `run_task`
"""

from .evalfile import EvalFile, Target, Variant, load_eval_file, read_document, with_attention
from .jobs import Job, make_jobs, read_metrics, run_facts, run_job, train
from .plots import plot_losses, plot_sweep, write_plots
from .report import (
    check_targets,
    generated_metrics,
    markdown_report,
    markdown_table,
    paired_differences,
    summarise,
)
from .scorers import (
    SCORERS,
    DigitsSettings,
    ForgettingSettings,
    Scorer,
    TableSettings,
    TextSettings,
    generate,
    score_digits,
    score_forgetting,
    score_table,
    score_text,
)
from .task import annotate, environment, run_task

__all__ = [
    "SCORERS",
    "DigitsSettings",
    "EvalFile",
    "ForgettingSettings",
    "Job",
    "Scorer",
    "TableSettings",
    "Target",
    "TextSettings",
    "Variant",
    "annotate",
    "check_targets",
    "environment",
    "generate",
    "generated_metrics",
    "load_eval_file",
    "make_jobs",
    "markdown_report",
    "markdown_table",
    "paired_differences",
    "plot_losses",
    "plot_sweep",
    "read_document",
    "read_metrics",
    "run_facts",
    "run_job",
    "run_task",
    "score_digits",
    "score_forgetting",
    "score_table",
    "score_text",
    "summarise",
    "train",
    "with_attention",
    "write_plots",
]
