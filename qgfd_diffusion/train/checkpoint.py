"""Checkpoints as safetensors + JSON, written atomically; loading never unpickles.

Layout of one checkpoint folder ``checkpoints/step-00000120/``:
    <part>.safetensors    the tensors of each part (model, ema, optimizer, rng, ...)
    <part>.json           the rest of that part: nested dicts/lists of plain values, with
                          {"__tensor__": key} where a tensor was
    COMPLETE              written last; a folder without it is ignored and cleaned up

A checkpoint is written into a temporary folder, flushed to disk, renamed into place, then
marked complete, so a kill at any moment leaves the newest complete checkpoint loadable.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

COMPLETE_MARKER = "COMPLETE"
_STEP_DIR = re.compile(r"^step-(\d{8})$")
_TENSOR_KEY = "__tensor__"


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


def save_checkpoint(
    checkpoints_dir: Path,
    step: int,
    parts: dict[str, Any],
    keep: int = 2,
    folders: dict[str, Callable[[Path], Any]] | None = None,
) -> Path:
    """Write ``parts`` ({name: nested state}) atomically as ``step-XXXXXXXX``; keep the newest
    ``keep`` complete checkpoints.

    folders: {subfolder: writer(path)} for objects that save themselves (e.g. adapters'
    ``save_pretrained``); they are written inside the temporary folder too.
    """
    checkpoints_dir = Path(checkpoints_dir)
    checkpoints_dir.mkdir(parents=True, exist_ok=True)
    final = checkpoints_dir / f"step-{step:08d}"
    tmp = checkpoints_dir / f".tmp-step-{step:08d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for name, state in parts.items():
        save_part(tmp, name, state)
    for name, write in (folders or {}).items():
        write(tmp / name)
    _fsync_dir(tmp)
    if final.exists():  # an incomplete leftover of the same step (complete ones are never redone)
        shutil.rmtree(final)
    os.replace(tmp, final)
    _write_synced(final / COMPLETE_MARKER, str(step))
    _fsync_dir(checkpoints_dir)
    prune_checkpoints(checkpoints_dir, keep)
    return final


def save_part(folder: Path, name: str, state: Any) -> None:
    skeleton, tensors = split_tensors(state, name)
    save_file(tensors, str(folder / f"{name}.safetensors"))
    _write_synced(folder / f"{name}.json", json.dumps(skeleton))
    _fsync_file(folder / f"{name}.safetensors")


def load_part(folder: Path, name: str) -> Any:
    folder = Path(folder)
    tensor_file, json_file = folder / f"{name}.safetensors", folder / f"{name}.json"
    for file in (tensor_file, json_file):
        if not file.is_file():
            raise FileNotFoundError(f"checkpoint part missing: {file}")
    try:
        tensors = load_file(str(tensor_file))
        skeleton = json.loads(json_file.read_text())
    except Exception as error:  # safetensors raises its own error types on corrupt files
        raise ValueError(f"corrupt checkpoint part {name!r} in {folder}: {error}") from None
    return join_tensors(skeleton, tensors)


def complete_checkpoints(checkpoints_dir: Path) -> list[Path]:
    """Complete checkpoint folders, oldest first."""
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
    """Delete incomplete folders and all but the newest ``keep`` (>= 1) complete checkpoints."""
    checkpoints_dir = Path(checkpoints_dir)
    complete = complete_checkpoints(checkpoints_dir)
    for old in complete[: -max(1, keep)]:
        shutil.rmtree(old, ignore_errors=True)
    for folder in checkpoints_dir.iterdir():
        if folder.is_dir() and folder not in complete and not folder.name.startswith(".tmp-"):
            if _STEP_DIR.match(folder.name):
                shutil.rmtree(folder, ignore_errors=True)  # renamed but never marked complete


def remove_incomplete(checkpoints_dir: Path) -> list[Path]:
    """Delete what a killed writer left behind: temporary folders and unmarked step folders.

    Call it only when no other process writes checkpoints here (e.g. when resuming a run).
    """
    checkpoints_dir = Path(checkpoints_dir)
    if not checkpoints_dir.is_dir():
        return []
    complete = set(complete_checkpoints(checkpoints_dir))
    stale = [
        d
        for d in checkpoints_dir.iterdir()
        if d.is_dir()
        and d not in complete
        and (d.name.startswith(".tmp-") or _STEP_DIR.match(d.name))
    ]
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)
    return stale


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


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
