"""SIGTERM/SIGINT ("stop after the session in hand") are handled in one place: fs.procs.on_stop_signals,
used by `janitor sweep`, its removal workers and the daemon's full-sweep child."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import lines_matching


def test_stop_signals_are_handled_in_one_place():
    """fs.procs.on_stop_signals; the daemon takes them with sigwait (daemon/loop.py) on purpose."""
    found = lines_matching(r"signal\.signal\(signal\.SIG(TERM|INT)\b|SIG_UNBLOCK", {"fs/procs.py"})
    assert found == [], "\n".join(found)


def test_on_stop_signals_unblocks_and_takes_a_pending_signal():
    """A process started with SIGTERM blocked (the daemon's mask survives exec) and one already pending:
    the callback gets it as soon as the handler is in place, and SIGINT goes the same way."""
    script = """
import os, signal
from claude_janitor.fs.procs import on_stop_signals
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
os.kill(os.getpid(), signal.SIGTERM)
got = []
on_stop_signals(got.append)
assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, set())
os.kill(os.getpid(), signal.SIGINT)
print(" ".join(signal.Signals(s).name for s in got))
"""
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["SIGTERM", "SIGINT"]
