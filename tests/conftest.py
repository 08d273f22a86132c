"""Shared fixtures: real files in tmp_path, the real CLI in a subprocess, isolated janitor dirs."""

from __future__ import annotations

import compileall
import os
from pathlib import Path

import pytest

from tests.helpers import NOW

REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """Compile the package's bytecode once, up front. The suite runs the CLI in hundreds of subprocesses, and
    where PYTHONDONTWRITEBYTECODE is set (this machine's environment sets it) none of them writes the .pyc
    it compiles, so each compiled all ~100 modules again: 0.13 s of CPU a command, a third of the suite's
    CPU on 2 cores. Python still reads .pyc files it did not write; a stale one (a source edited since) is
    compiled again in memory as usual. Idempotent: every xdist worker calls it, only stale files are written
    (atomically)."""
    for d in ("claude_janitor", "tests/helpers", "benchmarks"):
        compileall.compile_dir(REPO / d, quiet=1, workers=1)


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
