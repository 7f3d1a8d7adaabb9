"""The run folder: opened once at the start of a run, where the resume choice is made.

``open_run_folder`` is the one way into a run folder (``output_dir``): it refuses a folder that
already holds a run unless resuming, writes the resolved ``config.json`` and, with ``resume``,
picks the checkpoint to go on from. Anything that must hold while a run owns its folder starts
here.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from accelerate.utils import broadcast_object_list

from .checkpoint import choose_resume_checkpoint
from .config import RunConfig
from .errors import TrainingError

log = logging.getLogger(__name__)  # one line per note: resume choices


def open_run_folder(
    out: Path, config: RunConfig, *, resume: bool, is_main: bool = True
) -> Path | None:
    """Open ``out`` for a run; returns the checkpoint to resume from (None: start from step 0).

    With ``resume``, the main process picks the newest verified checkpoint, setting damaged
    ones aside (``choose_resume_checkpoint``), and tells every process. A folder with no
    complete checkpoint holds only what a run stopped before its first one left behind: the run
    starts from the beginning. One with complete checkpoints of which none verifies is an
    error: the damage needs a look, not a silent restart.
    """
    holds_run = (out / "metrics.jsonl").exists() or (out / "checkpoints").exists()
    if holds_run and not resume:
        raise TrainingError(
            f"{out} already holds a run: pass --resume to continue it, "
            "or choose another --output-dir"
        )
    verdict = [None, None]  # [checkpoint folder, error], decided once for all processes
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
        if resume:
            verdict = _choose_checkpoint(out)
    folder, error = broadcast_object_list(verdict)
    if error is not None:
        raise TrainingError(error)
    return None if folder is None else Path(folder)


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
