"""Fault-injection points for the crash and race tests. Inert unless the variables are set.

JANITOR_TEST_KILL_AT=NAME[:N]   the process SIGKILLs itself the N-th time (default 1st) it reaches NAME.
JANITOR_TEST_PAUSE_AT=NAME[@N]:DIR  the N-th time (default 1st) at NAME, create DIR/NAME.reached and wait
                                (≤ 60 s) until DIR/NAME.go exists, so a test can change the tree (or send a
                                signal) between two steps of a real run.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

_counts: dict[str, int] = {}
# Read once, when the process starts (a removal passes ~10 points a session); a test that sets them in its
# own process calls ``arm``.
_kill = os.environ.get("JANITOR_TEST_KILL_AT")
_pause = os.environ.get("JANITOR_TEST_PAUSE_AT")


def armed() -> bool:
    """Is a kill or pause point set for this process?"""
    return bool(_kill or _pause)


def arm(*, kill: str | None = None, pause: str | None = None) -> None:
    """Set this process's points (as the variables would at its start) and count from zero again."""
    global _kill, _pause
    _kill, _pause = kill, pause
    _counts.clear()


def point(name: str) -> None:
    kill, pause = _kill, _pause
    if not kill and not pause:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if kill:
        want, _, n = kill.partition(":")
        if want == name and _counts[name] == int(n or 1):
            os.kill(os.getpid(), signal.SIGKILL)
    if pause:
        want, _, folder = pause.partition(":")
        want, _, n = want.partition("@")
        if want == name and _counts[name] == int(n or 1):
            Path(folder, f"{name}.reached").touch()
            deadline = time.monotonic() + 60
            while not Path(folder, f"{name}.go").exists() and time.monotonic() < deadline:
                time.sleep(0.02)
