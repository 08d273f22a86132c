"""`janitor daemon` as a real process: start it, read its sd_notify messages and status, stop it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.helpers import run_cli


class Daemon:
    def __init__(self, root: Path, env: dict[str, str], tmp: Path, *, notify: bool = False) -> None:
        self.env = dict(env)
        self.sock: socket.socket | None = None
        # Every message sent to $NOTIFY_SOCKET, with when it came. Read as it comes, as systemd does: the
        # daemon never blocks on a notification, and a socket left unread holds only max_dgram_qlen (10)
        # of them, so a later one (STOPPING=1) would be dropped.
        self.received: list[tuple[float, str]] = []
        self._seen = 0  # how many of them notices() has returned
        self._came = threading.Condition()
        if notify:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            name = f"janitor-test-{os.getpid()}-{time.monotonic_ns()}"
            self.sock.bind("\0" + name)
            self.env["NOTIFY_SOCKET"] = "@" + name
            threading.Thread(target=self._read, args=(self.sock,), daemon=True).start()
        self.log = open(tmp / "daemon.log", "w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "claude_janitor", "daemon", "--claude-dir", str(root), "-v"],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def _read(self, sock: socket.socket) -> None:
        while True:
            try:
                msg = sock.recv(4096).decode()
            except OSError:  # closed by stop()
                return
            with self._came:
                self.received.append((time.monotonic(), msg))
                self._came.notify_all()

    def notices(self, until: str, timeout: float = 20) -> list[str]:
        """The messages sent to $NOTIFY_SOCKET since the last call, up to and including ``until`` (all of
        them if it does not come within ``timeout``)."""
        assert self.sock is not None

        def came() -> bool:
            return until in [m for _, m in self.received[self._seen :]]

        with self._came:
            self._came.wait_for(came, timeout)
            got = [m for _, m in self.received[self._seen :]]
            if until in got:
                got = got[: got.index(until) + 1]
            self._seen += len(got)
            return got

    def status(self) -> Any:
        p = run_cli(["status", "--json"], self.env)
        st = json.loads(p.stdout)
        assert p.returncode == (0 if st["running"] else 3), p.stderr
        return st

    def ready(self) -> bool:
        st = self.status()
        return st["running"] and st.get("pid") == self.proc.pid and bool(st.get("last_full_sweep"))

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        finally:
            if self.sock:
                self.sock.close()
