"""Locks keyed to a Claude dir itself, whatever the janitor's state dir: one sweeper per Claude dir.

The state dir's locks (safefs.SweepLock, daemon.DaemonLock) only keep apart janitors that share a state dir;
two janitors started with different ``XDG_STATE_HOME`` (a service and a shell, two users' setups pointed at
one cache) would both sweep the same cache, each with its own audit log. So, for each Claude dir:

- the daemon holds an flock on the Claude dir itself (an fd of the directory; nothing is written there) for
  its whole life: a second daemon on the same Claude dir exits 3, whatever its state dir;
- every sweep (the daemon's wake-ups and full sweeps, ``janitor sweep``) holds an flock on
  ``<claude dir>/.claude-janitor-sweep.lock`` while it sweeps: a one-shot sweep started while any janitor
  sweeps that Claude dir exits 3 (or waits with ``--wait``), and the daemon retries later.

A Claude dir that does not exist (yet) is not locked: there is nothing in it to sweep. One where the lock file
cannot be made (read-only) is swept without it, with a warning: nothing there can be removed either.
flock is per open file: the daemon hands its sweep-lock fds to its full sweep's process, which holds them
with it (and on its own if the daemon dies).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
import time
from collections.abc import Iterable
from pathlib import Path

from .model import LockBusy

log = logging.getLogger(__name__)

SWEEP_LOCK_NAME = ".claude-janitor-sweep.lock"


def holder(fd: int) -> int | None:
    """The pid holding an flock on the file open at ``fd`` (from /proc/locks; None if unknown)."""
    try:
        st = os.fstat(fd)
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    want = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in lines:
        parts = line.split()
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5] == want and parts[4].isdigit():
            return int(parts[4])
    return None


def _flock(fd: int, what: str, wait: float) -> None:
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                pid = holder(fd)
                raise LockBusy(f"{what} (held by pid {pid or '?'})") from None
            time.sleep(0.1)


class RootDaemonLock:
    """For a daemon's life: an flock on each (existing) Claude dir. LockBusy if another daemon holds one."""

    def __init__(self, roots: Iterable[str | Path]) -> None:
        self.roots = [str(r) for r in roots]
        self.fds: dict[str, int] = {}

    def acquire(self) -> None:
        """Lock every Claude dir that exists and is not locked by us yet (called again as dirs appear)."""
        for root in self.roots:
            if root in self.fds:
                continue
            try:
                fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                continue  # not there (yet): nothing to sweep in it
            try:
                _flock(fd, f"a janitor daemon already sweeps {root}", 0.0)
            except BaseException:
                os.close(fd)
                raise
            self.fds[root] = fd

    def release(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()


class RootSweepLock:
    """While sweeping: an flock on ``<root>/.claude-janitor-sweep.lock`` of each Claude dir (all or none)."""

    def __init__(self, roots: Iterable[str | Path], *, wait: float = 0.0) -> None:
        self.roots = [str(r) for r in roots]
        self.wait = wait
        self.fds: list[int] = []

    def __enter__(self) -> RootSweepLock:
        deadline = time.monotonic() + self.wait
        try:
            for root in self.roots:
                fd = _open_lock(root)
                if fd is None:
                    continue
                self.fds.append(fd)
                _flock(fd, f"another sweep is running on {root} (lock {os.path.join(root, SWEEP_LOCK_NAME)}); "
                           "try again later or pass --wait SECONDS", max(0.0, deadline - time.monotonic()))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in self.fds:
            os.close(fd)  # closing the last fd of the open file releases its flock
        self.fds.clear()


def _open_lock(root: str) -> int | None:
    """The lock file's fd (made if missing; never a link, a FIFO or a device), or None if it cannot be had."""
    path = os.path.join(root, SWEEP_LOCK_NAME)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
    except OSError as e:
        if e.errno not in (errno.ENOENT, errno.ENOTDIR):
            log.warning("cannot lock %s (%s): sweeping it without its lock", root, e.strerror or e)
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        log.warning("%s is not a regular file: sweeping %s without its lock", path, root)
        return None
    return fd


class SweepLocks:
    """Every lock a sweep holds: the state dir's (safefs.SweepLock), then each Claude dir's sweep lock.

    ``fds``: the open lock files, for a process that sweeps with us (the daemon's full-sweep child)."""

    def __init__(self, state_lock: Path, roots: Iterable[str | Path], *, wait: float = 0.0) -> None:
        from .safefs import SweepLock

        self.state = SweepLock(state_lock, wait=wait)
        self.roots = RootSweepLock(roots, wait=wait)

    def __enter__(self) -> SweepLocks:
        start = time.monotonic()
        self.state.__enter__()
        try:
            self.roots.wait = max(0.0, self.state.wait - (time.monotonic() - start))
            self.roots.__enter__()
        except BaseException:
            self.state.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.roots.__exit__()
        self.state.__exit__(None, None, None)

    @property
    def fds(self) -> list[int]:
        return ([self.state.fd] if self.state.fd >= 0 else []) + list(self.roots.fds)


def hold_inherited(fds: Iterable[int]) -> None:
    """In the daemon's full-sweep child: the daemon's lock fds (the same open files, so already ours) are
    held here too, and on our own if the daemon dies. LockBusy if one is not ours after all."""
    for fd in fds:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockBusy("another sweep holds the sweep lock") from None
        os.set_inheritable(fd, False)
