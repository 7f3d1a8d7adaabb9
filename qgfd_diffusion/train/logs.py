"""Run logs: metrics.jsonl (one line per optimiser step), validation.jsonl, TensorBoard.

Only the main process writes. On resume the JSONL files are cut back to the checkpoint, so a
resumed run's logs equal those of an uninterrupted one (timing fields aside).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

TIMING_FIELDS = ("samples_per_sec",)  # the only fields that differ between identical runs


def silence_library_progress_bars() -> None:
    """transformers and diffusers draw their own bars when saving and loading weights; a run
    started with ``--no-progress`` (CI, log files) wants none."""
    import diffusers.utils.logging
    import transformers.utils.logging

    transformers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.disable_progress_bar()


class MetricsLog:
    def __init__(self, run_dir: Path, *, enabled: bool, tensorboard: bool = True):
        self.metrics_file = run_dir / "metrics.jsonl"
        self.validation_file = run_dir / "validation.jsonl"
        self.enabled = enabled
        self._handles: dict[Path, Any] = {}
        self._writer = None
        if enabled and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(run_dir / "tensorboard"))

    def step(self, **fields: Any) -> None:
        self._append(self.metrics_file, fields)
        if self._writer is not None:
            for key in ("loss", "lr", "grad_norm"):
                self._writer.add_scalar(f"train/{key}", fields[key], fields["step"])

    def validation(self, **fields: Any) -> None:
        self._append(self.validation_file, fields)
        if self._writer is not None:
            tag = f"validation/{fields['phase']}_after_{fields['after_phase']}"
            self._writer.add_scalar(tag, fields["loss"], fields["step"])

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
        if self._writer is not None:
            self._writer.flush()

    def close_files(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()

    def close(self) -> None:
        self.close_files()
        if self._writer is not None:
            self._writer.close()

    def _append(self, path: Path, fields: dict) -> None:
        if not self.enabled:
            return
        if path not in self._handles:
            self._handles[path] = open(path, "a", encoding="utf-8")  # noqa: SIM115 (kept open)
        self._handles[path].write(json.dumps(fields, sort_keys=True) + "\n")
        self._handles[path].flush()


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
