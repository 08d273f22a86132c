"""Where things live: Claude Code's config dirs and the janitor's own dirs (via platformdirs)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from claude_janitor.model import Policy

APP = "claude-janitor"

# Claude Code's managed-settings locations. Tests and fleets may point elsewhere with this variable.
MANAGED_ENV = "CLAUDE_JANITOR_MANAGED_DIR"


def claude_dirs(explicit: tuple[str, ...] | list[str] = ()) -> list[Path]:
    """The Claude config dirs to sweep: ``--claude-dir`` values, else ``$CLAUDE_CONFIG_DIR``, else ~/.claude."""
    if explicit:
        raw = list(explicit)
    elif os.environ.get("CLAUDE_CONFIG_DIR"):
        raw = [os.environ["CLAUDE_CONFIG_DIR"]]
    else:
        raw = [str(Path.home() / ".claude")]
    out: list[Path] = []
    for r in raw:
        p = Path(os.path.abspath(os.path.expanduser(r)))
        if p not in out:
            out.append(p)
    return out


def _system_path(env: str, darwin: str, other: str) -> Path:
    """``$env`` if set (tests, unusual fleets), else the platform's system-wide location."""
    if os.environ.get(env):
        return Path(os.environ[env])
    return Path(darwin if sys.platform == "darwin" else other)


def managed_settings_dir() -> Path:
    """Claude Code's managed-settings dir (system-wide policy)."""
    return _system_path(MANAGED_ENV, "/Library/Application Support/ClaudeCode", "/etc/claude-code")


POLICY_ENV = "CLAUDE_JANITOR_POLICY"


def managed_policy_path() -> Path:
    """The janitor's own system-wide policy file (rolled out by config management / MDM)."""
    return _system_path(
        POLICY_ENV, "/Library/Application Support/claude-janitor/policy.toml", "/etc/claude-janitor/policy.toml"
    )


@dataclass(frozen=True)
class JanitorDirs:
    config: Path
    state: Path
    log: Path
    data: Path

    @property
    def config_file(self) -> Path:
        return self.config / "config.toml"

    @property
    def audit_log(self) -> Path:
        return self.log / "audit.jsonl"

    @property
    def audit_anchor(self) -> Path:
        """A second copy of the audit log's head, away from the log's dir (see audit.py)."""
        return self.data / "audit.anchor"

    @property
    def lock_file(self) -> Path:
        return self.state / "sweep.lock"

    @property
    def archive_dir(self) -> Path:
        return self.data / "archives"

    @property
    def pins_file(self) -> Path:
        return self.state / "pins.json"

    @property
    def index_db(self) -> Path:
        return self.state / "index.sqlite3"

    @property
    def daemon_state(self) -> Path:
        return self.state / "daemon.json"


def janitor_dirs() -> JanitorDirs:
    import platformdirs

    return JanitorDirs(
        config=Path(platformdirs.user_config_dir(APP, appauthor=False)),
        state=Path(platformdirs.user_state_dir(APP, appauthor=False)),
        log=Path(platformdirs.user_log_dir(APP, appauthor=False)),
        data=Path(platformdirs.user_data_dir(APP, appauthor=False)),
    )


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) with mode 0700 for what we create."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def encode_project(cwd: str) -> str:
    """Claude Code's encoding of a cwd into a project dir name (every non-alphanumeric char → '-')."""
    return "".join(c if c.isascii() and c.isalnum() else "-" for c in cwd)


def archive_dir_for(pol: Policy, dirs: JanitorDirs) -> Path:
    """Where archives go: the policy's ``archive_dir``, else the janitor's data dir."""
    return Path(pol.archive_dir) if pol.archive_dir else dirs.archive_dir
