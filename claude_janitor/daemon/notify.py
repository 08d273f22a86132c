"""systemd notification (Type=notify): READY=1, RELOADING=1, STOPPING=1, STATUS=, and WATCHDOG=1 pings."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable

from claude_janitor.daemon.clock import REAL, Clock

log = logging.getLogger("janitor.daemon")

WATCHDOG_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")  # meant for the daemon, not its children


# A state change the manager must see: without READY=1 a Type=notify unit stays "activating" until
# TimeoutStartSec and is then killed. The manager's socket queue is short (net.unix.max_dgram_qlen, 10 on
# many machines) and a manager under load drains it late, so these wait for room, as libsystemd's blocking
# send does, up to this long.
STATE_CHANGES = ("READY=1", "RELOADING=1", "STOPPING=1")
STATE_CHANGE_WAIT = 30.0


def sd_notify(message: str) -> bool:
    """Send ``message`` (e.g. "READY=1") to the service manager at $NOTIFY_SOCKET; False if there is none.

    A state change (READY=1, RELOADING=1, STOPPING=1) waits up to STATE_CHANGE_WAIT seconds for room in the
    manager's queue. Anything else (STATUS=, WATCHDOG=1) never blocks: a message the manager has no room for
    is dropped (a stalled reader must not stall the daemon; the next STATUS= or WATCHDOG=1 follows soon)."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr or addr[0] not in "/@":
        return False
    target = "\0" + addr[1:] if addr[0] == "@" else addr
    wait = message.startswith(STATE_CHANGES)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(target)
            if wait:
                s.settimeout(STATE_CHANGE_WAIT)
                s.send(message.encode())
            else:
                s.send(message.encode(), socket.MSG_DONTWAIT)
        return True
    except OSError as e:  # socket.timeout is an OSError
        (log.warning if wait else log.debug)("sd_notify(%r) failed: %s", message, e)
        return False


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings: half of systemd's $WATCHDOG_USEC when it is meant for this process
    (None without a watchdog)."""
    wd = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID")
    if not wd.isdigit() or int(wd) <= 0 or (pid is not None and pid != str(os.getpid())):
        return None
    return int(wd) / 2e6


class WatchdogPinger:
    """Sends WATCHDOG=1 every ``interval`` seconds from a thread of its own, so that pings keep flowing
    whatever the daemon is doing (a full sweep, a long archive, a busy index), as long as ``healthy()``
    says the daemon is still working. Stops pinging (so that systemd restarts it) when it is not."""

    def __init__(self, interval: float, healthy: Callable[[], bool], clock: Clock = REAL) -> None:
        self.interval = interval
        self.healthy = healthy
        self.clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="janitor-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        warned = False
        while True:
            if self.healthy():
                sd_notify("WATCHDOG=1")
            elif not warned:
                warned = True
                log.error("the scheduler's thread is gone: no more watchdog pings (systemd restarts the daemon)")
            if self.clock.wait(self._stop, self.interval):
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
