"""The daemon's time: every "now", interval and wait in daemon/ goes through one Clock.

A test passes a clock that runs ahead of real time instead of sleeping until a due time comes
(tests/test_daemon.py), and the daemon's decisions follow it. APScheduler keeps real time: a job meant for
clock time ``t`` is put at ``clock.real(t)``.
"""

from __future__ import annotations

import threading
import time


class Clock:
    """Real time."""

    def time(self) -> float:
        """Wall-clock seconds since the epoch: due times, records, the state file."""
        return time.time()

    def monotonic(self) -> float:
        """Seconds for intervals (how long since), immune to the wall clock being set."""
        return time.monotonic()

    def real(self, at: float) -> float:
        """The system time at which this clock reads ``at`` (when to have the scheduler run a job)."""
        return at - self.time() + time.time()

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Wait up to ``seconds`` (this clock's) for ``event``; True if it was set."""
        return event.wait(seconds)


REAL = Clock()
