"""The real Claude Code CLI (pinned version, installed with npm into a cache outside the repo, reused
between runs) driven offline against a fake Messages API (fakeapi.py), in a throwaway HOME."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .fakeapi import FakeAPI

VERSION = "2.1.328"
PACKAGE = f"@anthropic-ai/claude-code@{VERSION}"
# From the real environment at import time: the jenv fixture points XDG_CACHE_HOME at tmp_path for the code
# under test, and the install must outlive a test.
_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
INSTALL_DIR = Path(
    os.environ.get("CLAUDE_JANITOR_TEST_CLAUDE_DIR") or _CACHE / "claude-janitor-tests" / f"claude-code-{VERSION}"
)
BIN = INSTALL_DIR / "node_modules" / ".bin" / "claude"


def _version_ok() -> bool:
    try:
        p = subprocess.run(
            [str(BIN), "--version"],
            capture_output=True,
            text=True,
            timeout=60,
            env={
                "PATH": os.environ.get("PATH", ""),
                "HOME": str(INSTALL_DIR),
                "DISABLE_AUTOUPDATER": "1",
                "DISABLE_TELEMETRY": "1",
            },
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return p.returncode == 0 and p.stdout.startswith(VERSION)


_installed: list[str | None] = []


def _install() -> str | None:
    """Install (once per run, under a lock: several test runs may share the cache); None or why not."""
    if not _installed:
        _installed.append(_do_install())
    return _installed[0]


def _do_install() -> str | None:
    try:
        INSTALL_DIR.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return f"cannot create {INSTALL_DIR}: {e.strerror}"
    with open(INSTALL_DIR / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _version_ok():
            return None
        npm = shutil.which("npm")
        if npm is None:
            return "npm is not installed"
        try:
            p = subprocess.run(
                [npm, "install", "--prefix", str(INSTALL_DIR), "--no-audit", "--no-fund", "--no-save", PACKAGE],
                capture_output=True,
                text=True,
                timeout=600,
            )
        except subprocess.TimeoutExpired:
            return "npm install timed out after 600 s"
        if p.returncode != 0:
            tail = (p.stderr.strip().splitlines() or ["?"])[-1]
            return f"npm install {PACKAGE} failed: {tail}"
        if not _version_ok():
            return f"{BIN} does not run or is not {VERSION} (no native binary for this platform?)"
    return None


_HERE = Path(__file__).parent
_unavailable: list[str] = []  # why the real CLI cannot be used, once known


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Install the CLI once, before any of these tests run; where it cannot be, they are deselected and
    the run says so in one line (instead of one skip per test)."""
    mine = [i for i in items if _HERE in Path(str(i.path)).parents]
    if not mine:
        return
    why = _install()
    if why is None:
        return
    _unavailable.append(f"tests/claude_code: {len(mine)} tests not run: real Claude Code {VERSION} unavailable ({why})")
    config.hook.pytest_deselected(items=mine)
    drop = set(mine)
    items[:] = [i for i in items if i not in drop]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in _unavailable:
        terminalreporter.write_line(line, yellow=True)


@pytest.fixture(scope="session")
def claude_bin() -> Path:
    why = _install()
    if why:
        pytest.skip(f"real Claude Code {VERSION} unavailable ({why}): skipping tests/claude_code")
    return BIN


@pytest.fixture
def fake_api() -> Iterator[FakeAPI]:
    api = FakeAPI().start()
    try:
        yield api
    finally:
        api.close()


class Claude:
    """One throwaway Claude Code installation: HOME, CLAUDE_CONFIG_DIR and TMPDIR under ``base``."""

    def __init__(self, bin: Path, api: FakeAPI, base: Path, jenv: dict[str, str]) -> None:
        self.bin, self.api, self.base = bin, api, base
        self.home = base / "home"
        self.config = self.home / ".claude"
        self.tmp = base / "tmp"
        for d in (self.config, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        # Claude Code's own cleanup runs 5 s into a process unless it ran in the last 24 h: off by default
        # here (a held turn would otherwise delete what a test aged); tests of it remove this file.
        (self.config / ".last-cleanup").write_text(time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()))
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "CLAUDE_CONFIG_DIR": str(self.config),
            "TMPDIR": str(self.tmp),
            "XDG_CACHE_HOME": jenv["XDG_CACHE_HOME"],
            "XDG_CONFIG_HOME": str(base / "cc-xdg-config"),
            "ANTHROPIC_BASE_URL": api.url,
            "ANTHROPIC_API_KEY": "fake",
            "DISABLE_TELEMETRY": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_ENABLE_SDK_FILE_CHECKPOINTING": "1",
        }

    def project(self, name: str) -> Path:
        p = self.base / "work" / name
        p.mkdir(parents=True, exist_ok=True)
        return p

    def argv(self, prompt: str, *args: str) -> list[str]:
        # the prompt first: --debug and --allowedTools take optional/variadic values
        return [
            str(self.bin),
            prompt,
            "-p",
            "--output-format",
            "json",
            "--allowedTools=Read,Write,Edit,Bash,Task,Agent",
            *args,
        ]

    def run(self, prompt: str, *args: str, cwd: Path, timeout: float = 120) -> dict[str, Any]:
        """One `claude -p` turn; its JSON result (``session_id``, ``result``)."""
        p = subprocess.run(
            self.argv(prompt, *args), cwd=cwd, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        assert p.returncode == 0, f"claude exited {p.returncode}: {p.stderr[-2000:]} {p.stdout[-2000:]}"
        return json.loads(p.stdout)

    def start(self, prompt: str, *args: str, cwd: Path) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(prompt, *args), cwd=cwd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def finish(self, proc: subprocess.Popen[str], timeout: float = 120) -> dict[str, Any]:
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, f"claude exited {proc.returncode}: {err[-2000:]} {out[-2000:]}"
        return json.loads(out)

    def files(self) -> set[str]:
        """Every path under the config dir (relative), dirs with a trailing /."""
        out = set()
        for dirpath, dirnames, filenames in os.walk(self.config):
            rel = os.path.relpath(dirpath, self.config)
            for d in dirnames:
                out.add(os.path.normpath(os.path.join(rel, d)) + "/")
            for f in filenames:
                out.add(os.path.normpath(os.path.join(rel, f)))
        return out


@pytest.fixture
def claude(claude_bin: Path, fake_api: FakeAPI, tmp_path: Path, jenv: dict[str, str]) -> Claude:
    return Claude(claude_bin, fake_api, tmp_path / "cc", jenv)
