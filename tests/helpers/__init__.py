"""Helpers shared by the tests: the real CLI in a subprocess, config files, waiting for real processes.

Fixtures stay in conftest.py; everything a test imports comes from here (tests.helpers and its modules:
cachegen (realistic caches), archivetools (reading and crafting archives), races (pausing the real CLI between
steps and checking nothing was lost), claude (the real Claude Code CLI's cache helpers))."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

NOW = 1_790_000_000.0  # a fixed "now" (2026-09-21) passed to the code under test


def write_config(jenv: dict[str, str], text: str) -> Path:
    p = Path(jenv["XDG_CONFIG_HOME"]) / "claude-janitor" / "config.toml"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def run_cli(
    args: list[str],
    env: dict[str, str],
    *,
    timeout: float = 120,
    input: str | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """The real CLI, as a subprocess (``preexec_fn`` runs in it before exec, e.g. to set a resource limit)."""
    return subprocess.run(
        [sys.executable, "-m", "claude_janitor", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        preexec_fn=preexec_fn,
    )


def run_json(args: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], Any]:
    p = run_cli(args, env)
    assert p.stdout.strip(), p.stderr
    return p, json.loads(p.stdout)


def wait_for(pred: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll ``pred`` until true (for watching real processes; not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return bool(pred())


PKG = Path(__file__).resolve().parent.parent.parent / "claude_janitor"


def package_sources() -> list[Path]:
    """Every module of the package, for the tests that read the source (one home per idea)."""
    found = sorted(PKG.rglob("*.py"))
    assert len(found) > 30, PKG  # a lint over no files would pass without looking
    return found


def lines_matching(pattern: str, allowed: set[str]) -> list[str]:
    """``rel:line: text`` for every line of the package matching ``pattern``, but in the ``allowed`` modules."""
    return [
        f"{rel}:{n}: {line.strip()}"
        for f in package_sources()
        if (rel := f.relative_to(PKG).as_posix()) not in allowed
        for n, line in enumerate(f.read_text().splitlines(), 1)
        if re.search(pattern, line)
    ]
