"""Watching with watchdog, where there is no inotify (macOS): projects/ watched recursively, the same
changes picked out of its events. Missing dirs are retried by the daemon (``needs_retry``), and the pins
and config files are only re-read at SIGHUP."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any

from claude_janitor.daemon.batch import Change
from claude_janitor.daemon.watch import Watcher
from claude_janitor.daemon.watches import transcript_parts

WATCHDOG_LOGGERS = ("watchdog.observers.inotify_c", "watchdog.observers.inotify")


class OverflowLogHandler(logging.Handler):
    """watchdog handles a queue overflow itself (it re-adds its watches) and only logs it: listen for that."""

    def __init__(self, callback: Callable[[], None]) -> None:
        super().__init__(logging.WARNING)
        self.callback = callback

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if "overflow" in record.getMessage().lower():
                self.callback()
        except Exception:  # noqa: BLE001 - a logging handler must never raise
            pass


class WatchdogWatcher(Watcher):
    """The same reports from a recursive watchdog observer (platforms without inotify)."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self._watches: dict[str, Any] = {}
        self._log_handler = OverflowLogHandler(self._overflow)

    def _open(self) -> bool:
        from watchdog.observers import Observer

        try:
            self._ino = (self.observer_factory or Observer)()
            self._ino.start()
        except OSError as e:
            return self._unavailable(e)
        for name in WATCHDOG_LOGGERS:
            logging.getLogger(name).addHandler(self._log_handler)
        return True

    def _ensure_extra(self) -> None:
        """Not on watchdog: missing dirs are retried by the daemon (``needs_retry``), files only at SIGHUP."""

    def _ensure_root(self, root: str) -> None:
        alive = {e.watch.path for e in getattr(self._ino, "emitters", ()) if e.is_alive()}
        w = self._watches.get(root)
        if w is not None and w.path in alive:
            self.problems.pop(root, None)
            return
        if w is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._ino.unschedule(w)
            self._watches.pop(root, None)
        path = os.path.join(root, "projects")
        if not os.path.isdir(path) or os.path.islink(path):
            self.problems[root] = f"{path} does not exist (yet)"
            return
        try:
            self._watches[root] = self._ino.schedule(self._handler(root), path, recursive=True)
            self.problems.pop(root, None)
        except OSError as e:
            self.problems[root] = f"cannot watch {path}: {e.strerror or e}"

    def stop(self) -> None:
        for name in WATCHDOG_LOGGERS:
            logging.getLogger(name).removeHandler(self._log_handler)
        if self._ino is not None:
            try:
                self._ino.stop()
                self._ino.join(timeout=5)
            except RuntimeError:
                pass
            self._ino = None
        self.batches.stop()

    def _handler(self, root: str) -> Any:
        from watchdog.events import FileSystemEventHandler

        watcher = self
        prefix = root.rstrip("/") + "/"

        class Handler(FileSystemEventHandler):
            def dispatch(self, event: Any) -> None:
                watcher._watchdog_event(prefix, root, event)

        return Handler()

    def _watchdog_event(self, prefix: str, root: str, event: Any) -> None:
        def rel(p: Any) -> str | None:
            p = os.fsdecode(p) if p else ""
            return p[len(prefix) :] if p.startswith(prefix) else None

        src = rel(event.src_path)
        dest = rel(getattr(event, "dest_path", "")) if event.event_type == "moved" else None
        out: list[Change] = []
        if event.is_directory:
            if event.event_type in ("deleted", "moved") and src is not None and src.count("/") <= 1:
                out.append(Change("dir-gone", root, src))
        elif event.event_type in ("created", "modified", "closed", "deleted", "moved", "attrib"):
            if src is not None and transcript_parts(src):
                out.append(Change("gone" if event.event_type in ("deleted", "moved") else "write", root, src))
            if dest is not None and transcript_parts(dest):
                out.append(Change("write", root, dest))
        if out:
            with self._lock:
                for c in out:
                    self.batches.put(c)
            self.batches.wake()
