"""`janitor daemon` in the foreground: the locks, then the signal loop (SIGHUP reloads, SIGTERM/SIGINT stop)."""

from __future__ import annotations

import logging
import signal
import time
from typing import TYPE_CHECKING

from claude_janitor.daemon.instance import DaemonLock
from claude_janitor.daemon.logs import LOG_MAX_BYTES, setup_logging
from claude_janitor.daemon.main import Daemon
from claude_janitor.daemon.notify import sd_notify
from claude_janitor.errors import ExitStatus, LockBusy
from claude_janitor.fs.locks import RootLock

if TYPE_CHECKING:
    from claude_janitor.sweep.plan import Env

log = logging.getLogger("janitor.daemon")

SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


def _take_locks(env: Env) -> tuple[DaemonLock, RootLock]:
    """The state dir's daemon lock, then each Claude dir's (one daemon per Claude dir, whatever its state
    dir). LockBusy if another daemon holds one; a one-shot sweep's hold is waited out by the first sweep."""
    lock = DaemonLock(env.dirs)
    lock.acquire()
    roots_lock = RootLock(env.roots)
    try:
        roots_lock.acquire()
    except LockBusy as e:
        if "daemon" in str(e):
            lock.release()
            raise LockBusy(f"{e}: not starting a second daemon on it") from None
        log.info("%s: sweeping it once that sweep is over", e)  # a one-shot sweep: taken before our first
    return lock, roots_lock


def run(env: Env, *, verbose: bool = False, log_file: str | None = None, log_max_bytes: int = LOG_MAX_BYTES) -> int:
    """`janitor daemon`: run in the foreground until SIGTERM/SIGINT. Returns the exit code."""
    setup_logging(verbose, log_file, log_max_bytes)
    lock, roots_lock = _take_locks(env)
    # Signals are taken synchronously by the main thread (sigwait); every thread started from here on
    # inherits the blocked mask, so no handler ever runs in the middle of a sweep.
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        d = Daemon(env, root_lock=roots_lock)
        d.start()
        sd_notify("READY=1")
        while True:
            sig = signal.sigwait(SIGNALS)
            if sig != signal.SIGHUP:
                break
            log.info("SIGHUP: reloading the config")
            # MONOTONIC_USEC is the kernel's CLOCK_MONOTONIC, as systemd reads it: a protocol field, not a
            # decision of the daemon's (which go through its clock).
            sd_notify(f"RELOADING=1\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")
            d.reload()
            sd_notify("READY=1")
        log.info("%s: stopping after the session in hand", signal.Signals(sig).name)
        sd_notify("STOPPING=1")
        d.stop()
        return ExitStatus.OK
    finally:
        roots_lock.release()
        lock.release()
