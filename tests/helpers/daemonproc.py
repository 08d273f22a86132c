"""`janitor daemon` as a real process: start it, read its sd_notify messages and status, stop it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.helpers import run_cli


class Daemon:
    def __init__(self, root: Path, env: dict[str, str], tmp: Path, *, notify: bool = False) -> None:
        self.env = dict(env)
        self.sock = None
        if notify:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            name = f"janitor-test-{os.getpid()}-{time.monotonic_ns()}"
            self.sock.bind("\0" + name)
            self.sock.settimeout(20)
            self.env["NOTIFY_SOCKET"] = "@" + name
        self.log = open(tmp / "daemon.log", "w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "claude_janitor", "daemon", "--claude-dir", str(root),
                                      "-v"], env=self.env, stdout=self.log, stderr=subprocess.STDOUT)

    def notices(self, until: str) -> list[str]:
        """Messages sent to $NOTIFY_SOCKET, up to and including ``until`` (or the end)."""
        assert self.sock is not None
        got: list[str] = []
        try:
            while until not in got:
                got.append(self.sock.recv(4096).decode())
        except (TimeoutError, OSError):
            pass
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
