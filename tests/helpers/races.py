"""Helpers for the adversarial suite: run the real CLI, pause it between steps, and check that nothing
the policy did not ask to lose was lost."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import wait_for

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mount, chattr)")

# A process that holds a file: `python -c HOLD PATH MODE open|flock` opens PATH in MODE ("a", "r", "r+"),
# with "flock" takes an exclusive flock on it, prints "ready", and keeps it for two minutes.
HOLD = """
import fcntl, sys, time
f = open(sys.argv[1], sys.argv[2])
if sys.argv[3] == "flock":
    fcntl.flock(f, fcntl.LOCK_EX)
print("ready", flush=True)
time.sleep(120)
"""


def tree_state(top: Path) -> dict[str, bytes | str]:
    """Every entry under ``top``: file contents, 'dir', or 'link -> target'. Never follows links."""
    out: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            rel = str(p.relative_to(top))
            if p.is_symlink():
                out[rel] = f"link -> {os.readlink(p)}"
            elif p.is_dir():
                out[rel] = "dir"
            elif p.is_file():
                out[rel] = p.read_bytes()
            else:
                out[rel] = "special"
    return out


class Paused:
    """A real `janitor` run stopped at a named point until released (JANITOR_TEST_PAUSE_AT)."""

    def __init__(self, args: list[str], env: dict[str, str], point: str, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.point, self.folder = point.split("@")[0], folder
        env = dict(env, JANITOR_TEST_PAUSE_AT=f"{point}:{folder}")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "claude_janitor", *args],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        reached = wait_for(
            lambda: (folder / f"{self.point}.reached").exists() or self.proc.poll() is not None, timeout=60
        )
        assert reached and self.proc.poll() is None, self.proc.communicate()

    def release(self) -> subprocess.CompletedProcess[str]:
        (self.folder / f"{self.point}.go").touch()
        out, err = self.proc.communicate(timeout=120)
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode, out, err)


def intact_or_gone(paths: list[Path]) -> str:
    """'intact' if every piece exists, 'gone' if none does, else 'PARTIAL'."""
    there = [p.exists() or p.is_symlink() for p in paths]
    return "intact" if all(there) else "gone" if not any(there) else "PARTIAL"
