"""Watching each root's projects/ for transcript changes, reported in batches.

Only what the index needs is reported: a transcript (``projects/<project>/<id>.jsonl``) written (created,
appended, touched, moved in) or gone (deleted, moved out), and a project dir (or projects/ itself) gone.
Events are collected by a reader thread and handed over, coalesced per path, from a flush thread a moment
later, so a transcript being appended to costs one index update per ``debounce`` seconds at most.

On Linux the watcher uses inotify directly and watches exactly two levels: projects/ and each project dir
in it (1 + the number of projects watches). Per-session folders, subagent transcripts and tool results are
never watched: a recursive watch would hold one watch per folder (~30k for a 10k-session cache, ~20 MB
in the daemon) and wake the daemon for every file a sweep removes inside them. Elsewhere (macOS) watchdog
watches projects/ recursively and the same changes are picked out of its events.

Failures never crash the daemon: a root that cannot be watched (projects/ missing, inotify watch or
instance limits) is reported in ``problems`` and retried by ``ensure()``; a kernel queue overflow (events
lost) calls ``on_overflow`` so the daemon falls back to a full scan.
"""

from __future__ import annotations

import logging
import os
import select
import sys
import threading
from collections.abc import Callable
from typing import Any

from claude_janitor.daemon.batch import Batches, Change
from claude_janitor.daemon.clock import REAL, Clock
from claude_janitor.daemon.inotify import (
    GONE,
    IN_CREATE,
    IN_IGNORED,
    IN_ISDIR,
    IN_MOVE_SELF,
    IN_MOVED_TO,
    IN_Q_OVERFLOW,
    SELF,
    Inotify,
)
from claude_janitor.daemon.watches import WatchTable, is_transcript, transcript_parts

log = logging.getLogger("claude_janitor.daemon.watch")

__all__ = ["Change", "Inotify", "Watcher", "make_watcher", "transcript_parts"]


class Watcher(WatchTable):
    """Reports transcript changes under each root's projects/ (Linux: inotify, two levels deep).

    ``observer_factory``: makes the inotify instance (tests pass one that fails as at the kernel limits)."""

    def __init__(self, roots: list[str], on_changes: Callable[[list[Change]], None],
                 on_overflow: Callable[[], None], *, debounce: float = 0.5,
                 observer_factory: Callable[[], Any] | None = None, files: dict[str, str] | None = None,
                 clock: Clock = REAL) -> None:  # fmt: skip
        """``files``: path -> tag of files whose changes (written, replaced, removed) are reported as
        Change("file", tag, path), even if they or their dirs do not exist yet."""
        lock = threading.Lock()
        super().__init__(roots, files, Batches(on_changes, lock, debounce, clock), lock)
        self.on_overflow = on_overflow
        self.observer_factory = observer_factory
        self._stop_r = self._stop_w = -1
        self._reader: threading.Thread | None = None

    # ---- lifecycle ------------------------------------------------------------------------------

    def start(self) -> dict[str, str]:
        """Start watching every root; returns the problems (root -> reason) of those not watched."""
        self.batches.start()
        return self.ensure()

    def _open(self) -> bool:
        try:
            self._ino = (self.observer_factory or Inotify)()
        except OSError as e:
            return self._unavailable(e)
        self._stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._reader = threading.Thread(target=self._read_loop, name="janitor-watch", daemon=True)
        self._reader.start()
        return True

    def ensure(self) -> dict[str, str]:
        """(Re)watch every root and project dir not currently watched. Cheap when all are (one listing of
        each projects/)."""
        with self._lock:
            if self._ino is None and not self._open():
                return dict(self.problems)
            for r in self.roots:
                self._ensure_root(r)
            self.await_missing(report=False)  # the caller rebuilds the index (full sweep)
            return dict(self.problems)

    def stop(self) -> None:
        """Stop watching, then hand over what was collected."""
        if self._reader is not None:
            os.write(self._stop_w, b"x")
            self._reader.join(timeout=5)
            self._reader = None
        with self._lock:
            if self._ino is not None:
                self._ino.close()
                self._ino = None
                os.close(self._stop_r)
                os.close(self._stop_w)
            self._wds.clear()
            self._by_dir.clear()
            self._extra.clear()
            self._extra_wd.clear()
        self.batches.stop()

    def _unavailable(self, e: OSError) -> bool:
        """No watcher could be started: every root is left to full scans."""
        self._ino = None
        for r in self.roots:
            self.problems[r] = f"cannot start the file watcher: {e.strerror or e}"
        log.warning("file watching unavailable (%s): relying on full scans", e.strerror or e)
        return False

    # ---- events ---------------------------------------------------------------------------------

    def _read_loop(self) -> None:
        poller = select.poll()
        poller.register(self._ino.fileno(), select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        while True:
            ready = {fd for fd, _ in poller.poll()}
            if self._stop_r in ready:
                return
            overflow = False
            with self._lock:
                if self._ino is None:
                    return
                for wd, mask, name in self._ino.read():
                    overflow |= self._event(wd, mask, name)
            self.batches.wake()
            if overflow:
                self._overflow()

    def _event(self, wd: int, mask: int, name: str) -> bool:
        """One inotify event (under the lock); True on a queue overflow."""
        if mask & IN_Q_OVERFLOW:
            return True
        if wd in self._extra:
            self._extra_event(wd, mask, name)
        where = self._wds.get(wd)
        if where is None:
            return False
        root, rel = where
        if mask & IN_IGNORED:  # the watch is gone (its dir removed or unwatched)
            self._forget(root, rel, rm=False)
            if rel == "projects":
                self._projects_gone(root)
            return False
        if rel == "projects":
            if mask & SELF:  # projects/ itself removed or moved away: awaited again from its root
                self._forget(root, rel, rm=True)
                self._projects_gone(root)
                self.batches.put(Change("dir-gone", root, "projects"))
            elif mask & IN_ISDIR and name:
                sub = f"projects/{name}"
                if mask & GONE:
                    self._forget(root, sub, rm=True)  # a moved dir keeps its watch: drop it
                    self.batches.put(Change("dir-gone", root, sub))
                elif mask & (IN_CREATE | IN_MOVED_TO):
                    self._new_project(root, sub)
            return False
        if mask & SELF:
            if mask & IN_MOVE_SELF:  # moved away; the parent's IN_MOVED_FROM reports it (or did)
                self._forget(root, rel, rm=True)
            return False
        if mask & IN_ISDIR or not is_transcript(name):
            return False
        self.batches.put(Change("gone" if mask & GONE else "write", root, f"{rel}/{name}"))
        return False

    def _overflow(self) -> None:
        log.warning("file events were lost (inotify queue overflow): the next sweep is a full scan")
        try:
            self.on_overflow()
        except Exception:  # noqa: BLE001
            log.exception("overflow handler failed")

    def flush(self) -> None:
        """Hand over everything collected so far (also done by the flush thread)."""
        self.batches.flush()


def make_watcher(roots: list[str], on_changes: Callable[[list[Change]], None], on_overflow: Callable[[], None],
                 *, debounce: float = 0.5, observer_factory: Callable[[], Any] | None = None,
                 files: dict[str, str] | None = None, clock: Clock = REAL) -> Watcher:  # fmt: skip
    """inotify on Linux, watchdog elsewhere."""
    cls = Watcher
    if not sys.platform.startswith("linux"):
        from claude_janitor.daemon.watchdog_watch import WatchdogWatcher

        cls = WatchdogWatcher
    return cls(roots, on_changes, on_overflow, debounce=debounce, observer_factory=observer_factory, files=files,
               clock=clock)  # fmt: skip
