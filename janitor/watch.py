"""A watchdog observer on each root's projects/ tree, reporting transcript changes in batches.

Only what the index needs is reported: a transcript (``projects/<project>/<id>.jsonl``) written (created,
appended, moved in) or gone (deleted, moved out), and a project dir (or projects/ itself) gone. Events are
collected by the observer thread and handed over, coalesced per path, from a flush thread a moment later,
so a transcript being appended to costs one index update per ``debounce`` seconds at most.

Failures never crash the daemon: a root that cannot be watched (projects/ missing, inotify watch or
instance limits) is reported in ``problems`` and retried by ``ensure()``; a kernel queue overflow (events
lost) calls ``on_overflow`` so the daemon falls back to a full scan.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

WATCHDOG_LOGGERS = ("watchdog.observers.inotify_c", "watchdog.observers.inotify")


@dataclass(frozen=True, slots=True)
class Change:
    kind: str  # "write" | "gone" | "dir-gone"
    root: str
    rel: str  # relative to root: "projects/<p>/<id>.jsonl", or "projects/<p>" / "projects" for dir-gone


def transcript_parts(rel: str) -> tuple[str, str] | None:
    """(project, session_id) if ``rel`` names a transcript directly inside a project dir."""
    parts = rel.split("/")
    if len(parts) == 3 and parts[0] == "projects" and parts[2].endswith(".jsonl") and len(parts[2]) > 6:
        return parts[1], parts[2][:-6]
    return None


class _OverflowLogHandler(logging.Handler):
    """watchdog handles an IN_Q_OVERFLOW itself (it re-adds its watches) and only logs it: listen for that."""

    def __init__(self, callback: Callable[[], None]) -> None:
        super().__init__(logging.WARNING)
        self.callback = callback

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if "overflow" in record.getMessage().lower():
                self.callback()
        except Exception:  # noqa: BLE001 - a logging handler must never raise
            pass


class Watcher:
    def __init__(self, roots: list[str], on_changes: Callable[[list[Change]], None],
                 on_overflow: Callable[[], None], *, debounce: float = 0.5,
                 observer_factory: Callable[[], Any] | None = None) -> None:
        self.roots = [str(r) for r in roots]
        self.on_changes = on_changes
        self.on_overflow = on_overflow
        self.debounce = debounce
        self.observer_factory = observer_factory
        self.observer: Any = None
        self.watches: dict[str, Any] = {}  # root -> ObservedWatch
        self.problems: dict[str, str] = {}  # root -> why it is not watched
        self._pending: dict[tuple[str, str], Change] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._flusher: threading.Thread | None = None
        self._log_handler = _OverflowLogHandler(self._overflow)

    # ---- lifecycle ------------------------------------------------------------------------------

    def start(self) -> dict[str, str]:
        """Start watching every root; returns the problems (root -> reason) of those not watched."""
        for name in WATCHDOG_LOGGERS:
            logging.getLogger(name).addHandler(self._log_handler)
        self._flusher = threading.Thread(target=self._flush_loop, name="janitor-watch-flush", daemon=True)
        self._flusher.start()
        try:
            self.observer = self._make_observer()
            self.observer.start()
        except OSError as e:
            self.observer = None
            for r in self.roots:
                self.problems[r] = f"cannot start the file watcher: {e.strerror or e}"
            log.warning("file watching unavailable (%s): relying on full scans", e.strerror or e)
            return dict(self.problems)
        return self.ensure()

    def _make_observer(self) -> Any:
        if self.observer_factory is not None:
            return self.observer_factory()
        from watchdog.observers import Observer

        return Observer()

    def ensure(self) -> dict[str, str]:
        """(Re)watch every root not currently watched. Cheap when all are."""
        if self.observer is None:
            try:
                self.observer = self._make_observer()
                self.observer.start()
            except OSError as e:
                self.observer = None
                return {r: f"cannot start the file watcher: {e.strerror or e}" for r in self.roots}
        alive = {e.watch.path for e in getattr(self.observer, "emitters", ()) if e.is_alive()}
        for r in self.roots:
            w = self.watches.get(r)
            if w is not None and w.path in alive:
                self.problems.pop(r, None)
                continue
            if w is not None:
                try:
                    self.observer.unschedule(w)
                except (KeyError, ValueError):
                    pass
                self.watches.pop(r, None)
            path = os.path.join(r, "projects")
            if not os.path.isdir(path) or os.path.islink(path):
                self.problems[r] = f"{path} does not exist (yet)"
                continue
            try:
                self.watches[r] = self.observer.schedule(self._handler(r), path, recursive=True,
                                                         event_filter=self._event_filter())
                self.problems.pop(r, None)
                log.info("watching %s", path)
            except OSError as e:
                self.problems[r] = f"cannot watch {path}: {e.strerror or e}"
                log.warning("cannot watch %s (%s): relying on full scans for it", path, e.strerror or e)
        return dict(self.problems)

    def stop(self) -> None:
        """Stop watching, then hand over what was collected."""
        for name in WATCHDOG_LOGGERS:
            logging.getLogger(name).removeHandler(self._log_handler)
        if self.observer is not None:
            try:
                self.observer.stop()
                self.observer.join(timeout=5)
            except RuntimeError:
                pass
        self._stopping = True
        self._wake.set()
        if self._flusher is not None:
            self._flusher.join(timeout=5)

    @property
    def healthy(self) -> bool:
        return self.observer is not None and not self.problems

    # ---- events ---------------------------------------------------------------------------------

    @staticmethod
    def _event_filter() -> list[type]:
        from watchdog import events as ev

        wanted = [ev.FileCreatedEvent, ev.FileModifiedEvent, ev.FileClosedEvent, ev.FileDeletedEvent,
                  ev.FileMovedEvent, ev.DirDeletedEvent, ev.DirMovedEvent]
        attrib = getattr(ev, "FileAttribEvent", None)  # watchdog ≥ 5: touch/utime (mtime set back, too)
        return wanted + ([attrib] if attrib else [])

    def _handler(self, root: str) -> Any:
        from watchdog.events import FileSystemEventHandler

        watcher = self
        prefix = root.rstrip("/") + "/"

        class Handler(FileSystemEventHandler):
            def dispatch(self, event: Any) -> None:
                watcher._event(prefix, root, event)

        return Handler()

    def _event(self, prefix: str, root: str, event: Any) -> None:
        def rel(p: Any) -> str | None:
            p = os.fsdecode(p) if p else ""
            return p[len(prefix):] if p.startswith(prefix) else None

        src = rel(event.src_path)
        dest = rel(getattr(event, "dest_path", "")) if event.event_type == "moved" else None
        out: list[Change] = []
        if event.is_directory:
            if event.event_type in ("deleted", "moved") and src is not None and src.count("/") <= 1:
                out.append(Change("dir-gone", root, src))  # a moved dir's contents come as their own events
        else:
            if src is not None and transcript_parts(src):
                gone = event.event_type in ("deleted", "moved")
                out.append(Change("gone" if gone else "write", root, src))
            if dest is not None and transcript_parts(dest):
                out.append(Change("write", root, dest))
        if not out:
            return
        with self._lock:
            for c in out:
                self._pending[(c.root, c.rel)] = c
        self._wake.set()

    def _overflow(self) -> None:
        log.warning("file events were lost (inotify queue overflow): the next sweep is a full scan")
        try:
            self.on_overflow()
        except Exception:  # noqa: BLE001
            log.exception("overflow handler failed")

    def flush(self) -> None:
        """Hand over everything collected so far (also called by the flush thread)."""
        with self._lock:
            batch = list(self._pending.values())
            self._pending.clear()
        if batch:
            try:
                self.on_changes(batch)
            except Exception:  # noqa: BLE001 - the watcher must survive a failing consumer
                log.exception("updating the index from file events failed; the next full scan will catch up")

    def _flush_loop(self) -> None:
        while True:
            self._wake.wait()
            if self._stopping:
                self.flush()
                return
            # Let a burst of writes settle, then hand it over in one go.
            threading.Event().wait(self.debounce)
            self._wake.clear()
            self.flush()
            if self._stopping:
                return
