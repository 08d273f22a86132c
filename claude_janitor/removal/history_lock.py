"""Claude Code's history lock (proper-lockfile's lock folder ``history.jsonl.lock``, see history.py): taken
by mkdir, waited for while live, taken over once stale for more than 10 s, refreshed every 2 s while held.
"""

from __future__ import annotations

import os
import stat
import threading
import time

from claude_janitor.removal.history_lines import NAME

LOCK = NAME + ".lock"
STALE = 10.0  # proper-lockfile's default, which Claude Code uses: a lock folder older than this is abandoned
REFRESH = 2.0  # while held, the lock folder's mtime is refreshed this often
LOCK_WAIT = 15.0  # how long to wait for the lock: longer than STALE, so an abandoned lock is taken over


class HistoryBusy(Exception):
    """The lock folder could not be taken (Claude Code is writing), or was lost: nothing was changed."""


class Lock:
    """Claude Code's history lock: the folder ``history.jsonl.lock`` (mkdir), stale after 10 s."""

    def __init__(self, dir_fd: int) -> None:
        self.dir_fd = dir_fd
        self.ino: int | None = None
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self, wait: float = LOCK_WAIT) -> None:
        deadline = time.monotonic() + wait
        while True:
            try:
                os.mkdir(LOCK, 0o700, dir_fd=self.dir_fd)
            except FileExistsError:
                try:
                    st = os.stat(LOCK, dir_fd=self.dir_fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if time.time() - st.st_mtime > STALE and stat.S_ISDIR(st.st_mode) and self._take_over(st):
                    continue
                if time.monotonic() >= deadline:
                    raise HistoryBusy(f"{LOCK} is held (Claude Code is writing its history)") from None
                time.sleep(0.05)
                continue
            self.ino = os.stat(LOCK, dir_fd=self.dir_fd, follow_symlinks=False).st_ino
            break
        self._thread = threading.Thread(target=self._refresh, name="janitor-history-lock", daemon=True)
        self._thread.start()

    def _take_over(self, seen: os.stat_result) -> bool:
        """Remove a lock folder abandoned for more than STALE seconds (the same one that was judged);
        False if it could not be (e.g. something was put in it): then it is waited for like a live one."""
        try:
            st = os.stat(LOCK, dir_fd=self.dir_fd, follow_symlinks=False)
            if st.st_ino == seen.st_ino and st.st_mtime == seen.st_mtime:
                os.rmdir(LOCK, dir_fd=self.dir_fd)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        return True

    def _refresh(self) -> None:
        while not self._stop.wait(REFRESH):
            if not self.held():
                self.lost = True
                return
            try:
                os.utime(LOCK, dir_fd=self.dir_fd, follow_symlinks=False)
            except OSError:
                self.lost = True
                return

    def held(self) -> bool:
        try:
            return os.stat(LOCK, dir_fd=self.dir_fd, follow_symlinks=False).st_ino == self.ino
        except OSError:
            return False

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.ino is not None and self.held():
            try:
                os.rmdir(LOCK, dir_fd=self.dir_fd)
            except OSError:
                pass
        self.ino = None

    def __enter__(self) -> Lock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
