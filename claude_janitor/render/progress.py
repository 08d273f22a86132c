"""A progress line on stderr for runs that take more than a second, on a terminal only.

Never drawn when stderr is not a TTY (pipes, logs, cron, JSON consumers), never on stdout, and only once a
phase has lasted ``delay`` seconds (CLAUDE_JANITOR_PROGRESS_DELAY overrides the default of 1 s), so quick
runs print exactly what they always did. Redrawn at most 10 times a second; erased when done.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

from claude_janitor.durations import human_duration

WIDTH = 28


class Progress:
    def __init__(
        self, stream: TextIO | None = None, *, delay: float | None = None, enabled: bool | None = None
    ) -> None:
        self.stream = stream or sys.stderr
        if delay is None:
            try:
                delay = float(os.environ.get("CLAUDE_JANITOR_PROGRESS_DELAY", "1"))
            except ValueError:
                delay = 1.0
        self.delay = delay
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.label = ""
        self.unit = ""
        self.total: int | None = None
        self.done = 0
        self.started = self.drawn_at = 0.0
        self.visible = False

    def phase(self, label: str, total: int | None = None, unit: str = "") -> Progress:
        """Start a new phase (e.g. "scanning", "deleting"); returns self, which counts via __call__."""
        self.clear()
        self.label, self.total, self.unit, self.done = label, total, unit, 0
        self.started = time.monotonic()
        self.drawn_at = 0.0
        return self

    def __call__(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.started < self.delay or now - self.drawn_at < 0.1:
            return
        self.drawn_at = now
        self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = now - self.started
        if self.total:
            frac = min(1.0, self.done / self.total)
            fill = int(frac * WIDTH)
            bar = "█" * fill + "░" * (WIDTH - fill)
            eta = ""
            if 0 < frac < 1:
                eta = f", {human_duration(elapsed / frac - elapsed)} left"
            text = f"{self.label} {bar} {self.done:,}/{self.total:,} {self.unit}{eta}"
        else:
            text = f"{self.label}… {self.done:,} {self.unit} ({human_duration(elapsed)})"
        self.stream.write("\r\x1b[2K" + text)
        self.stream.flush()
        self.visible = True

    def clear(self) -> None:
        if self.visible:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self.visible = False

    def close(self) -> None:
        self.clear()
