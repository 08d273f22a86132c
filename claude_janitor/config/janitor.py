"""The janitor's own TOML config (and the managed policy over it) → one validated Policy.

All problems in a file are gathered and reported together, each with its key path. Claude Code's settings
(the windows the policy falls back on) are config/claude.py.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from claude_janitor.cache.titles import KINDS
from claude_janitor.config.claude import parse_problem
from claude_janitor.durations import DurationError, parse_duration
from claude_janitor.errors import ConfigError
from claude_janitor.model import Action, HistoryPolicy, Policy, Rule, Window

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
    "sweep_cron": "daemon: crontab expression for the full sweep (instead of sweep_interval)",
    "audit_sink": 'also send audit records to "journald" or "syslog"',
    "trash": 'delete moves sessions into a trash for this long ("7d"; undo / restore bring them back)',
    "metrics_file": "write Prometheus metrics here after every sweep (node_exporter textfile collector: *.prom)",
    "audit_rotate_size": 'start a new audit log file past this size: "8MiB" (default), bytes, or 0 for never',
    "audit_keep_files": "rotated audit log files kept, oldest removed first (default 8; 0 keeps all)",
    "audit_compress": "compress rotated audit log files but the newest with zstandard (default false)",
    "rule": "rules by project, kind, entrypoint or replied: [[rule]] tables",
    "stores": 'per-store windows for the stores beyond sessions: [stores] paste-cache = "7d" … ("forever" keeps)',
    "history": 'opt-in pruning of history.jsonl: [history] removed_sessions = true, retention = "180d"',
}
HISTORY_KEYS: dict[str, str] = {
    "removed_sessions": "drop the prompt-history lines of sessions the janitor removes (true/false)",
    "retention": 'also drop prompt-history lines older than this ("180d"; default "forever")',
}
RULE_KEYS: dict[str, str] = {
    "project": 'glob matched against the project path (e.g. "~/work/*") or its encoded dir name',
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
        raise ConfigError(f"{what} {path}: invalid TOML: {parse_problem(e)}") from None
    return RawConfig(path, data)


def _duration(
    value: object, where: str, errors: list[str], *, allow_forever: bool = True, allow_zero: bool = False
) -> float | None:
    try:
        return parse_duration(value, allow_forever=allow_forever, allow_zero=allow_zero)
    except DurationError as e:
        errors.append(f"{where}: {e}")
        return None


def _action(value: object, where: str, errors: list[str]) -> Action | None:
    if not isinstance(value, str) or value not in ACTIONS:
        errors.append(f'{where}: must be "delete" or "archive", got {value!r}')
        return None
    return ACTIONS[value]


def _nonneg_int(value: object, where: str, errors: list[str]) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        errors.append(f"{where}: must be a whole number ≥ 0, got {value!r}")
        return None
    return value


SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
}


def parse_size(value: object) -> int:
    """A byte count from a whole number or a string like "8MiB", "512K", "1GB" (ValueError if not one)."""
    if isinstance(value, bool):
        raise ValueError(f'must be a size like "8MiB" or a number of bytes, got {value!r}')
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"must not be negative, got {value!r}")
        return value
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        num = text.rstrip("kmgib")
        unit = text[len(num) :]
        if num.isdigit() and unit in SIZE_UNITS and len(num) < 16:
            return int(num) * SIZE_UNITS[unit]
    raise ValueError(f'must be a size like "8MiB" or a number of bytes, got {value!r}')


@dataclass(frozen=True)
class AuditSettings:
    rotate_bytes: int
    keep: int
    compress: bool


def audit_settings(data: dict[str, Any], errors: list[str] | None = None, where: str = "config") -> AuditSettings:
    """The audit log's rotation keys (defaults for what is missing or, without ``errors``, invalid)."""
    from claude_janitor.audit.records import KEEP_ROTATED, ROTATE_BYTES

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


def build_policy(
    raw: RawConfig, *, older_than: str | None = None, action: str | None = None, managed: RawConfig | None = None
) -> Policy:
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
        locked = [
            f"{flag}: {key} is set by the managed policy {managed.path} and cannot be overridden"
            for flag, key, given in (("--older-than", "retention", older_than), ("--action", "action", action))
            if given and key in managed.data
        ]
        if problems or locked:
            raise ConfigError("\n".join(problems + locked))
        msrc = f"managed policy {managed.path}"
        merged = RawConfig(raw.path, {**raw.data, **managed.data})
        return build_policy_layer(
            merged, older_than=older_than, action=action, _key_sources=dict.fromkeys(managed.data, msrc)
        )
    return build_policy_layer(raw, older_than=older_than, action=action)


class _Layer:
    """One config file being read into a Policy: where problems are reported, whom each key is credited to."""

    def __init__(self, raw: RawConfig, key_sources: dict[str, str]) -> None:
        self.data = raw.data
        self.where = str(raw.path) if raw.path else "config"
        self.file_src = f"janitor config {raw.path}" if raw.path else "janitor config"
        self.key_sources = key_sources
        self.errors: list[str] = []
        self.policy = Policy()

    def src(self, key: str) -> str:
        return self.key_sources.get(key, self.file_src)

    def at(self, key: str) -> str:
        return f"{self.where}: {key}"

    def credit(self, key: str) -> None:
        self.policy.sources[key] = self.src(key)


def _known_keys(c: _Layer) -> None:
    for key in c.data:
        if key in TOP_KEYS:
            c.credit(key)
    for key in c.data:
        if key not in TOP_KEYS:
            c.errors.append(f"{c.where}: unknown key {key!r}{_suggest(key, TOP_KEYS)}")


def _windows(c: _Layer) -> None:
    """retention, grace, action, keep_last: how sessions are judged."""
    data, policy = c.data, c.policy
    if "retention" in data:
        secs = _duration(data["retention"], c.at("retention"), c.errors)
        if not any(e.startswith(c.at("retention")) for e in c.errors):
            policy.retention = Window(secs, c.src("retention"))
            c.credit("retention")
    if "grace" in data:
        g = _duration(data["grace"], c.at("grace"), c.errors, allow_forever=False, allow_zero=True)
        if g is not None:
            policy.grace = g
            c.credit("grace")
    if "action" in data:
        a = _action(data["action"], c.at("action"), c.errors)
        if a is not None:
            policy.action = a
            c.credit("action")
    if "keep_last" in data:
        k = _nonneg_int(data["keep_last"], c.at("keep_last"), c.errors)
        if k is not None:
            policy.keep_last = k
            c.credit("keep_last")


def _archive_and_guard(c: _Layer) -> None:
    """archive_dir, archive_retention and the mass-removal guard."""
    data, policy, errors = c.data, c.policy, c.errors
    if "archive_dir" in data:
        if not isinstance(data["archive_dir"], str) or not data["archive_dir"].strip():
            errors.append(f"{c.where}: archive_dir: must be a path string")
        else:
            policy.archive_dir = os.path.abspath(os.path.expanduser(data["archive_dir"]))
            c.credit("archive_dir")
    if "archive_retention" in data:
        secs = _duration(data["archive_retention"], c.at("archive_retention"), errors)
        policy.archive_retention = Window(secs, c.src("archive_retention"))
    if "max_delete_count" in data:
        policy.max_delete_count = _nonneg_int(data["max_delete_count"], c.at("max_delete_count"), errors)
    if "max_delete_percent" in data:
        v = data["max_delete_percent"]
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 100:
            errors.append(f"{c.where}: max_delete_percent: must be a number from 0 to 100, got {v!r}")
        else:
            policy.max_delete_percent = float(v)


def _daemon_and_audit(c: _Layer) -> None:
    """sweep_interval, sweep_cron, audit_sink and the audit rotation keys (checked here, used elsewhere)."""
    data, errors = c.data, c.errors
    if "sweep_interval" in data:
        _duration(data["sweep_interval"], c.at("sweep_interval"), errors, allow_forever=False)
    if "sweep_cron" in data and not isinstance(data["sweep_cron"], str):
        errors.append(f'{c.where}: sweep_cron: must be a crontab string like "0 3 * * *"')
    if "audit_sink" in data and data["audit_sink"] not in ("journald", "syslog", "none"):
        errors.append(f'{c.where}: audit_sink: must be "journald", "syslog" or "none", got {data["audit_sink"]!r}')
    audit_settings(data, errors, c.where)


def _extras(c: _Layer) -> None:
    """trash, metrics_file, [stores], [history]."""
    data, policy, errors = c.data, c.policy, c.errors
    if "trash" in data:
        n = len(errors)
        secs = _duration(data["trash"], c.at("trash"), errors)
        if len(errors) == n:
            policy.trash = Window(secs, c.src("trash"))
            c.credit("trash")
    if "metrics_file" in data:
        v = data["metrics_file"]
        if not isinstance(v, str) or not v.strip() or "\0" in v:
            errors.append(f"{c.where}: metrics_file: must be a path string")
        else:
            policy.metrics_file = os.path.abspath(os.path.expanduser(v))
            c.credit("metrics_file")
    if "stores" in data:
        _stores(data["stores"], c.where, c.src("stores"), policy, errors)
    if "history" in data:
        _history(data["history"], c.where, c.src("history"), policy, errors)


def _rule_selector_problem(r: dict[str, Any], where: str) -> str | None:
    """Why a [[rule]]'s selectors (project, kind, entrypoint, replied) are unusable, or None."""
    if not any(k in r for k in ("project", "kind", "entrypoint", "replied")):
        return f"{where}: says which sessions it is for with at least one of project, kind, entrypoint, replied"
    pattern = r.get("project")
    if pattern is not None and (not isinstance(pattern, str) or not pattern.strip()):
        return f"{where}: project: must be a glob string, got {pattern!r}"
    kind = r.get("kind")
    if kind is not None and kind not in KINDS:
        return f"{where}: kind: must be one of {', '.join(repr(k) for k in KINDS)}, got {kind!r}" + (
            _suggest(kind, KINDS) if isinstance(kind, str) else ""
        )
    ep = r.get("entrypoint")
    if ep is not None and (not isinstance(ep, str) or not ep.strip() or len(ep) > 64):
        return f'{where}: entrypoint: must be a name or glob like "sdk-cli" or "sdk-*", got {ep!r}'
    replied = r.get("replied")
    if replied is not None and not isinstance(replied, bool):
        return f"{where}: replied: must be true or false, got {replied!r}"
    return None


def _rules(c: _Layer) -> None:
    errors, policy = c.errors, c.policy
    rules = c.data.get("rule", [])
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        errors.append(f"{c.where}: rule: must be [[rule]] tables")
        rules = []
    for i, r in enumerate(rules):
        where = f"{c.where}: rule[{i + 1}]"
        for key in r:
            if key not in RULE_KEYS:
                errors.append(f"{where}: unknown key {key!r}{_suggest(key, RULE_KEYS)}")
        problem = _rule_selector_problem(r, where)
        if problem:
            errors.append(problem)
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
        policy.rules.append(
            Rule(
                pattern=r.get("project"),
                retention=retention,
                action=act,
                keep_last=keep,
                retention_set=retention_set,
                index=i,
                kind=r.get("kind"),
                entrypoint=r.get("entrypoint"),
                replied=r.get("replied"),
            )
        )


def _overrides(c: _Layer, older_than: str | None, action: str | None) -> None:
    """The one-run flags --older-than and --action, over the file."""
    if older_than is not None:
        try:
            secs = parse_duration(older_than, allow_forever=False)
        except DurationError as e:
            c.errors.append(f"--older-than: {e}")
        else:
            c.policy.retention = Window(secs, "--older-than")
            c.policy.sources["retention"] = "--older-than"
    if action is not None:
        a = _action(action, "--action", c.errors)
        if a is not None:
            c.policy.action = a
            c.policy.sources["action"] = "--action"


def build_policy_layer(
    raw: RawConfig,
    *,
    older_than: str | None = None,
    action: str | None = None,
    _key_sources: dict[str, str] | None = None,
) -> Policy:
    """One config file (plus the one-run flags) into a Policy; every problem gathered into one ConfigError."""
    c = _Layer(raw, _key_sources or {})
    for step in (_known_keys, _windows, _archive_and_guard, _daemon_and_audit, _extras, _rules):
        step(c)
    _overrides(c, older_than, action)
    if c.errors:
        errors = c.errors
        raise ConfigError(
            "; ".join(errors) if len(errors) < 2 else f"{len(errors)} problems:\n  " + "\n  ".join(errors)
        )
    return c.policy


def _stores(table: object, where_file: str, source: str, policy: Policy, errors: list[str]) -> None:
    from claude_janitor.cache.layout import STORE_KEYS

    if not isinstance(table, dict):
        errors.append(f'{where_file}: stores: must be a [stores] table of store = "duration"')
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
