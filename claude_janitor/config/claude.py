"""Claude Code's settings hierarchy (managed, user, project files) → the cleanup windows the janitor follows."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from claude_janitor.errors import ConfigError
from claude_janitor.model import Policy, Session, Window

CLAUDE_DEFAULT_DAYS = 30


def parse_problem(e: BaseException) -> str:
    """One short line for a JSON or TOML parser's complaint."""
    if isinstance(e, RecursionError):
        return "nested too deeply"
    return str(e)[:200]


# ---- Claude Code's settings ---------------------------------------------------------------------
#
# A broken Claude Code settings file is not a janitor config error: it only makes Claude Code's window
# unknowable for the sessions whose window would come from it. Those are kept (and named); sessions whose
# window is set by the janitor itself (--older-than, a config retention, a rule) are decided as usual.


def read_settings(path: Path) -> dict[str, Any] | None:
    """A Claude settings file as a dict; None if it does not exist. ConfigError (one line) if broken.

    Read through saferead: a FIFO, a device, a directory or a huge file is refused, never waited on.
    Symlinks are followed (dotfiles repos link settings.json into place; Claude Code follows them too)."""
    from claude_janitor.fs.saferead import SETTINGS_MAX, read_input

    raw = read_input(path, what="settings file", limit=SETTINGS_MAX, follow=True)
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"settings file {path}: not UTF-8 text (byte {e.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"settings file {path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except (RecursionError, ValueError) as e:
        raise ConfigError(f"settings file {path}: invalid JSON: {parse_problem(e)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"settings file {path}: expected a JSON object at the top level")
    return data


DAYS_KEYS = ("cleanupPeriodDays", "desktopSessionCleanupPeriodDays")


def _valid_days(v: object, *, zero_ok: bool = False) -> bool:
    """cleanupPeriodDays: an integer ≥ 1; desktopSessionCleanupPeriodDays: ≥ 0 (0 = no ceiling)."""
    return not isinstance(v, bool) and isinstance(v, int) and v >= (0 if zero_ok else 1)


def cleanup_days(data: dict[str, Any] | None, path: Path) -> int | None:
    if not data or "cleanupPeriodDays" not in data:
        return None
    v = data["cleanupPeriodDays"]
    if not _valid_days(v):
        raise ConfigError(
            f"settings file {path}: cleanupPeriodDays must be a whole number ≥ 1, got {v!r:.40} "
            "(Claude Code rejects this file too)"
        )
    assert isinstance(v, int)
    return v


@dataclass
class SettingsLayer:
    """One Claude Code settings file as the janitor sees it. Never raises: a broken file has ``error``."""

    path: Path
    kind: str  # user | project | project-local | managed
    exists: bool = False
    data: dict[str, Any] | None = None
    error: str | None = None  # why it cannot be used (unreadable, invalid JSON, invalid cleanupPeriodDays)
    days: int | None = None  # a valid cleanupPeriodDays it sets
    invalid_keys: list[str] = field(default_factory=list)  # retention keys with a value Claude Code rejects

    @property
    def managed(self) -> bool:
        return self.kind == "managed"

    @property
    def unparseable(self) -> bool:
        return self.error is not None and not self.invalid_keys


def settings_layer(path: Path, kind: str) -> SettingsLayer:
    layer = SettingsLayer(path, kind)
    try:
        layer.data = read_settings(path)
    except ConfigError as e:
        layer.exists, layer.error = True, str(e)
        return layer
    layer.exists = layer.data is not None
    if layer.data:
        layer.invalid_keys = [
            k
            for k in DAYS_KEYS
            if k in layer.data and not _valid_days(layer.data[k], zero_ok=k == "desktopSessionCleanupPeriodDays")
        ]
        try:
            layer.days = cleanup_days(layer.data, path)
        except ConfigError as e:
            layer.error = str(e)
    return layer


def managed_layers() -> list[SettingsLayer]:
    """Claude Code's managed settings: managed-settings.json, then managed-settings.d/*.json in name order
    (later wins). A drop-in dir that cannot be listed is a layer of its own, with the error."""
    from claude_janitor.config.paths import managed_settings_dir
    from claude_janitor.fs.saferead import InputError, list_dir

    base = managed_settings_dir()
    out = [settings_layer(base / "managed-settings.json", "managed")]
    drop_in = base / "managed-settings.d"
    try:
        names = list_dir(drop_in, what="managed settings dir")
    except InputError as e:
        out.append(SettingsLayer(drop_in, "managed", True, error=str(e)))
        names = None
    for n in names or []:
        if n.endswith(".json") and not n.startswith("."):
            out.append(settings_layer(drop_in / n, "managed"))
    return [layer for layer in out if layer.exists]


def user_layer(root: Path) -> SettingsLayer:
    return settings_layer(root / "settings.json", "user")


def project_layers(project_path: str) -> list[SettingsLayer]:
    """A project's own .claude/settings.json and settings.local.json (the path comes from a transcript's
    cwd, so it is untrusted: only an absolute path is used)."""
    if not project_path.startswith("/") or "\0" in project_path:
        bad = SettingsLayer(
            Path("/"),
            "project",
            True,
            error=f"project path {project_path[:200]!r} from the transcript is not an absolute "
            "path; its settings cannot be found",
        )
        return [bad]
    base = Path(project_path) / ".claude"
    return [
        layer
        for layer in (
            settings_layer(base / "settings.json", "project"),
            settings_layer(base / "settings.local.json", "project-local"),
        )
        if layer.exists
    ]


MAX_DAYS = 1000 * 366  # beyond this a window reaches no date: Claude Code deletes nothing by it


def _window(days: int, source: str) -> Window:
    if days > MAX_DAYS:  # (Claude Code's cutoff becomes an Invalid Date at ~1e8 days, or years before 1970)
        return Window(
            None,
            f"{source}: {str(days)[:20]}{'…' if len(str(days)) > 20 else ''} days reach no "
            "date, so sessions never expire by it",
        )
    return Window(days * 86400.0, source)


def _label(layer: SettingsLayer) -> str:
    extra = {
        "managed": " (managed)",
        "project": " (applies to this project only)",
        "project-local": " (applies to this project only)",
    }.get(layer.kind, "")
    return f"cleanupPeriodDays in {layer.path}{extra}"


def window_of(layers: list[SettingsLayer], default: Window | None = None) -> Window | str:
    """Claude Code's cleanupPeriodDays from settings layers ordered low → high precedence: the highest layer
    that sets it wins. A broken layer above it (or anywhere, when none sets it) might set it too, so the
    window is unknowable: then the reason (a str) instead of a Window."""
    for layer in reversed(layers):
        if layer.error is not None:
            return (
                f"Claude Code's cleanupPeriodDays cannot be known: {layer.error}; sessions whose window "
                "comes from it are kept"
            )
        if layer.days is not None:
            return _window(layer.days, _label(layer))
    return default or _window(CLAUDE_DEFAULT_DAYS, "Claude Code default (30 days)")


def desktop_ceiling(layers: list[SettingsLayer]) -> Window | None:
    """Claude Code's exemption of desktop sessions from its cleanup, from settings layers (low → high):
    its ceiling (desktopSessionCleanupPeriodDays, the highest valid one; 0 or unset: none, seconds None), or
    None when the exemption is off (managed settings set cleanupPeriodDays)."""
    if any(layer.managed and layer.days is not None for layer in layers):
        return None
    for layer in reversed(layers):
        v = (layer.data or {}).get("desktopSessionCleanupPeriodDays")
        if _valid_days(v, zero_ok=True):
            assert isinstance(v, int)
            if v == 0:
                return Window(None, f"desktopSessionCleanupPeriodDays 0 in {layer.path}: no ceiling")
            return _window(v, f"desktopSessionCleanupPeriodDays in {layer.path}")
    return Window(None, "desktopSessionCleanupPeriodDays not set: no ceiling")


def root_window_or_doubt(root: Path, managed: list[SettingsLayer] | None = None) -> Window | str:
    """Claude Code's window for a config dir's sessions that have no project settings of their own."""
    return window_of([user_layer(root), *(managed_layers() if managed is None else managed)])


def claude_root_window(root: Path) -> Window:
    """Claude Code's effective cleanupPeriodDays for a config dir: managed wins over the user's.
    ConfigError when it cannot be known."""
    got = root_window_or_doubt(root)
    if isinstance(got, str):
        raise ConfigError(got)
    return got


def project_window(root_window: Window, project_path: str) -> Window:
    """The window for one project's sessions: its own settings apply to it (managed still wins)."""
    got = window_of([*project_layers(project_path), *managed_layers()], root_window)
    if isinstance(got, str):
        raise ConfigError(got)
    return got


def resolve_claude_windows(policy: Policy, roots: list[Path], sessions: list[Session]) -> list[str]:
    """Fill in Claude Code's effective window per root and per project (I/O: reads settings files), and
    return the problems found (each broken file once). Where a window cannot be known, the reason goes to
    ``policy.project_doubts`` / ``policy.claude_root_doubts``: policy.decide keeps the sessions that depend
    on it. Re-read on every call, so a fixed file is picked up by the next sweep or wake-up."""
    policy.claude_windows.clear()
    policy.project_doubts.clear()
    policy.claude_root_windows.clear()
    policy.claude_root_doubts.clear()
    policy.claude_desktop.clear()
    problems: dict[str, None] = {}
    managed = managed_layers()
    user: dict[str, SettingsLayer] = {}
    for root in roots:
        user[str(root)] = user_layer(root)
        policy.claude_desktop[str(root)] = desktop_ceiling([user[str(root)], *managed])
        got = window_of([user[str(root)], *managed])
        if isinstance(got, str):
            policy.claude_root_doubts[str(root)] = got
        else:
            policy.claude_root_windows[str(root)] = got
    for layer in [*user.values(), *managed]:
        if layer.error:
            problems[layer.error] = None
    cache: dict[tuple[str, str], Window | str] = {}
    for s in sessions:
        key = (s.root, s.project)
        if key in policy.claude_windows or key in policy.project_doubts or not s.project_path:
            continue
        ck = (s.root, s.project_path)
        if ck not in cache:
            own = project_layers(s.project_path)
            for layer in own:
                if layer.error:
                    problems[layer.error] = None
            ul = user.get(s.root) or user_layer(Path(s.root))
            cache[ck] = window_of([ul, *own, *managed])
        got = cache[ck]
        if isinstance(got, str):
            policy.project_doubts[key] = got
        else:
            policy.claude_windows[key] = got
    return [
        f"Claude Code settings problem: {p} (only sessions whose window comes from Claude Code's "
        "settings are kept; janitor retention, rules and --older-than still apply)"
        for p in problems
    ]
