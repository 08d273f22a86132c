"""Locks keyed to a Claude dir itself, whatever the janitor's state dir: one sweeper per Claude dir.

The state dir's locks (SweepLock below, the daemon's instance lock) only keep apart janitors that share a state dir;
two janitors started with different ``XDG_STATE_HOME`` (a service and a shell, two setups pointed at one
cache) would both sweep the same cache, each with its own audit log. So each Claude dir is locked itself: an
flock on an fd of the directory (nothing is written into it, nothing changes on disk).

- A daemon holds it for its whole life: a second daemon on the same Claude dir exits 3, whatever its state
  dir. Its full-sweep process holds it with it (the same open file, passed down), and on its own if the
  daemon is killed.
- ``janitor sweep`` holds it for its run: busy (exit 3, or ``--wait``) while another janitor sweeps that
  Claude dir — unless the holder is the daemon of its own state dir, which the state dir's sweep lock
  (taken first) already keeps from sweeping meanwhile.

A Claude dir that does not exist (yet) is not locked: there is nothing in it to sweep; a daemon locks it
once it appears (before its first sweep there).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from claude_janitor.errors import LockBusy


class SweepLock:
    """An exclusive flock on the state dir's lock file: one sweep at a time (daemon or one-shot)."""

    def __init__(self, path: Path, *, wait: float = 0.0) -> None:
        self.path = path
        self.wait = wait
        self.fd = -1

    def __enter__(self) -> SweepLock:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(self.fd)
                    self.fd = -1
                    raise LockBusy(
                        f"another sweep is running (lock {self.path} is held); try again later or pass --wait SECONDS"
                    ) from None
                time.sleep(0.1)
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd >= 0:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = -1


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


def is_daemon(pid: int | None) -> bool:
    """Whether ``pid`` is a `janitor daemon` (or its full-sweep process)."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        return False
    return b"daemon" in args or b"_daemon-full-sweep" in args


class RootLock:
    """An flock on each (existing) Claude dir of ``roots``, all or none at each ``acquire``."""

    def __init__(self, roots: Iterable[str | Path]) -> None:
        self.roots = [str(r) for r in roots]
        self.held: dict[str, int] = {}

    def acquire(self, *, wait: float = 0.0, allow: Callable[[], int | None] | None = None) -> None:
        """Lock every Claude dir that exists and is not locked by us yet (called again as dirs appear).
        ``allow``: gives (asked only when a dir is busy) a pid whose hold on a Claude dir is accepted (that
        dir is then left to it). LockBusy, naming the holder, if another process holds one after ``wait``."""
        deadline = time.monotonic() + wait
        got: dict[str, int] = {}
        allowed: list[int | None] = []
        try:
            for root in self.roots:
                if root in self.held:
                    continue
                try:
                    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                except OSError:
                    continue  # not there (yet): nothing to sweep in it
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        got[root] = fd
                        break
                    except BlockingIOError:
                        pid = holder(fd)
                        if allow is not None and not allowed:
                            allowed.append(allow())
                        if pid is not None and allowed and pid == allowed[0]:
                            os.close(fd)
                            break
                        if time.monotonic() >= deadline:
                            os.close(fd)
                            who = "a janitor daemon" if is_daemon(pid) else "another janitor sweep"
                            raise LockBusy(f"{who} (pid {pid or '?'}) already sweeps {root}") from None
                        time.sleep(0.1)
        except BaseException:
            for fd in got.values():
                os.close(fd)
            raise
        self.held.update(got)

    def release(self) -> None:
        for fd in self.held.values():
            os.close(fd)  # closing the last fd of the open file releases its flock
        self.held.clear()

    @property
    def fds(self) -> list[int]:
        return list(self.held.values())


class SweepLocks:
    """Every lock a one-shot sweep holds: the state dir's (fs/locks.SweepLock), then each Claude dir's."""

    def __init__(
        self,
        state_lock: Path,
        roots: Iterable[str | Path],
        *,
        wait: float = 0.0,
        daemon_pid: Callable[[], int | None] | None = None,
    ) -> None:

        self.state = SweepLock(state_lock, wait=wait)
        self.roots = RootLock(roots)
        self.daemon_pid = daemon_pid

    def __enter__(self) -> SweepLocks:
        start = time.monotonic()
        self.state.__enter__()
        try:
            self.roots.acquire(wait=max(0.0, self.state.wait - (time.monotonic() - start)), allow=self.daemon_pid)
        except LockBusy as e:
            self.state.__exit__(None, None, None)
            raise LockBusy(f"{e}; try again later or pass --wait SECONDS") from None
        except BaseException:
            self.state.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.roots.release()
        self.state.__exit__(None, None, None)


def hold_inherited(fds: Iterable[int]) -> None:
    """In the daemon's full-sweep child: the daemon's lock fds (the same open files, so already ours) are
    held here too, and on our own if the daemon dies. LockBusy if one is not ours after all."""
    for fd in fds:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockBusy("another sweep holds the sweep lock") from None
        os.set_inheritable(fd, False)
