"""Shared fixtures: real files in tmp_path, the real CLI in a subprocess, isolated janitor dirs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

NOW = 1_790_000_000.0  # a fixed "now" (2026-09-21) passed to the code under test


@pytest.fixture
def now() -> float:
    return NOW


@pytest.fixture
def jenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment with the janitor's config/state/data dirs and managed settings inside tmp_path.

    Applied to this process too (monkeypatch), and returned for subprocesses."""
    env = dict(os.environ)
    values = {
        "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
        "XDG_STATE_HOME": str(tmp_path / "xdg-state"),
        "XDG_DATA_HOME": str(tmp_path / "xdg-data"),
        "XDG_CACHE_HOME": str(tmp_path / "xdg-cache"),
        # Claude Code's temp dir (claude-<uid>/, claude-preview-* …): never the machine's /tmp in tests
        "CLAUDE_CODE_TMPDIR": str(tmp_path / "claude-tmp"),
        "CLAUDE_JANITOR_MANAGED_DIR": str(tmp_path / "managed"),
        # the janitor's own managed policy: never the machine's /etc/claude-janitor/policy.toml in tests
        "CLAUDE_JANITOR_POLICY": str(tmp_path / "managed-janitor" / "policy.toml"),
        # ~ is a scratch dir: a command that falls back to ~/.claude (restore without --claude-dir) must
        # never reach the real one of whoever runs the tests
        "HOME": str(tmp_path / "home"),
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    env.update(values)
    env.pop("CLAUDE_CONFIG_DIR", None)
    return env


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "claude"
    r.mkdir()
    return r


def write_config(jenv: dict[str, str], text: str) -> Path:
    p = Path(jenv["XDG_CONFIG_HOME"]) / "claude-janitor" / "config.toml"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def run_cli(args: list[str], env: dict[str, str], *, timeout: float = 120,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
    """The real CLI, as a subprocess."""
    return subprocess.run([sys.executable, "-m", "claude_janitor", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, input=input)


def run_json(args: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], dict]:
    p = run_cli(args, env)
    assert p.stdout.strip(), p.stderr
    return p, json.loads(p.stdout)


def wait_for(pred, timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll ``pred`` until true (for watching real processes; not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return bool(pred())
