"""The run folder: opened once at the start of a run, where the resume choice is made.

``open_run_folder`` is the one way into a run folder (``output_dir``): the main process first
takes the folder's lock (``run_lock``: one training process per folder, held for the whole
run, released by the kernel if the process dies), then it refuses a folder that already holds a
run unless resuming, writes the resolved ``config.json`` and, with ``resume``, picks the
checkpoint to go on from. Everything the run reads or writes in the folder (the resume cut-back
of the logs included) happens under the lock. Other ranks of a multi-process run never take
it: they follow the main process's verdict.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from accelerate.utils import broadcast_object_list

from .checkpoint import choose_resume_checkpoint
from .config import RunConfig
from .errors import TrainingError
from .run_lock import RunFolderLock, lock_run_folder

log = logging.getLogger(__name__)  # one line per note: resume choices


@dataclass
class OpenRunFolder:
    """A run folder taken by this run: the checkpoint to resume from (None: step 0) and the
    folder's lock (None on other ranks and with ``lock=False``), to release when the run ends."""

    checkpoint: Path | None
    lock: RunFolderLock | None

    def close(self) -> None:
        if self.lock is not None:
            self.lock.release()


def open_run_folder(
    out: Path, config: RunConfig, *, resume: bool, is_main: bool = True, lock: bool = True
) -> OpenRunFolder:
    """Take ``out`` for a run (see the module docstring).

    lock: take the folder's lock (main process); False only where the file system cannot lock
    and nothing else trains in the folder (``qgfd train --no-lock``).
    With ``resume``, the main process picks the newest verified checkpoint, setting damaged
    ones aside (``choose_resume_checkpoint``), and tells every process. A folder with no
    complete checkpoint holds only what a run stopped before its first one left behind: the run
    starts from the beginning. One with complete checkpoints of which none verifies is an
    error: the damage needs a look, not a silent restart.
    """
    verdict = [None, None]  # [checkpoint folder, error], decided once for all processes
    held = None
    if is_main:
        try:
            held = lock_run_folder(out) if lock else None
            verdict = _open(out, config, resume)
        except TrainingError as error:  # told to every rank, so none waits for the others
            verdict = [None, str(error)]
    folder, error = broadcast_object_list(verdict)
    if error is not None:
        if held is not None:
            held.release()
        raise TrainingError(error)
    return OpenRunFolder(None if folder is None else Path(folder), held)


def _open(out: Path, config: RunConfig, resume: bool) -> list[str | None]:
    """The main process's part, under the lock: refuse a used folder unless resuming, write the
    config, choose the checkpoint."""
    holds_run = (out / "metrics.jsonl").exists() or (out / "checkpoints").exists()
    if holds_run and not resume:
        raise TrainingError(
            f"{out} already holds a run: pass --resume to continue it, "
            "or choose another --output-dir"
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    return _choose_checkpoint(out) if resume else [None, None]


def _choose_checkpoint(out: Path) -> list[str | None]:
    checkpoints = out / "checkpoints"
    choice = choose_resume_checkpoint(checkpoints)
    for note in choice.notes:
        log.warning(note)
    if choice.folder is not None:
        log.info(f"resuming from {choice.folder}")
        return [str(choice.folder), None]
    if choice.damaged:
        names = ", ".join(folder.name for folder in choice.damaged)
        return [None, f"no verified checkpoint left in {checkpoints} (damaged: {names})"]
    log.warning(f"no complete checkpoint in {out} yet: starting from the beginning")
    return [None, None]
