"""One daemon per state dir: the daemon lock (state/daemon.lock) and who holds it.

It is the same lock as the sweep lock (fs.locks.SweepLock: an flock on a file in the state dir with the
holder's pid written inside), on a file of its own, held for the daemon's whole life. One daemon per Claude
dir, whatever its state dir, is fs.locks.RootLock's.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from claude_janitor.config.paths import JanitorDirs
from claude_janitor.errors import LockBusy
from claude_janitor.fs.locks import SweepLock
from claude_janitor.fs.procs import pid_alive


def daemon_lock_path(dirs: JanitorDirs) -> Path:
    return dirs.state / "daemon.lock"


def _pid_in(fd: int) -> str:
    """The pid written in a lock file (as text; "" if none could be read)."""
    return os.pread(fd, 32, 0).decode(errors="replace").strip()


class DaemonLock:
    """One daemon per state dir: an flock held for the daemon's life (its pid written inside)."""

    def __init__(self, dirs: JanitorDirs) -> None:
        self.path = daemon_lock_path(dirs)
        self._lock = SweepLock(self.path, wait=0.0)

    def acquire(self) -> None:
        try:
            self._lock.__enter__()
        except LockBusy:
            pid = ""
            with contextlib.suppress(OSError):
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    pid = _pid_in(fd)
                finally:
                    os.close(fd)
            raise LockBusy(f"a janitor daemon is already running (pid {pid or '?'}; lock {self.path})") from None

    def release(self) -> None:
        self._lock.__exit__(None, None, None)


def running_pid(dirs: JanitorDirs) -> int | None:
    """The pid of the daemon holding this state dir's daemon lock, or None if no daemon holds it
    (-1: held, but the pid in it cannot be read)."""
    path = daemon_lock_path(dirs)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                pid = int(_pid_in(fd))
            except ValueError:
                return -1
            return pid if pid_alive(pid) else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
