"""Checkpoints as safetensors + JSON, written atomically and verified; loading never unpickles.

Layout of one checkpoint folder ``checkpoints/step-00000120/``:
    <part>.safetensors    the tensors of each part (model, ema, optimizer, rng, ...)
    <part>.json           the rest of that part: nested dicts/lists of plain values, with
                          {"__tensor__": key} where a tensor was
    adapters/<name>/      objects that save themselves (``save_pretrained``)
    COMPLETE              the manifest: every file's size and sha256 (see manifest.py)

A checkpoint is written into a temporary folder, every file flushed to disk and hashed into the
manifest, the marker written, and only then renamed into place: a ``step-*`` folder is complete
or absent, whatever moment a kill lands. After the rename the new checkpoint is verified (read
back against its manifest), and only then are older ones pruned, so the last verified checkpoint
is never deleted before a newer one has been verified.

Loading verifies: ``load_part`` checks the part's files against the manifest, and
``choose_resume_checkpoint`` verifies whole checkpoints newest first, setting damaged ones aside
(``step-*.damaged``) with one line each saying why. A write that fails (disk full, read-only
folder) raises ``CheckpointWriteError`` after removing its temporary folder; the previous
checkpoints are untouched.
"""

from __future__ import annotations

import errno
import json
import os
import random
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .manifest import (
    COMPLETE_MARKER,
    CheckpointDamaged,
    build_manifest,
    marker_text,
    read_manifest,
    verify_checkpoint,
    verify_files,
)

_STEP_DIR = re.compile(r"^step-(\d{8})$")
_TENSOR_KEY = "__tensor__"
TMP_PREFIX = ".tmp-"
DAMAGED_SUFFIX = ".damaged"


class CheckpointWriteError(OSError):
    """Writing a checkpoint failed (e.g. no space left, read-only folder); nothing of it was
    kept and the earlier checkpoints are as they were. ``errno`` is the underlying one."""


def split_tensors(state: Any, prefix: str = "") -> tuple[Any, dict[str, torch.Tensor]]:
    """Nested state -> (JSON-able skeleton, flat {key: tensor}) with tensors replaced by refs."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(node: Any, key: str) -> Any:
        if isinstance(node, torch.Tensor):
            tensors[key] = node.detach().cpu().contiguous()
            return {_TENSOR_KEY: key}
        if isinstance(node, dict):
            return {"__dict__": [[_plain_key(k), walk(v, f"{key}.{k}")] for k, v in node.items()]}
        if isinstance(node, (list, tuple)):
            items = [walk(v, f"{key}.{i}") for i, v in enumerate(node)]
            return {"__tuple__": items} if isinstance(node, tuple) else items
        if isinstance(node, np.ndarray):
            return {"__ndarray__": node.tolist(), "dtype": str(node.dtype)}
        if isinstance(node, (np.integer, np.floating)):
            return node.item()
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        raise TypeError(f"cannot checkpoint a {type(node).__name__} at {key!r}")

    return walk(state, prefix or "state"), tensors


def join_tensors(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of ``split_tensors``."""
    if isinstance(skeleton, list):
        return [join_tensors(v, tensors) for v in skeleton]
    if not isinstance(skeleton, dict):
        return skeleton
    if _TENSOR_KEY in skeleton:
        return tensors[skeleton[_TENSOR_KEY]]
    if "__tuple__" in skeleton:
        return tuple(join_tensors(v, tensors) for v in skeleton["__tuple__"])
    if "__ndarray__" in skeleton:
        return np.asarray(skeleton["__ndarray__"], dtype=skeleton["dtype"])
    if "__dict__" in skeleton:
        return {k: join_tensors(v, tensors) for k, v in skeleton["__dict__"]}
    raise ValueError(f"corrupt checkpoint skeleton entry: {str(skeleton)[:80]}")


def step_folder_name(step: int) -> str:
    return f"step-{step:08d}"


def save_checkpoint(
    checkpoints_dir: Path,
    step: int,
    parts: dict[str, Any],
    keep: int = 2,
    folders: dict[str, Callable[[Path], Any]] | None = None,
) -> Path:
    """Write ``parts`` ({name: nested state}) atomically as ``step-XXXXXXXX``, verify it, then
    keep the newest ``keep`` complete checkpoints.

    folders: {subfolder: writer(path)} for objects that save themselves (e.g. adapters'
    ``save_pretrained``); they are written inside the temporary folder too.
    Raises CheckpointWriteError when the disk refuses (nothing older is touched then).
    """
    checkpoints_dir = Path(checkpoints_dir)
    final = checkpoints_dir / step_folder_name(step)
    tmp = checkpoints_dir / f"{TMP_PREFIX}{final.name}-{os.getpid()}"
    try:
        checkpoints_dir.mkdir(parents=True, exist_ok=True)
        _clear_slot(final)
        _write_folder(tmp, step, parts, folders or {})
        os.replace(tmp, final)  # the commit: the folder arrives complete, marker included
        _fsync_dir(checkpoints_dir)
    except OSError as error:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _write_error(final, error) from error
    try:
        verify_checkpoint(final)  # read back before anything older is deleted
    except CheckpointDamaged as damage:
        raise _write_error(final, OSError(errno.EIO, damage.reason)) from damage
    prune_checkpoints(checkpoints_dir, keep)
    return final


def _write_folder(
    folder: Path, step: int, parts: dict[str, Any], folders: dict[str, Callable[[Path], Any]]
) -> None:
    """Every part and sub-folder, then the manifest of it all (each file flushed to disk)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for name, state in parts.items():
        save_part(folder, name, state)
    for name, write in folders.items():
        write(folder / name)
    manifest = build_manifest(folder, step, sync=True)
    _write_synced(folder / COMPLETE_MARKER, marker_text(manifest))
    for directory in [*(d for d in folder.rglob("*") if d.is_dir()), folder]:
        _fsync_dir(directory)


def _clear_slot(final: Path) -> None:
    """Remove what a damaged or unfinished checkpoint left at ``final``; refuse to replace a
    verified one (the trainer never writes the same step twice)."""
    if not final.exists():
        return
    if (final / COMPLETE_MARKER).is_file():
        try:
            verify_checkpoint(final)
        except CheckpointDamaged:
            pass
        else:
            raise ValueError(f"{final} is complete already: checkpoints are never rewritten")
    shutil.rmtree(final)


def _write_error(final: Path, error: OSError) -> CheckpointWriteError:
    try:
        previous = latest_checkpoint(final.parent)
    except OSError:
        previous = None
    kept = previous.name if previous is not None else "none yet"
    reason = error.strerror or str(error)
    failure = CheckpointWriteError(
        f"could not write checkpoint {final.name} in {final.parent}: {reason}; "
        f"the newest complete checkpoint ({kept}) is intact"
    )
    failure.errno = error.errno
    return failure


def save_part(folder: Path, name: str, state: Any) -> None:
    """One part as ``<name>.safetensors`` + ``<name>.json`` (flushed by the manifest pass)."""
    skeleton, tensors = split_tensors(state, name)
    save_file(tensors, str(folder / f"{name}.safetensors"))
    (folder / f"{name}.json").write_text(json.dumps(skeleton))


def load_part(folder: Path, name: str) -> Any:
    """One part of a complete checkpoint, its files checked against the manifest first
    (CheckpointDamaged when they differ; legacy checkpoints load unchecked)."""
    folder = Path(folder)
    files = [f"{name}.safetensors", f"{name}.json"]
    for file in files:
        if not (folder / file).is_file():
            raise FileNotFoundError(f"checkpoint part missing: {folder / file}")
    if not (folder / COMPLETE_MARKER).is_file():
        raise CheckpointDamaged(folder, f"it is incomplete (no {COMPLETE_MARKER} marker)")
    manifest = read_manifest(folder)
    if manifest is not None:
        verify_files(folder, manifest, files)
    try:
        tensors = load_file(str(folder / files[0]))
        skeleton = json.loads((folder / files[1]).read_text())
        return join_tensors(skeleton, tensors)
    except Exception as error:  # safetensors raises its own error types on corrupt files
        raise CheckpointDamaged(folder, f"part {name!r} does not load: {error}") from None


def complete_checkpoints(checkpoints_dir: Path) -> list[Path]:
    """Checkpoint folders with a COMPLETE marker (not yet verified), oldest first."""
    checkpoints_dir = Path(checkpoints_dir)
    if not checkpoints_dir.is_dir():
        return []
    found = [
        d
        for d in checkpoints_dir.iterdir()
        if _STEP_DIR.match(d.name) and (d / COMPLETE_MARKER).is_file()
    ]
    return sorted(found, key=lambda d: int(_STEP_DIR.match(d.name).group(1)))


def latest_checkpoint(checkpoints_dir: Path) -> Path | None:
    found = complete_checkpoints(checkpoints_dir)
    return found[-1] if found else None


def prune_checkpoints(checkpoints_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` (>= 1) complete checkpoints, and step folders that
    never got a marker. Call it only once the newest has been verified."""
    checkpoints_dir = Path(checkpoints_dir)
    complete = complete_checkpoints(checkpoints_dir)
    for old in complete[: -max(1, keep)]:
        shutil.rmtree(old, ignore_errors=True)
    for folder in checkpoints_dir.iterdir():
        if folder.is_dir() and folder not in complete and _STEP_DIR.match(folder.name):
            shutil.rmtree(folder, ignore_errors=True)  # renamed but never marked (old writers)


def remove_incomplete(checkpoints_dir: Path) -> list[Path]:
    """Delete what a killed writer left behind: temporary folders and unmarked step folders.

    Call it only when no other process writes checkpoints here (e.g. when resuming a run).
    """
    checkpoints_dir = Path(checkpoints_dir)
    if not checkpoints_dir.is_dir():
        return []
    complete = set(complete_checkpoints(checkpoints_dir))
    stale = sorted(
        d
        for d in checkpoints_dir.iterdir()
        if d.is_dir()
        and d not in complete
        and (d.name.startswith(TMP_PREFIX) or _STEP_DIR.match(d.name))
    )
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)
    return stale


@dataclass
class ResumeChoice:
    """Where ``--resume`` continues: the newest verified checkpoint (None: there is none)."""

    folder: Path | None
    notes: list[str] = field(default_factory=list)  # one line per folder passed over, and why
    damaged: list[Path] = field(default_factory=list)  # complete ones that failed verification


def choose_resume_checkpoint(checkpoints_dir: Path) -> ResumeChoice:
    """Clean up unfinished writes, then verify complete checkpoints newest first: the first
    that verifies (or a legacy one, which cannot be verified) is chosen; each damaged one is
    renamed ``step-*.damaged`` so that nothing loads it and the run can write that step again.
    """
    checkpoints_dir = Path(checkpoints_dir)
    choice = ResumeChoice(None)
    for folder in remove_incomplete(checkpoints_dir):
        choice.notes.append(f"removed {folder.name}: an unfinished checkpoint write")
    for folder in reversed(complete_checkpoints(checkpoints_dir)):
        try:
            manifest = verify_checkpoint(folder)
        except CheckpointDamaged as damage:
            aside = _set_aside(folder)
            choice.damaged.append(folder)
            choice.notes.append(f"skipping {folder.name}: {damage.reason} (moved to {aside.name})")
            continue
        if manifest is None:
            choice.notes.append(
                f"{folder.name} has no manifest (written before checkpoints were verified): "
                "loading it unverified"
            )
        choice.folder = folder
        break
    return choice


def _set_aside(folder: Path) -> Path:
    aside = folder.with_name(folder.name + DAMAGED_SUFFIX)
    shutil.rmtree(aside, ignore_errors=True)
    os.replace(folder, aside)
    return aside


def capture_rng_state() -> dict[str, Any]:
    """Every RNG a training step can touch: Python, NumPy, torch CPU (and CUDA when present)."""
    version, internal, gauss = random.getstate()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": list(np.random.get_state()),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(tuple(state["numpy"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _plain_key(key: Any) -> Any:
    if isinstance(key, (str, int)):
        return key
    raise TypeError(f"cannot checkpoint a dict key of type {type(key).__name__}")


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
