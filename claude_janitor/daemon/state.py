"""The daemon's state file (JanitorDirs.daemon_state) and what `janitor status` makes of it.

The running daemon rewrites the whole file (atomically) whenever its state changes: its pid, its roots and
schedule, the last and next sweep, the next expiry, the sweep in progress; and sends the same summary to
systemd as STATUS=.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from claude_janitor.config.paths import JanitorDirs
from claude_janitor.daemon.index import count_sessions
from claude_janitor.daemon.instance import running_pid
from claude_janitor.daemon.notify import sd_notify

log = logging.getLogger("janitor.daemon")

SHOWN = (
    "started",
    "stopped",
    "roots",
    "schedule",
    "last_sweep",
    "last_full_sweep",
    "next_sweep",
    "next_expiry",
    "sweeping",
    "reload_refused",
    "watching",
    "index_trusted",
    "version",
)
WHILE_RUNNING = ("next_sweep", "next_expiry", "sweeping")  # meaningless once the daemon is gone


def read_state(dirs: JanitorDirs) -> dict[str, Any]:
    from claude_janitor.fs.saferead import STATE_MAX, InputError, read_input

    try:  # the janitor's own file in its private dir: bounded, non-blocking, a symlink is not followed
        raw = read_input(dirs.daemon_state, what="daemon state", limit=STATE_MAX, follow=False)
        data = json.loads(raw) if raw is not None else {}
    except (InputError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def status(dirs: JanitorDirs) -> dict[str, Any]:
    """What `janitor status` shows: is a daemon running, its last and next sweep, the index size."""
    st = read_state(dirs)
    pid = running_pid(dirs)
    out: dict[str, Any] = {
        "running": pid is not None,
        "pid": pid if pid and pid > 0 else None,
        "state_file": str(dirs.daemon_state),
        "index": str(dirs.index_db),
        "index_sessions": count_sessions(dirs.index_db),
    }
    out.update({k: st[k] for k in SHOWN if k in st})
    if pid is None:
        for k in WHILE_RUNNING:
            out.pop(k, None)
    elif st.get("pid") == pid and isinstance(st.get("index_sessions"), int):
        # The running daemon's own count, written with its next expiry: one consistent snapshot (the
        # index file may already hold a session whose wake-up the state does not show yet).
        out["index_sessions"] = st["index_sessions"]
    return out


class StateFile:
    """Writes the running daemon's state, one writer at a time, and tells systemd (STATUS=) when the
    summary changed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._status_sent = ""

    def write(self, build: Callable[[], dict[str, Any]]) -> None:
        """Write what ``build()`` returns (called under the lock: one consistent snapshot per write)."""
        from claude_janitor.fs.atomicfile import write_atomic

        with self._lock:
            data = build()
            try:
                write_atomic(self.path, json.dumps(data, indent=1, sort_keys=True) + "\n")
            except OSError as e:
                log.warning("cannot write %s: %s", self.path, e)
            if not data.get("stopped"):
                self._notify(data)

    def _notify(self, data: dict[str, Any]) -> None:
        bits = [
            f"next sweep {data['next_sweep'] or '-'}",
            f"next expiry {data['next_expiry'] or '-'}",
            f"{data['index_sessions']} sessions indexed",
        ]
        sweeping = data.get("sweeping")
        if sweeping:
            bits.insert(0, f"{sweeping['kind']} sweep in progress since {sweeping['since']}")
        text = "STATUS=" + "; ".join(bits)
        if text != self._status_sent:
            self._status_sent = text
            sd_notify(text)
