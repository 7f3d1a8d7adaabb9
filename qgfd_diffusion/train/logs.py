"""Run logs: metrics.jsonl (one line per optimiser step), validation.jsonl, and accelerate's
trackers (TensorBoard by default; wandb, mlflow, ... by ``train.log_with``).

Only the main process writes. On resume the JSONL files are cut back to the checkpoint, so a
resumed run's logs equal those of an uninterrupted one (timing fields aside): they are the exact
record; the trackers are for watching a run and may repeat the steps a killed run re-does.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch

TIMING_FIELDS = ("samples_per_sec",)  # the only fields that differ between identical runs


def silence_library_progress_bars() -> None:
    """transformers and diffusers draw their own bars when saving and loading weights; a run
    started with ``--no-progress`` (CI, log files) wants none."""
    import diffusers.utils.logging
    import transformers.utils.logging

    transformers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.disable_progress_bar()


# accelerate tracker name -> the package it needs (checked before any work)
TRACKER_PACKAGES = {
    "tensorboard": "tensorboard",
    "wandb": "wandb",
    "mlflow": "mlflow",
    "comet_ml": "comet_ml",
    "aim": "aim",
    "clearml": "clearml",
    "dvclive": "dvclive",
    "swanlab": "swanlab",
    "trackio": "trackio",
}
TRACKER_PROJECT = "qgfd"  # the run name trackers see; TensorBoard writes tensorboard/qgfd/
TRACKER_FOLDER = "tensorboard"  # the trackers' logging_dir inside the run folder


def check_trackers(names: list[str]) -> list[str]:
    """``train.log_with``: known accelerate trackers whose packages are installed."""
    import importlib.util

    for name in names:
        if name not in TRACKER_PACKAGES:
            raise ValueError(f"unknown tracker {name!r} (allowed: {', '.join(TRACKER_PACKAGES)})")
        if importlib.util.find_spec(TRACKER_PACKAGES[name]) is None:
            raise ValueError(f"tracker {name!r} needs the package {TRACKER_PACKAGES[name]!r}")
    return list(names)


class MetricsLog:
    """The run's record: ``metrics.jsonl`` and ``validation.jsonl`` (exact, truncated on resume,
    written by the main process) plus accelerate's trackers (TensorBoard by default; wandb,
    mlflow, ... through ``train.log_with``), which also receive sample grids and texts.

    The trackers are the accelerator's (``Accelerator(log_with=..., project_config=...)``);
    ``start`` initialises them with the run config as hyper-parameters.
    """

    def __init__(self, run_dir: Path, *, enabled: bool, accelerator: Any = None):
        self.metrics_file = run_dir / "metrics.jsonl"
        self.validation_file = run_dir / "validation.jsonl"
        self.enabled = enabled
        self.accelerator = accelerator
        self._handles: dict[Path, Any] = {}

    @property
    def tracking(self) -> bool:
        return self.accelerator is not None and bool(self.accelerator.log_with)

    def start(self, config: dict) -> None:
        if self.tracking:
            self.accelerator.init_trackers(TRACKER_PROJECT, config=flat_hparams(config))

    def step(self, **fields: Any) -> None:
        self._append(self.metrics_file, fields)
        if self.tracking:
            values = {f"train/{key}": fields[key] for key in ("loss", "lr", "grad_norm")}
            self.accelerator.log(values, step=fields["step"])

    def validation(self, **fields: Any) -> None:
        self._append(self.validation_file, fields)
        if self.tracking:
            tag = f"validation/{fields['phase']}_after_{fields['after_phase']}"
            self.accelerator.log({tag: fields["loss"]}, step=fields["step"])

    def samples(self, phase: str, step: int, decoded: Any) -> None:
        """Decoded samples to the trackers: an image grid, or text lines."""
        if not self.tracking or decoded is None:
            return
        if isinstance(decoded, list) and all(isinstance(line, str) for line in decoded):
            self.accelerator.log({f"samples/{phase}": "\n\n".join(decoded)}, step=step)
            return
        images = torch.as_tensor(decoded)
        if images.dim() == 5:  # videos [B, F, C, H, W]: their first frames
            images = images[:, 0]
        if images.dim() != 4:
            return  # audio and tables have no picture here; the files at the end have them
        grid = image_grid(images.float().clamp(0, 1))  # [1, C, H', W']
        for tracker in self.accelerator.trackers:
            if hasattr(tracker, "log_images"):
                tracker.log_images({f"samples/{phase}": grid.numpy()}, step=step)

    def truncate(self, step: int, phases_done: int) -> None:
        """Drop what a killed run logged after the checkpoint it is resumed from."""
        if not self.enabled:
            return
        self.close_files()
        _rewrite(self.metrics_file, lambda row: row["step"] <= step)
        done = set()
        _rewrite(self.validation_file, lambda row: _phase_done(row, done, phases_done))

    def flush(self) -> None:
        for handle in self._handles.values():
            handle.flush()
            os.fsync(handle.fileno())

    def close_files(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()

    def close(self) -> None:
        self.close_files()
        if self.tracking:
            self.accelerator.end_training()

    def _append(self, path: Path, fields: dict) -> None:
        if not self.enabled:
            return
        if path not in self._handles:
            self._handles[path] = open(path, "a", encoding="utf-8")  # noqa: SIM115 (kept open)
        self._handles[path].write(json.dumps(fields, sort_keys=True) + "\n")
        self._handles[path].flush()


def image_grid(images: Any) -> Any:
    """[B, C, H, W] in [0, 1] -> one grid image [1, C, H', W'] (torchvision's layout)."""
    from torchvision.utils import make_grid

    rows = math.ceil(math.sqrt(images.shape[0]))
    return make_grid(images, nrow=rows, padding=2)[None]


def flat_hparams(config: dict, prefix: str = "") -> dict[str, Any]:
    """A nested run config -> {"a.b": scalar} (trackers take scalars; lists become strings)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_hparams(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = json.dumps(value)
    return flat


def _phase_done(row: dict, seen: set, phases_done: int) -> bool:
    """Keep validation rows of the first ``phases_done`` completed phases."""
    seen.add(row["after_phase"])
    return len(seen) <= phases_done


def _rewrite(path: Path, keep) -> None:
    if not path.exists():
        return
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by the kill
            continue
        if keep(row):
            rows.append(line)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(f"{line}\n" for line in rows), encoding="utf-8")
    os.replace(tmp, path)
