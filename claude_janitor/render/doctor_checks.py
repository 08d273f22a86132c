"""What `janitor doctor` looks at: the effective retention and where each value came from, Claude Code's own
sweep status (and when its settings make it skip itself), and the privacy settings Claude Code honours,
collected into one report (``collect``; doctor.py renders it). Read-only; reports broken config instead of
stopping.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from claude_janitor import __version__
from claude_janitor.config import claude as claude_settings
from claude_janitor.config import janitor as config
from claude_janitor.config.paths import JanitorDirs, managed_policy_path, managed_settings_dir
from claude_janitor.durations import human_bytes, human_duration
from claude_janitor.errors import ConfigError
from claude_janitor.model import Policy, Window
from claude_janitor.render.doctor import fmt_window

PRIVACY_VARS: dict[str, str] = {
    "DISABLE_TELEMETRY": "no usage telemetry (Statsig)",
    "DISABLE_ERROR_REPORTING": "no error reports (Sentry)",
    "DISABLE_BUG_COMMAND": "no /bug command (which uploads the session transcript)",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "all of the above, and no auto-updater",
}
IMPLIES = "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"
CLEANUP_EVERY = 24 * 3600.0  # Claude Code skips its sweep when .last-cleanup is younger than this


def _truthy(v: str) -> str:
    low = v.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return "on"
    if low in ("", "0", "false", "no", "off"):
        return "off"
    return "set"


def privacy(
    root: Path, environ: dict[str, str] | None = None, layers: list[claude_settings.SettingsLayer] | None = None
) -> list[dict[str, Any]]:
    """Each privacy variable: its effective value and where it came from.

    Claude Code applies settings.json's ``env`` object over its process environment, and managed settings
    over the user's: process env < ~/.claude/settings.json env < managed settings env."""
    environ = dict(os.environ) if environ is None else environ
    found: list[tuple[str, dict[str, Any]]] = [("environment", environ)]
    if layers is None:
        layers = [claude_settings.user_layer(root), *claude_settings.managed_layers()]
    for layer in layers:
        env = layer.data.get("env") if layer.data else None
        if isinstance(env, dict):
            label = f"env in {layer.path}" + (" (managed)" if layer.managed else "")
            found.append((label, {k: str(v) for k, v in env.items()}))
    out = []
    for var, what in PRIVACY_VARS.items():
        value = source = None
        for label, env in found:
            if var in env:
                value, source = env[var], label
        out.append(
            {
                "name": var,
                "effect": what,
                "value": value,
                "source": source,
                "state": "not set" if value is None else _truthy(value),
            }
        )
    umbrella = out[-1]
    if umbrella["state"] == "on":
        for item in out[:-1]:
            if item["state"] != "on":
                item["state"] = "on"
                item["implied_by"] = IMPLIES
    return out


def last_cleanup(root: Path, now: float) -> dict[str, Any]:
    """Claude Code's own sweep: when it last ran (the mtime of .last-cleanup) and when it may run again."""
    f = root / ".last-cleanup"
    try:
        st = f.lstat()
    except FileNotFoundError:
        return {
            "file": str(f),
            "last_run": None,
            "status": "no record of a cleanup: it runs at the next Claude Code start",
        }
    except OSError as e:
        return {"file": str(f), "last_run": None, "status": f"unreadable: {e.strerror}"}
    age = now - st.st_mtime
    nxt = st.st_mtime + CLEANUP_EVERY
    if age < 0:
        status = "last run is in the future (clock skew?)"
    elif age < CLEANUP_EVERY:
        status = f"ran {human_duration(age)} ago; skipped by Claude Code for another {human_duration(nxt - now)}"
    else:
        status = f"ran {human_duration(age)} ago; due at the next Claude Code start"
    return {"file": str(f), "last_run": st.st_mtime, "age_seconds": age, "next_allowed": nxt, "status": status}


def _settings_layers(layers: list[claude_settings.SettingsLayer]) -> list[dict[str, Any]]:
    out = []
    for layer in layers:
        item: dict[str, Any] = {"file": str(layer.path), "managed": layer.managed, "exists": layer.exists}
        if layer.error:
            item["error"] = layer.error
        else:
            item["cleanupPeriodDays"] = layer.days
        out.append(item)
    return out


def own_sweep_skips(layers: list[claude_settings.SettingsLayer], where: str = "") -> list[dict[str, str]]:
    """When Claude Code's own cleanup skips itself with these settings (user, project, managed layers), and
    why — its rules, read from the 2.1.328 binary (see CLAUDE-CODE-CLEANUP.md):

    * a managed (policy) cleanupPeriodDays that is valid bypasses every error check: it always sweeps;
    * ``settings_unknowable``: a settings file cannot be parsed;
    * ``settings_invalid_key_set``: a validation error while cleanupPeriodDays or
      desktopSessionCleanupPeriodDays is set (0, negative, not a whole number …);
    * ``user_source_disabled``: started with --setting-sources leaving out ``user`` while no enabled source
      sets cleanupPeriodDays (depends on how it is started: reported as a condition)."""
    if any(layer.managed and layer.days is not None for layer in layers):
        return []
    out = []
    for layer in layers:
        if layer.unparseable:
            out.append(
                {
                    "reason": "settings_unknowable",
                    "file": str(layer.path),
                    "why": f"Claude Code's own cleanup skips itself{where}: {layer.error}",
                }
            )
        elif layer.invalid_keys:
            keys = ", ".join(f"{k} = {layer.data.get(k)!r:.20}" for k in layer.invalid_keys) if layer.data else ""
            out.append(
                {
                    "reason": "settings_invalid_key_set",
                    "file": str(layer.path),
                    "why": f"Claude Code's own cleanup skips itself{where}: {layer.path} sets {keys}, which "
                    "it rejects (a whole number ≥ 1 is required; 0 does not mean 'never')",
                }
            )
    if not where and not any(layer.days is not None and layer.kind != "user" for layer in layers):
        out.append(
            {
                "reason": "user_source_disabled",
                "file": "",
                "why": "if Claude Code is started with --setting-sources leaving out 'user', its own cleanup "
                "skips itself unless a project or managed settings file sets cleanupPeriodDays",
                "conditional": "yes",
            }
        )
    return out


def _project_overrides(root: Path) -> list[dict[str, Any]]:
    """Projects whose own .claude/settings*.json set cleanupPeriodDays (one transcript tail read per project).

    Claude Code's sweep is machine-wide but uses the settings of the project it was started in: a short
    window in one project deletes every project's sessions."""
    from claude_janitor.cache.transcript import read_tail

    out: list[dict[str, Any]] = []
    try:
        projects = sorted(os.scandir(root / "projects"), key=lambda e: e.name)
    except OSError:
        return out
    for pe in projects:
        if not pe.is_dir(follow_symlinks=False):
            continue
        try:
            newest = max(
                (e for e in os.scandir(pe.path) if e.name.endswith(".jsonl") and e.is_file(follow_symlinks=False)),
                key=lambda e: e.stat().st_mtime,
                default=None,
            )
        except OSError:
            continue
        if newest is None:
            continue
        try:
            fd = os.open(newest.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            cwd = read_tail(fd, os.fstat(fd).st_size).cwd
        except OSError:
            cwd = None
        finally:
            os.close(fd)
        if not cwd:
            continue
        own = claude_settings.project_layers(cwd)
        skips = own_sweep_skips(own, f" when started in {cwd}")
        for layer in own:
            if layer.error:
                out.append(
                    {
                        "project": cwd,
                        "file": str(layer.path),
                        "error": layer.error,
                        "own_sweep_skips": [x for x in skips if x["file"] == str(layer.path)],
                    }
                )
            elif layer.days is not None:
                out.append({"project": cwd, "file": str(layer.path), "cleanupPeriodDays": layer.days})
    return out


def _policy_rows(pol: Policy, raw: dict[str, Any], dirs: JanitorDirs) -> list[dict[str, Any]]:
    src = pol.sources
    d = "default"
    aud = config.audit_settings(raw)
    rows = [
        (
            "retention",
            fmt_window(pol.retention.seconds)
            if pol.retention
            else "Claude Code's cleanupPeriodDays (per config dir / project, below)",
            src.get("retention", d),
        ),
        ("action", pol.action.value, src.get("action", d)),
        ("grace", human_duration(pol.grace), src.get("grace", d)),
        ("keep_last", str(pol.keep_last), src.get("keep_last", d)),
        ("archive_dir", pol.archive_dir or str(dirs.archive_dir), src.get("archive_dir", d)),
        (
            "archive_retention",
            fmt_window(pol.archive_retention.seconds) if pol.archive_retention else "forever",
            src.get("archive_retention", d),
        ),
        (
            "max_delete_count",
            "none" if pol.max_delete_count is None else str(pol.max_delete_count),
            src.get("max_delete_count", d),
        ),
        (
            "max_delete_percent",
            "none" if pol.max_delete_percent is None else f"{pol.max_delete_percent:g}%",
            src.get("max_delete_percent", d),
        ),
        ("sweep_interval", str(raw.get("sweep_interval", "1d")), src.get("sweep_interval", d)),
        ("sweep_cron", str(raw.get("sweep_cron", "-")), src.get("sweep_cron", d)),
        ("audit_sink", str(raw.get("audit_sink", "none")), src.get("audit_sink", d)),
        (
            "audit_rotate_size",
            human_bytes(aud.rotate_bytes) if aud.rotate_bytes else "never",
            src.get("audit_rotate_size", d),
        ),
        ("audit_keep_files", str(aud.keep) if aud.keep else "all", src.get("audit_keep_files", d)),
        ("audit_compress", "true" if aud.compress else "false", src.get("audit_compress", d)),
    ]
    return [{"key": k, "value": v, "source": s} for k, v, s in rows]


def collect(roots: list[Path], config_path: str | None, dirs: JanitorDirs, now: float) -> dict[str, Any]:
    # "problems": the janitor's own config, managed policy or pins: every command that needs them stops
    # (exit 2). "settings_problems": Claude Code's settings files: sweeps go on, keeping the sessions whose
    # window would come from a broken file. Doctor exits 2 for either: both need fixing.
    report: dict[str, Any] = {"version": __version__, "problems": [], "settings_problems": []}
    user_cfg = Path(config_path) if config_path else config.default_config_path()
    mpath = managed_policy_path()
    report["janitor"] = {
        "config_file": str(user_cfg),
        "config_exists": user_cfg.exists(),
        "managed_policy": str(mpath),
        "managed_policy_exists": mpath.exists(),
        "claude_managed_settings_dir": str(managed_settings_dir()),
        "state_dir": str(dirs.state),
        "audit_log": str(dirs.audit_log),
        "pins_file": str(dirs.pins_file),
    }
    try:
        from claude_janitor.cache.pins import load_pins

        report["janitor"]["pinned_sessions"] = sorted(load_pins(dirs.pins_file))
    except ConfigError as e:
        report["problems"].append(str(e))
    try:
        pol = config.load_policy(config_path)
        raw = config.effective_raw(config_path)
    except ConfigError as e:
        report["problems"].append(str(e))
        pol = None
    if pol is not None:
        report["policy"] = _policy_rows(pol, raw, dirs)
        report["rules"] = [
            {
                "project": r.pattern,
                "kind": r.kind,
                "entrypoint": r.entrypoint,
                "replied": r.replied,
                "label": r.label,
                "retention": fmt_window(r.retention) if r.retention_set else "(default)",
                "action": r.action.value if r.action else "(default)",
                "keep_last": r.keep_last,
                "source": pol.sources.get("rule", "janitor config"),
            }
            for r in pol.rules
        ]
    report["claude"] = []
    managed = claude_settings.managed_layers()
    for root in roots:
        item: dict[str, Any] = {"dir": str(root), "exists": root.is_dir()}
        layers = [claude_settings.user_layer(root), *managed]
        w = claude_settings.window_of(layers)
        if isinstance(w, str):
            item["cleanup_unknown"] = w
        else:
            item["cleanup_window"] = fmt_window(w.seconds)
            item["cleanup_source"] = w.source
            item["cleanup_managed"] = "(managed)" in w.source
        item["settings"] = _settings_layers(layers)
        item["own_sweep_skips"] = own_sweep_skips(layers)
        item["last_cleanup"] = last_cleanup(root, now)
        item["project_overrides"] = _project_overrides(root) if item["exists"] else []
        for layer in layers:
            if layer.error and layer.error not in report["settings_problems"]:
                report["settings_problems"].append(layer.error)
        for o in item["project_overrides"]:
            if "error" in o and o["error"] not in report["settings_problems"]:
                report["settings_problems"].append(o["error"])
        item["privacy"] = privacy(root, layers=layers)
        if pol is not None:
            from claude_janitor.removal.stores import windows

            cw = (
                w
                if not isinstance(w, str)
                else Window(None, "Claude Code's window is unknown (settings unreadable): kept")
            )
            item["stores"] = windows(str(root), pol, cw)
            item["history"] = {
                "removed_sessions": pol.history.removed_sessions,
                "retention": pol.history.retention,
                "source": pol.history.source,
            }
        report["claude"].append(item)
    return report
