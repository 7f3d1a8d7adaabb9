"""Checkpoint manifests: every file's size and sha256, kept in the COMPLETE marker, so damage
(a file cut short, a flipped byte, a file missing or added) is found before anything is loaded.

The marker is one JSON object:
    {"format": 1, "step": 120,
     "files": {"backbone.safetensors": {"size": 123, "sha256": "9f2c..."}, ...},
     "marker_sha256": "..."}    # sha256 of the canonical JSON of the other three keys
The self-hash makes damage to the marker itself detectable as well. A marker that holds only
the step number (checkpoints written before manifests) is *legacy*: it loads, with a warning
that its files cannot be verified.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..formats import is_bare_step_marker

COMPLETE_MARKER = "COMPLETE"
MANIFEST_FORMAT = 1
HASH_CHUNK = 1 << 20  # bytes read at a time while hashing
_SELF_HASH = "marker_sha256"


class CheckpointDamaged(ValueError):
    """A checkpoint's files do not match its manifest (or the marker is unreadable)."""

    def __init__(self, folder: Path, reason: str):
        self.folder, self.reason = Path(folder), reason
        super().__init__(f"checkpoint {self.folder} is damaged: {reason}")


def file_record(path: Path, sync: bool = False) -> dict[str, Any]:
    """{"size", "sha256"} of a file, read in chunks; ``sync`` also flushes it to disk."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
        if sync:
            os.fsync(handle.fileno())
    return {"size": path.stat().st_size, "sha256": digest.hexdigest()}


def checkpoint_files(folder: Path) -> list[str]:
    """Every file under ``folder`` except the marker, as sorted POSIX paths relative to it."""
    folder = Path(folder)
    found = (p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return sorted(name for name in found if name != COMPLETE_MARKER)


def build_manifest(folder: Path, step: int, sync: bool = True) -> dict[str, Any]:
    """Hash every file of a written checkpoint (flushing each to disk when ``sync``)."""
    files = {name: file_record(Path(folder) / name, sync) for name in checkpoint_files(folder)}
    return {"format": MANIFEST_FORMAT, "step": step, "files": files}


def marker_text(manifest: dict[str, Any]) -> str:
    """The COMPLETE marker for ``manifest``: its JSON plus a hash of that JSON."""
    return json.dumps({**manifest, _SELF_HASH: _self_hash(manifest)}, indent=1, sort_keys=True)


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest in ``folder``'s marker; None for a legacy marker (a bare step number).

    Raises CheckpointDamaged when the marker is missing, unreadable or altered.
    """
    folder = Path(folder)
    try:
        text = (folder / COMPLETE_MARKER).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = f"cannot read its {COMPLETE_MARKER} marker ({error})"
        raise CheckpointDamaged(folder, reason) from None
    if is_bare_step_marker(text):
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise CheckpointDamaged(folder, f"its {COMPLETE_MARKER} marker is not valid JSON") from None
    if not isinstance(data, dict) or _SELF_HASH not in data:
        raise CheckpointDamaged(folder, f"its {COMPLETE_MARKER} marker has no manifest hash")
    manifest = {key: value for key, value in data.items() if key != _SELF_HASH}
    if data[_SELF_HASH] != _self_hash(manifest) or manifest.get("format") != MANIFEST_FORMAT:
        raise CheckpointDamaged(folder, f"its {COMPLETE_MARKER} marker was altered")
    return manifest


def verify_checkpoint(folder: Path) -> dict[str, Any] | None:
    """Check every file of a complete checkpoint against its manifest (sizes first, then
    hashes; no file missing, none added). Returns the manifest, None for a legacy checkpoint;
    raises CheckpointDamaged naming the first problem."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        return None
    listed, present = set(manifest["files"]), set(checkpoint_files(folder))
    if present - listed:
        raise CheckpointDamaged(folder, f"{sorted(present - listed)[0]} is not in its manifest")
    verify_files(folder, manifest, sorted(listed))
    return manifest


def verify_files(folder: Path, manifest: dict[str, Any], names: list[str]) -> None:
    """Check the listed files of ``folder`` against ``manifest``; raise CheckpointDamaged."""
    folder = Path(folder)
    records = manifest["files"]
    for name in names:  # sizes first: a truncated file is found without hashing anything
        if name not in records:
            raise CheckpointDamaged(folder, f"{name} is not in its manifest")
        path = folder / name
        if not path.is_file():
            raise CheckpointDamaged(folder, f"{name} is missing")
        size = path.stat().st_size
        if size != records[name]["size"]:
            raise CheckpointDamaged(
                folder, f"{name} has {size} bytes, the manifest says {records[name]['size']}"
            )
    for name in names:
        if file_record(folder / name)["sha256"] != records[name]["sha256"]:
            raise CheckpointDamaged(folder, f"{name} does not match its sha256 in the manifest")


def _self_hash(manifest: dict[str, Any]) -> str:
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
