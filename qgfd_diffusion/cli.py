"""``qgfd``: train and sample from the command line (thin: parse, build the config, call).

Examples:
    qgfd train configs/quickstart.yaml --output-dir runs/quickstart
    qgfd train configs/smoke.yaml --output-dir runs/smoke --set phases.0.steps=50 --set seed=1
    qgfd train configs/smoke.yaml --output-dir runs/smoke --resume
    qgfd sample --checkpoint runs/quickstart --modality image --guidance 3 --out samples/
    qgfd sample --checkpoint runs/quickstart --modality image --classes 3,3,7 --out samples/
    qgfd sample --checkpoint runs/smoke/checkpoints/step-00000010 --modality text --out s/
    qgfd sample --checkpoint runs/quickstart --modality image --device cuda --out samples/
    qgfd sample --checkpoint runs/graphs --modality signals --graph heldout.npy --out samples/
    accelerate launch --num_processes 2 -m qgfd_diffusion.cli train configs/smoke.yaml \
        --output-dir runs/ddp

Bad input (a missing file, a mistyped or out-of-range config value, a checkpoint that does not
fit) exits with status 2 and one line saying what is wrong and where; QGFD_DEBUG=1 shows the
traceback instead. ``qgfd train`` checks the whole config (every phase's adapter, options, data
and the sampling settings) before any work. A write the disk refuses (no space left, read-only
folder) exits with status 3 and one line; the newest complete checkpoint is left intact, so
``--resume`` continues from it once there is room.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from pathlib import Path

EXIT_USAGE = 2
EXIT_WRITE = 3  # the disk refused a write (no space, read-only); checkpoints left intact
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def _int_at_least(text: str, low: int) -> int:
    value = int(text)
    if value < low:
        raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {value}")
    return value


def _positive_int(text: str) -> int:
    return _int_at_least(text, 1)


def _non_negative_int(text: str) -> int:
    return _int_at_least(text, 0)


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def _class_list(text: str) -> list[int]:
    try:
        labels = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 3,3,7, got {text!r}") from None
    if not labels or min(labels) < 0:
        raise argparse.ArgumentTypeError(f"expected class labels >= 0 like 3,3,7, got {text!r}")
    return labels


def _version() -> str:
    from . import __version__

    return __version__


def read_prompts(prompts: list[str] | None) -> list[str] | None:
    """``--prompt`` values; ``@FILE`` stands for the non-empty lines of FILE."""
    if prompts is None:
        return None
    lines: list[str] = []
    for prompt in prompts:
        if prompt.startswith("@"):
            path = Path(prompt[1:])
            if not path.is_file():
                raise FileNotFoundError(f"prompt file not found: {path}")
            lines += [line for line in path.read_text().splitlines() if line.strip()]
        else:
            lines.append(prompt)
    return lines


class OneLineErrorParser(argparse.ArgumentParser):
    """Usage errors as one line (exit 2); ``--help`` still shows the full usage."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from .sample.schedulers import SAMPLING_SCHEDULERS

    parser = OneLineErrorParser(
        prog="qgfd", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser(
        "train",
        help="train a run config (phases on one backbone)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="exit status: 0 done; 2 bad input (the whole config is checked before any work; "
        "also data, encoders, checkpoints) or a run folder another training process holds, "
        "one line; 3 a write the disk refused (no space, "
        "read-only folder), one line: the newest complete checkpoint is intact and --resume "
        "continues from it",
    )
    train.add_argument("config", type=Path, help="YAML run config, e.g. configs/quickstart.yaml")
    train.add_argument("--output-dir", type=Path, required=True, help="run folder")
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value by dotted path (repeatable)",
    )
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue from the newest verified checkpoint in the run folder; a damaged one "
        "is skipped with one line saying why (and set aside as step-*.damaged). A folder with "
        "no complete checkpoint yet (a run stopped before its first) starts from the "
        "beginning; one whose checkpoints are all damaged exits 2",
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.add_argument(
        "--no-lock",
        action="store_true",
        help="do not lock the run folder (only where its file system cannot lock, and only if "
        "no other process trains in it: two runs in one folder overwrite each other)",
    )

    sample = commands.add_parser(
        "sample",
        help="generate from a trained model",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sample.add_argument(
        "--checkpoint",
        type=Path,
        required=True,
        help="a run folder (uses its final/), a pipeline folder, or a checkpoints/step-* folder",
    )
    sample.add_argument("--modality", required=True, help="a phase name of the run, e.g. text")
    # Flags keep their short names; dest= is the SampleOptions field each one sets (the
    # pipeline's own argument names), read back by sample_options.
    sample.add_argument("--num-samples", type=_positive_int, default=16)
    sample.add_argument(
        "--steps", dest="num_inference_steps", type=_positive_int, default=50, help="sampler steps"
    )
    sample.add_argument("--eta", type=_non_negative_float, default=0.0, help="DDIM eta")
    sample.add_argument(
        "--guidance",
        dest="guidance_scale",
        type=_non_negative_float,
        default=1.0,
        help="classifier-free guidance scale (1 = none)",
    )
    sample.add_argument(
        "--clamp-steps",
        type=_non_negative_int,
        default=0,
        help="text: snap the x0 estimate to the nearest tokens over the last N steps "
        "(Diffusion-LM's clamping; 0 = off)",
    )
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--scheduler", default="ddim", choices=sorted(SAMPLING_SCHEDULERS))
    sample.add_argument("--no-ema", action="store_true", help="use the live weights, not the EMA")
    sample.add_argument(
        "--classes",
        dest="class_labels",
        type=_class_list,
        default=None,
        help="class labels, comma-separated, one per sample or one for all (class-conditional "
        "modalities; default: 0..K-1 cycled)",
    )
    sample.add_argument(
        "--prompt",
        action="append",
        default=None,
        help="a prompt (repeatable; one per sample or one for all), or @FILE with one per line",
    )
    sample.add_argument(
        "--graph",
        default=None,
        metavar="FILE",
        help="the graph to generate on (graph-aware models): an adjacency [L, L] for all samples "
        "or [B, L, L], one per sample, in .npy or .safetensors (key 'graph')",
    )
    sample.add_argument(
        "--device", default="cpu", help="torch device to sample on, e.g. cpu, cuda, cuda:1, mps"
    )
    sample.add_argument("--out", type=Path, required=True, help="output folder")

    commands.add_parser("presets", help="list model presets, adapters and samplers")
    return parser


def run_train(args) -> None:
    from .train.config import load_run_config
    from .train.logs import silence_library_progress_bars
    from .train.trainer import Trainer

    config = load_run_config(args.config, args.overrides)  # every check that needs no data
    _log_to_stderr("qgfd train")
    silence_library_progress_bars()  # one training bar: no weight save/load bars cutting it
    trainer = Trainer(
        config,
        args.output_dir,
        resume=args.resume,
        progress=not args.no_progress,
        lock=not args.no_lock,
    )
    final = trainer.fit()
    print(f"final model: {final}")


def _log_to_stderr(prefix: str) -> None:
    """The library's notes (resume choices, what a check waits for) as one line each."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{prefix}: %(message)s"))
    logger = logging.getLogger("qgfd_diffusion")
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False


def sample_options(args):
    """The one map from ``qgfd sample``'s flags to ``SampleOptions`` (each flag's ``dest`` is
    the field it sets; ``--prompt @FILE`` is read here)."""
    from dataclasses import fields

    from .sample.options import SampleOptions

    values = {f.name: getattr(args, f.name) for f in fields(SampleOptions)}
    return SampleOptions(**{**values, "prompt": read_prompts(values["prompt"])})


def run_sample(args) -> None:
    from .sample.run import sample_to_folder
    from .train.checkpoint_model import load_trained_pipeline
    from .train.logs import silence_library_progress_bars

    options = sample_options(args)
    silence_library_progress_bars()  # only the sampling bar: no weight-loading bars
    device = check_device(args.device)
    pipe = load_trained_pipeline(args.checkpoint, use_ema=not args.no_ema, device=device)
    out = sample_to_folder(pipe, args.modality, args.out, options, progress=True)
    print(f"samples: {out}")


def check_device(name: str):
    """A torch device that exists here, or a ValueError naming what is missing."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"--device {name!r} is not a torch device ({error})") from None
    if device.type != "cpu":
        module = getattr(torch, device.type, None)
        available = module is not None and getattr(module, "is_available", lambda: False)()
        count = module.device_count() if available and hasattr(module, "device_count") else 0
        if not available or (device.index or 0) >= max(count, 1):
            raise ValueError(f"--device {name}: no such device on this machine")
    return device


def run_presets(args) -> None:
    from .adapters import ADAPTERS
    from .models.config import DIFFUSION_PRESETS
    from .sample.schedulers import SAMPLING_SCHEDULERS

    for name, sizes in DIFFUSION_PRESETS.items():
        print(f"preset {name}: " + " ".join(f"{key}={value}" for key, value in sizes.items()))
    print("adapters:", ", ".join(sorted(ADAPTERS)))
    print("samplers:", ", ".join(sorted(SAMPLING_SCHEDULERS)))


COMMANDS = {"train": run_train, "sample": run_sample, "presets": run_presets}


def main(argv: list[str] | None = None) -> int:
    from safetensors import SafetensorError

    from .train.checkpoint import CheckpointWriteError
    from .train.errors import TrainingError

    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except (ValueError, OSError, TrainingError, SafetensorError) as error:
        if os.environ.get("QGFD_DEBUG"):
            raise
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        write_failed = isinstance(error, CheckpointWriteError) or (
            isinstance(error, OSError) and error.errno in DISK_ERRNOS
        )
        if write_failed and args.command == "train":
            message += " (make room, then --resume continues from the newest complete checkpoint)"
        print(f"qgfd {args.command}: error: {message}", file=sys.stderr)
        return EXIT_WRITE if write_failed else EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
