"""The run-folder lock: one holder at a time, released by the kernel when its holder dies."""

import errno
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from qgfd_diffusion.train.run_lock import (
    LOCK_FILE,
    NO_LOCK_FLAG,
    RunFolderLockError,
    lock_run_folder,
)

HOLDER = r"""
import sys, time
from qgfd_diffusion.train.run_lock import lock_run_folder
lock = lock_run_folder(sys.argv[1])
print("held", flush=True)
time.sleep(600)
"""


def start_holder(folder) -> subprocess.Popen:
    """A process that takes ``folder`` and sleeps; returns once it holds the lock."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_taker_is_refused_and_the_lock_returns_after_release(tmp_path):
    lock = lock_run_folder(tmp_path / "run")
    assert (tmp_path / "run" / LOCK_FILE).is_file()
    with pytest.raises(RunFolderLockError, match=f"pid {os.getpid()} on host"):
        lock_run_folder(tmp_path / "run")  # another open file: flock refuses it too
    lock.release()
    with lock_run_folder(tmp_path / "run"):
        pass


def test_the_message_names_the_folder_and_the_holding_process(tmp_path):
    holder = start_holder(tmp_path)
    try:
        with pytest.raises(RunFolderLockError) as refused:
            lock_run_folder(tmp_path)
        message = str(refused.value)
        assert str(tmp_path) in message and "\n" not in message
        assert f"pid {holder.pid} on host {socket.gethostname()}" in message
    finally:
        holder.kill()
        holder.wait()


def test_a_sigkilled_holder_leaves_no_stale_lock(tmp_path):
    holder = start_holder(tmp_path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    started = time.perf_counter()
    with lock_run_folder(tmp_path):  # at once: the kernel dropped the dead process's flock
        assert time.perf_counter() - started < 1.0
    assert (tmp_path / LOCK_FILE).is_file()  # the file stays; only the flock mattered


@pytest.mark.parametrize("code", [errno.ENOLCK, errno.EOPNOTSUPP])
def test_a_file_system_that_cannot_lock_is_an_error_naming_the_way_out(tmp_path, monkeypatch, code):
    import fcntl

    def refuse(fd, operation):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(fcntl, "flock", refuse)
    with pytest.raises(RunFolderLockError, match=f"does not support file locks.*{NO_LOCK_FLAG}"):
        lock_run_folder(tmp_path)
