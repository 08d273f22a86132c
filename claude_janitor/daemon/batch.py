"""The watcher's changes, collected and handed over in batches from a thread of their own: coalesced per
path, a moment (``debounce``) after the first one, so a transcript being appended to costs one index
update per ``debounce`` seconds at most."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from claude_janitor.daemon.clock import Clock

log = logging.getLogger("claude_janitor.daemon.watch")


@dataclass(frozen=True, slots=True)
class Change:
    kind: str  # "write" | "gone" | "dir-gone" | "dir-new" | "file"
    root: str  # for "file": the file's tag (e.g. "pins", "config")
    rel: str  # relative to root: "projects/<p>/<id>.jsonl", or "projects/<p>" / "projects" for dir-gone,
    # "projects" for dir-new (a root's projects/ is watched again); for "file": the file's path


class Batches:
    """Pending changes, handed to ``on_changes`` by the flush thread (or ``flush()``). ``lock`` is the
    watcher's: changes are put under it, so a batch never splits what one read of events reported."""

    def __init__(self, on_changes: Callable[[list[Change]], None], lock: threading.Lock, debounce: float,
                 clock: Clock) -> None:  # fmt: skip
        self.on_changes = on_changes
        self.lock = lock
        self.debounce = debounce
        self.clock = clock
        self.pending: dict[tuple[str, str], Change] = {}
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="janitor-watch-flush", daemon=True)
        self._thread.start()

    def put(self, c: Change) -> None:
        """(Under the lock.) The latest change of a path replaces an earlier one not handed over yet."""
        self.pending[(c.root, c.rel)] = c

    def wake(self) -> None:
        """Changes were put: have them handed over (after ``debounce``)."""
        if self.pending:
            self._wake.set()

    def flush(self) -> None:
        """Hand over everything collected so far."""
        with self.lock:
            batch = list(self.pending.values())
            self.pending.clear()
        if batch:
            try:
                self.on_changes(batch)
            except Exception:  # noqa: BLE001 - the watcher must survive a failing consumer
                log.exception("updating the index from file events failed; the next full scan will catch up")

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            if self._stopping:
                self.flush()
                return
            # Let a burst of writes settle, then hand it over in one go.
            self.clock.wait(threading.Event(), self.debounce)
            self._wake.clear()
            self.flush()
            if self._stopping:
                return

    def stop(self) -> None:
        """Let the flush thread hand over what is left, and end."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
