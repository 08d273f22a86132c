"""Process plumbing shared by `janitor sweep`, the daemon's full-sweep child and the sweep's removal workers."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def on_stop_signals(callback: Callable[[int], None]) -> None:
    """SIGTERM and SIGINT call ``callback(signum)`` (in the main thread): how a sweeping process is told to
    stop after the session in hand. The daemon's sigwait loop (daemon/loop.py) takes them its own way.

    They are unblocked too, after the handler is in place (so one already pending reaches it): the daemon
    blocks them in every thread, and a blocked mask survives fork and exec into its children.

    ``callback`` runs between any two bytecodes of the main thread, and again inside itself when another
    signal comes meanwhile (two SIGTERMs are common: systemd's to every process of the service and the
    daemon's own): it must take no lock — no threading.Event.set, no logging — only set plain values."""

    def handler(signum: int, _frame: object) -> None:
        callback(signum)

    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def die_with_parent(sig: int) -> bool:
    """Linux: have the kernel send ``sig`` to this process when its parent dies (prctl PR_SET_PDEATHSIG).

    False where that is not available (other platforms, no libc)."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(sig), 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (signal 0): someone else's process (EPERM) exists too."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    except OSError:
        return False
    return True
