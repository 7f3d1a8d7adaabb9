"""One process per run folder: an exclusive lock held by a training run for its whole life.

Two trainers on one folder would interleave their checkpoints and cut each other's
``metrics.jsonl``. Like git's ``index.lock``, a run takes the folder before it reads or writes
anything in it; unlike a lock *file* (whose existence is the lock, and which a killed process
leaves behind), the lock here is the kernel's advisory ``flock`` on ``<run>/.qgfd-run.lock``:
the kernel drops it when the holding process exits or is killed (SIGKILL included), so a dead
run never leaves a stale lock and ``--resume`` continues at once. The file itself stays, holding
one JSON line about its last holder (pid, host, start time) for the message a second trainer
prints.

``flock`` is advisory: it binds only processes that ask for it (every ``qgfd train`` does;
``qgfd sample`` does not, since it reads only verified checkpoints and a complete ``final/``).
Where the file system cannot lock (some network file systems), locking is an error that says
so and names the way out (``--no-lock``), never a silent pass. Written with ``fcntl`` because
neither the standard library nor the ecosystem's ``filelock`` package reports who holds a
lock; on platforms without ``fcntl`` (Windows) runs need ``--no-lock``.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .errors import TrainingError

LOCK_FILE = ".qgfd-run.lock"
NO_LOCK_FLAG = "--no-lock"
# errnos of a file system that cannot lock (as opposed to a lock that someone else holds)
UNSUPPORTED_ERRNOS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)


class RunFolderLockError(TrainingError):
    """The run folder cannot be taken: another process holds it, or it cannot be locked."""


@dataclass
class RunFolderLock:
    """A held lock on a run folder; ``release()`` (or process exit) gives it back."""

    path: Path
    handle: IO[str] | None

    def release(self) -> None:
        if self.handle is not None:
            self.handle.close()  # closing the last descriptor drops the flock
            self.handle = None

    def __enter__(self) -> RunFolderLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def lock_run_folder(folder: str | Path) -> RunFolderLock:
    """Take ``folder`` for this process (creating it), or raise ``RunFolderLockError``.

    Non-blocking: a folder held by a live process is refused at once, with the holder's pid
    and host in the message.
    """
    try:
        import fcntl
    except ImportError:  # no flock on this platform
        raise RunFolderLockError(_unsupported(Path(folder), "no fcntl on this platform")) from None
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    handle = open(path, "a+", encoding="utf-8")  # never truncated before we hold it
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        handle.close()
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise RunFolderLockError(
                f"{folder} is in use by another training process ({read_holder(path)}); "
                "wait for it to finish or stop it (two runs in one folder would overwrite "
                "each other's checkpoints and logs)"
            ) from None
        if error.errno in UNSUPPORTED_ERRNOS:
            raise RunFolderLockError(_unsupported(folder, os.strerror(error.errno))) from None
        raise
    _write_holder(handle)
    return RunFolderLock(path, handle)


def read_holder(path: Path) -> str:
    """'pid P on host H since T' from a lock file, or what is known when it cannot be read."""
    try:
        holder = json.loads(path.read_text(encoding="utf-8").strip() or "{}")
    except (OSError, ValueError):
        holder = {}
    if "pid" not in holder:
        return "holder not recorded yet"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    return f"pid {holder['pid']} on host {holder.get('host', '?')} since {started}"


def _write_holder(handle: IO[str]) -> None:
    handle.seek(0)
    handle.truncate()
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    handle.write(json.dumps(holder) + "\n")
    handle.flush()


def _unsupported(folder: Path, reason: str) -> str:
    return (
        f"cannot lock the run folder {folder} ({reason}): this file system does not support "
        f"file locks; if you are sure no other process trains in it, pass {NO_LOCK_FLAG} to "
        "run without the lock"
    )
