"""Janitor TOML config + Claude Code's settings hierarchy → one validated Policy.

All problems in a file are gathered and reported together, each with its key path.
"""

from __future__ import annotations

import difflib
import json
import os
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from claude_janitor.cache.titles import KINDS
from claude_janitor.durations import DurationError, parse_duration
from claude_janitor.model import Action, ConfigError, HistoryPolicy, Policy, Rule, Session, Window

CLAUDE_DEFAULT_DAYS = 30

# Every key the config understands, with a one-line description (also used by `janitor doctor`).
TOP_KEYS: dict[str, str] = {
    "retention": 'default window: "30d", "12h", "forever" (default: Claude Code\'s cleanupPeriodDays)',
    "action": 'what to do with expired sessions: "delete" or "archive"',
    "grace": 'sessions active within this window are never touched (default "1h")',
    "keep_last": "always keep the N most recent sessions of each project (default 0)",
    "archive_dir": "where archives go (default: the platformdirs data dir)",
    "archive_retention": 'how long archives are kept (default "forever")',
    "max_delete_count": "refuse a run that would remove more than this many sessions without --force",
    "max_delete_percent": "refuse a run that would remove more than this % of sessions without --force",
    "sweep_interval": 'daemon: how often to run a full sweep (default "1d")',
    "sweep_cron": 'daemon: crontab expression for the full sweep (instead of sweep_interval)',
    "audit_sink": 'also send audit records to "journald" or "syslog"',
    "trash": 'delete moves sessions into a trash for this long ("7d"; undo / restore bring them back)',
    "metrics_file": "write Prometheus metrics here after every sweep (node_exporter textfile collector: *.prom)",
    "audit_rotate_size": 'start a new audit log file past this size: "8MiB" (default), bytes, or 0 for never',
    "audit_keep_files": "rotated audit log files kept, oldest removed first (default 8; 0 keeps all)",
    "audit_compress": "compress rotated audit log files but the newest with zstandard (default false)",
    "rule": "rules by project, kind, entrypoint or replied: [[rule]] tables",
    "stores": 'per-store windows for the stores beyond sessions: [stores] paste-cache = "7d" … ("forever" keeps)',
    "history": "opt-in pruning of history.jsonl: [history] removed_sessions = true, retention = \"180d\"",
}
HISTORY_KEYS: dict[str, str] = {
    "removed_sessions": "drop the prompt-history lines of sessions the janitor removes (true/false)",
    "retention": 'also drop prompt-history lines older than this ("180d"; default "forever")',
}
RULE_KEYS: dict[str, str] = {
    "project": "glob matched against the project path (e.g. \"~/work/*\") or its encoded dir name",
    "kind": 'how the session was run: "interactive", "headless" (claude -p), "sdk", "desktop", "side-files" '
            'or "unknown"',
    "entrypoint": 'glob on the entrypoint Claude Code recorded: "cli", "sdk-cli", "sdk-py", "sdk-*", '
                  '"claude-desktop" …',
    "replied": "true: a person typed into the session after its first prompt; false: nobody did",
    "retention": "this project's window",
    "action": "this project's action",
    "keep_last": "this project's keep_last",
}
ACTIONS = {"delete": Action.DELETE, "archive": Action.ARCHIVE}


@dataclass
class RawConfig:
    path: Path | None
    data: dict[str, Any]


def _suggest(key: str, known: Iterable[str]) -> str:
    near = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f" (did you mean {near[0]!r}?)" if near else ""


def read_toml(path: Path | None, *, required: bool, what: str = "config file") -> RawConfig:
    if path is None:
        return RawConfig(None, {})
    from claude_janitor.fs.saferead import CONFIG_MAX, read_input

    raw = read_input(path, what=what, limit=CONFIG_MAX, follow=True)
    if raw is None:
        if required:
            raise ConfigError(f"{what} {path} does not exist") from None
        return RawConfig(None, {})
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{what} {path}: not UTF-8 text (byte {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{what} {path}: invalid TOML: {e}") from None
    except (RecursionError, ValueError) as e:
        raise ConfigError(f"{what} {path}: invalid TOML: {_parse_problem(e)}") from None
    return RawConfig(path, data)


def _parse_problem(e: BaseException) -> str:
    if isinstance(e, RecursionError):
        return "nested too deeply"
    return str(e)[:200]


def _duration(value: object, where: str, errors: list[str], *, allow_forever: bool = True,
              allow_zero: bool = False) -> float | None:
    try:
        return parse_duration(value, allow_forever=allow_forever, allow_zero=allow_zero)
    except DurationError as e:
        errors.append(f"{where}: {e}")
        return None


def _action(value: object, where: str, errors: list[str]) -> Action | None:
    if not isinstance(value, str) or value not in ACTIONS:
        errors.append(f"{where}: must be \"delete\" or \"archive\", got {value!r}")
        return None
    return ACTIONS[value]


def _nonneg_int(value: object, where: str, errors: list[str]) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        errors.append(f"{where}: must be a whole number ≥ 0, got {value!r}")
        return None
    return value


SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1000, "kib": 1024, "m": 1024 ** 2, "mb": 1000 ** 2,
              "mib": 1024 ** 2, "g": 1024 ** 3, "gb": 1000 ** 3, "gib": 1024 ** 3}


def parse_size(value: object) -> int:
    """A byte count from a whole number or a string like "8MiB", "512K", "1GB" (ValueError if not one)."""
    if isinstance(value, bool):
        raise ValueError(f"must be a size like \"8MiB\" or a number of bytes, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"must not be negative, got {value!r}")
        return value
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        num = text.rstrip("kmgib")
        unit = text[len(num):]
        if num.isdigit() and unit in SIZE_UNITS and len(num) < 16:
            return int(num) * SIZE_UNITS[unit]
    raise ValueError(f"must be a size like \"8MiB\" or a number of bytes, got {value!r}")


@dataclass(frozen=True)
class AuditSettings:
    rotate_bytes: int
    keep: int
    compress: bool


def audit_settings(data: dict[str, Any], errors: list[str] | None = None, where: str = "config") -> AuditSettings:
    """The audit log's rotation keys (defaults for what is missing or, without ``errors``, invalid)."""
    from claude_janitor.audit.log import KEEP_ROTATED, ROTATE_BYTES

    errs: list[str] = [] if errors is None else errors
    rotate, keep, compress = ROTATE_BYTES, KEEP_ROTATED, False
    if "audit_rotate_size" in data:
        try:
            rotate = parse_size(data["audit_rotate_size"])
        except ValueError as e:
            errs.append(f"{where}: audit_rotate_size: {e}")
    if "audit_keep_files" in data:
        k = _nonneg_int(data["audit_keep_files"], f"{where}: audit_keep_files", errs)
        keep = KEEP_ROTATED if k is None else k
    if "audit_compress" in data:
        if isinstance(data["audit_compress"], bool):
            compress = data["audit_compress"]
        else:
            errs.append(f"{where}: audit_compress: must be true or false, got {data['audit_compress']!r}")
    return AuditSettings(rotate, keep, compress)


def build_policy(raw: RawConfig, *, older_than: str | None = None, action: str | None = None,
                 managed: RawConfig | None = None) -> Policy:
    """Validate the janitor config (plus one-run overrides) into a Policy. Claude windows come later.

    ``managed`` is the system-wide policy file (config management / MDM): every key it sets wins over
    the user's, key by key, like Claude Code's managed settings (``rule`` is one key: a managed rule list
    replaces the user's). Each file is validated on its own, and all problems are reported together."""
    if managed is not None and managed.path is not None:
        problems = []
        for layer in (managed, raw):
            try:
                build_policy(layer)
            except ConfigError as e:
                problems.append(str(e))
        locked = [f"{flag}: {key} is set by the managed policy {managed.path} and cannot be overridden"
                  for flag, key, given in (("--older-than", "retention", older_than),
                                           ("--action", "action", action)) if given and key in managed.data]
        if problems or locked:
            raise ConfigError("\n".join(problems + locked))
        msrc = f"managed policy {managed.path}"
        merged = RawConfig(raw.path, {**raw.data, **managed.data})
        return build_policy_layer(merged, older_than=older_than, action=action,
                                  _key_sources=dict.fromkeys(managed.data, msrc))
    return build_policy_layer(raw, older_than=older_than, action=action)


def build_policy_layer(raw: RawConfig, *, older_than: str | None = None, action: str | None = None,
                       _key_sources: dict[str, str] | None = None) -> Policy:
    errors: list[str] = []
    where_file = str(raw.path) if raw.path else "config"
    data = raw.data
    policy = Policy()
    file_src = f"janitor config {raw.path}" if raw.path else "janitor config"
    key_sources = _key_sources or {}

    def src_of(key: str) -> str:
        return key_sources.get(key, file_src)

    for key in data:
        if key in TOP_KEYS:
            policy.sources[key] = src_of(key)
    for key in data:
        if key not in TOP_KEYS:
            errors.append(f"{where_file}: unknown key {key!r}{_suggest(key, TOP_KEYS)}")

    if "retention" in data:
        secs = _duration(data["retention"], f"{where_file}: retention", errors)
        if not any(e.startswith(f"{where_file}: retention") for e in errors):
            policy.retention = Window(secs, src_of("retention"))
            policy.sources["retention"] = src_of("retention")
    if "grace" in data:
        g = _duration(data["grace"], f"{where_file}: grace", errors, allow_forever=False, allow_zero=True)
        if g is not None:
            policy.grace = g
            policy.sources["grace"] = src_of("grace")
    if "action" in data:
        a = _action(data["action"], f"{where_file}: action", errors)
        if a is not None:
            policy.action = a
            policy.sources["action"] = src_of("action")
    if "keep_last" in data:
        k = _nonneg_int(data["keep_last"], f"{where_file}: keep_last", errors)
        if k is not None:
            policy.keep_last = k
            policy.sources["keep_last"] = src_of("keep_last")
    if "archive_dir" in data:
        if not isinstance(data["archive_dir"], str) or not data["archive_dir"].strip():
            errors.append(f"{where_file}: archive_dir: must be a path string")
        else:
            policy.archive_dir = os.path.abspath(os.path.expanduser(data["archive_dir"]))
            policy.sources["archive_dir"] = src_of("archive_dir")
    if "archive_retention" in data:
        secs = _duration(data["archive_retention"], f"{where_file}: archive_retention", errors)
        policy.archive_retention = Window(secs, src_of("archive_retention"))
    if "max_delete_count" in data:
        policy.max_delete_count = _nonneg_int(data["max_delete_count"], f"{where_file}: max_delete_count",
                                              errors)
    if "max_delete_percent" in data:
        v = data["max_delete_percent"]
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 100:
            errors.append(f"{where_file}: max_delete_percent: must be a number from 0 to 100, got {v!r}")
        else:
            policy.max_delete_percent = float(v)
    if "sweep_interval" in data:
        _duration(data["sweep_interval"], f"{where_file}: sweep_interval", errors, allow_forever=False)
    if "sweep_cron" in data and not isinstance(data["sweep_cron"], str):
        errors.append(f"{where_file}: sweep_cron: must be a crontab string like \"0 3 * * *\"")
    if "audit_sink" in data and data["audit_sink"] not in ("journald", "syslog", "none"):
        errors.append(f"{where_file}: audit_sink: must be \"journald\", \"syslog\" or \"none\", "
                      f"got {data['audit_sink']!r}")
    audit_settings(data, errors, where_file)

    if "trash" in data:
        n = len(errors)
        secs = _duration(data["trash"], f"{where_file}: trash", errors)
        if len(errors) == n:
            policy.trash = Window(secs, src_of("trash"))
            policy.sources["trash"] = src_of("trash")
    if "metrics_file" in data:
        v = data["metrics_file"]
        if not isinstance(v, str) or not v.strip() or "\0" in v:
            errors.append(f"{where_file}: metrics_file: must be a path string")
        else:
            policy.metrics_file = os.path.abspath(os.path.expanduser(v))
            policy.sources["metrics_file"] = src_of("metrics_file")
    if "stores" in data:
        _stores(data["stores"], where_file, src_of("stores"), policy, errors)
    if "history" in data:
        _history(data["history"], where_file, src_of("history"), policy, errors)

    rules = data.get("rule", [])
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        errors.append(f"{where_file}: rule: must be [[rule]] tables")
        rules = []
    for i, r in enumerate(rules):
        where = f"{where_file}: rule[{i + 1}]"
        for key in r:
            if key not in RULE_KEYS:
                errors.append(f"{where}: unknown key {key!r}{_suggest(key, RULE_KEYS)}")
        if not any(k in r for k in ("project", "kind", "entrypoint", "replied")):
            errors.append(f"{where}: says which sessions it is for with at least one of project, kind, "
                          "entrypoint, replied")
            continue
        pattern = r.get("project")
        if pattern is not None and (not isinstance(pattern, str) or not pattern.strip()):
            errors.append(f"{where}: project: must be a glob string, got {pattern!r}")
            continue
        kind = r.get("kind")
        if kind is not None and kind not in KINDS:
            errors.append(f"{where}: kind: must be one of {', '.join(repr(k) for k in KINDS)}, got {kind!r}"
                          + (_suggest(kind, KINDS) if isinstance(kind, str) else ""))
            continue
        ep = r.get("entrypoint")
        if ep is not None and (not isinstance(ep, str) or not ep.strip() or len(ep) > 64):
            errors.append(f"{where}: entrypoint: must be a name or glob like \"sdk-cli\" or \"sdk-*\", got {ep!r}")
            continue
        replied = r.get("replied")
        if replied is not None and not isinstance(replied, bool):
            errors.append(f"{where}: replied: must be true or false, got {replied!r}")
            continue
        retention = policy.retention.seconds if policy.retention else None
        retention_set = "retention" in r
        if retention_set:
            n = len(errors)
            retention = _duration(r["retention"], f"{where}: retention", errors)
            if len(errors) > n:
                continue
        act = _action(r["action"], f"{where}: action", errors) if "action" in r else None
        keep = _nonneg_int(r["keep_last"], f"{where}: keep_last", errors) if "keep_last" in r else None
        policy.rules.append(Rule(pattern=pattern, retention=retention, action=act, keep_last=keep,
                                 retention_set=retention_set, index=i, kind=kind, entrypoint=ep,
                                 replied=replied))

    if older_than is not None:
        try:
            secs = parse_duration(older_than, allow_forever=False)
        except DurationError as e:
            errors.append(f"--older-than: {e}")
        else:
            policy.retention = Window(secs, "--older-than")
            policy.sources["retention"] = "--older-than"
    if action is not None:
        a = _action(action, "--action", errors)
        if a is not None:
            policy.action = a
            policy.sources["action"] = "--action"

    if errors:
        raise ConfigError("; ".join(errors) if len(errors) < 2 else
                          f"{len(errors)} problems:\n  " + "\n  ".join(errors))
    return policy


def _stores(table: object, where_file: str, source: str, policy: Policy, errors: list[str]) -> None:
    from claude_janitor.cache.layout import STORE_KEYS

    if not isinstance(table, dict):
        errors.append(f"{where_file}: stores: must be a [stores] table of store = \"duration\"")
        return
    for key, value in table.items():
        where = f"{where_file}: stores.{key}"
        if key not in STORE_KEYS:
            errors.append(f"{where}: unknown store{_suggest(key, STORE_KEYS)}; known: {', '.join(STORE_KEYS)}")
            continue
        n = len(errors)
        secs = _duration(value, where, errors, allow_zero=True)
        if len(errors) == n:
            policy.stores[key] = Window(secs, f"stores.{key} in {source}")


def _history(table: object, where_file: str, source: str, policy: Policy, errors: list[str]) -> None:
    if not isinstance(table, dict):
        errors.append(f"{where_file}: history: must be a [history] table (removed_sessions, retention)")
        return
    for key in table:
        if key not in HISTORY_KEYS:
            errors.append(f"{where_file}: history.{key}: unknown key{_suggest(key, HISTORY_KEYS)}")
    removed = table.get("removed_sessions", False)
    if not isinstance(removed, bool):
        errors.append(f"{where_file}: history.removed_sessions: must be true or false, got {removed!r}")
        removed = False
    retention = None
    if "retention" in table:
        retention = _duration(table["retention"], f"{where_file}: history.retention", errors)
    policy.history = HistoryPolicy(removed_sessions=removed, retention=retention, source=source)


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
        raise ConfigError(f"settings file {path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}"
                          ) from None
    except (RecursionError, ValueError) as e:
        raise ConfigError(f"settings file {path}: invalid JSON: {_parse_problem(e)}") from None
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
        raise ConfigError(f"settings file {path}: cleanupPeriodDays must be a whole number ≥ 1, got {v!r:.40} "
                          "(Claude Code rejects this file too)")
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
        layer.invalid_keys = [k for k in DAYS_KEYS if k in layer.data
                              and not _valid_days(layer.data[k], zero_ok=k == "desktopSessionCleanupPeriodDays")]
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
        bad = SettingsLayer(Path("/"), "project", True,
                            error=f"project path {project_path[:200]!r} from the transcript is not an absolute "
                                  "path; its settings cannot be found")
        return [bad]
    base = Path(project_path) / ".claude"
    return [layer for layer in (settings_layer(base / "settings.json", "project"),
                                settings_layer(base / "settings.local.json", "project-local")) if layer.exists]


MAX_DAYS = 1000 * 366  # beyond this a window reaches no date: Claude Code deletes nothing by it


def _window(days: int, source: str) -> Window:
    if days > MAX_DAYS:  # (Claude Code's cutoff becomes an Invalid Date at ~1e8 days, or years before 1970)
        return Window(None, f"{source}: {str(days)[:20]}{'…' if len(str(days)) > 20 else ''} days reach no "
                            "date, so sessions never expire by it")
    return Window(days * 86400.0, source)


def _label(layer: SettingsLayer) -> str:
    extra = {"managed": " (managed)", "project": " (applies to this project only)",
             "project-local": " (applies to this project only)"}.get(layer.kind, "")
    return f"cleanupPeriodDays in {layer.path}{extra}"


def window_of(layers: list[SettingsLayer], default: Window | None = None) -> Window | str:
    """Claude Code's cleanupPeriodDays from settings layers ordered low → high precedence: the highest layer
    that sets it wins. A broken layer above it (or anywhere, when none sets it) might set it too, so the
    window is unknowable: then the reason (a str) instead of a Window."""
    for layer in reversed(layers):
        if layer.error is not None:
            return (f"Claude Code's cleanupPeriodDays cannot be known: {layer.error}; sessions whose window "
                    "comes from it are kept")
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
    return [f"Claude Code settings problem: {p} (only sessions whose window comes from Claude Code's "
            "settings are kept; janitor retention, rules and --older-than still apply)" for p in problems]


def default_config_path() -> Path:
    from claude_janitor.config.paths import janitor_dirs

    return janitor_dirs().config_file


def read_managed_policy() -> RawConfig:
    """The system-wide janitor policy (RawConfig(None, {}) when there is none)."""
    from claude_janitor.config.paths import managed_policy_path

    return read_toml(managed_policy_path(), required=False, what="managed policy")


def load_raw(config: str | None) -> tuple[RawConfig, RawConfig]:
    """(the user's config, the managed policy) as read from disk; ConfigError if either is broken."""
    path = Path(config) if config else default_config_path()
    return read_toml(path, required=config is not None), read_managed_policy()


def effective_raw(config: str | None) -> dict[str, Any]:
    """The config keys in force: the user's, with every key the managed policy sets replaced by its value."""
    user, managed = load_raw(config)
    return {**user.data, **managed.data}


def load_policy(config: str | None, *, older_than: str | None = None, action: str | None = None) -> Policy:
    raw, managed = load_raw(config)
    return build_policy(raw, older_than=older_than, action=action, managed=managed)
