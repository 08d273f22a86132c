"""claude_janitor.sweep.plan."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from claude_janitor import policy
from claude_janitor.cache import activity
from claude_janitor.cache import scan as cache
from claude_janitor.cache.pins import load_pins
from claude_janitor.config import claude as claude_settings
from claude_janitor.config import janitor as config
from claude_janitor.config.paths import JanitorDirs, archive_dir_for
from claude_janitor.errors import ConfigError
from claude_janitor.fs.safefs import validate_root
from claude_janitor.model import Action, Plan, Policy, Session
from claude_janitor.removal import stores

ProgressFn = Callable[[int], None]


@dataclass
class Env:
    """Everything the core needs from the outside world, passed in (the CLI builds it)."""

    roots: list[Path]
    dirs: JanitorDirs
    config_path: str | None = None
    older_than: str | None = None
    action: str | None = None
    force: bool = False
    default_root: bool = False  # roots came from the default (~/.claude), not from the user


def build_plan(
    env: Env, now: float, *, progress: ProgressFn | None = None, pol: Policy | None = None
) -> tuple[Plan, Policy, int]:
    """Read config and settings, scan the cache and decide. Reads only; raises ConfigError on bad input.

    ``pol``: an already loaded policy to use instead of reading the config (the daemon's, kept until SIGHUP).
    """
    pol = pol or config.load_policy(env.config_path, older_than=env.older_than, action=env.action)
    skipped: list[str] = []
    if env.default_root and not any(os.path.lexists(r) for r in env.roots):
        # Nobody asked for this dir: a machine without Claude Code has nothing to sweep.
        skipped = [
            f"no Claude Code cache at {r}: nothing to do (pass --claude-dir or set CLAUDE_CONFIG_DIR)"
            for r in env.roots
        ]
        env = dataclasses.replace(env, roots=[])
    roots = [validate_root(r) for r in env.roots]
    if pol.archive_dir or uses_archive(pol):
        _check_archive_dir(archive_dir_for(pol, env.dirs), roots)
    # A broken Claude Code settings file does not stop the run: plan_for keeps the sessions whose window
    # would come from it, and says so in the plan's warnings.
    res = cache.scan(roots, progress=progress)
    plan = plan_for(res.sessions, pol, now, roots, env.dirs)
    plan.stores, in_stores = stores.plan(
        roots, res.sessions, pol, now, pol.claude_root_windows, removing=[d.session for d in plan.to_act]
    )
    # Entries of the session stores (debug/, todos/ …) that no session claims are store entries, not unknown.
    plan.unknown = [u for u in res.unknown if not _in_stores(u, in_stores)]
    plan.warnings += skipped + warnings_for(pol, roots)
    return plan, pol, res.files_seen


def _in_stores(unknown: str, in_stores: dict[str, set[str]]) -> bool:
    for root, rels in in_stores.items():
        if unknown.startswith(root + "/"):
            return unknown[len(root) + 1 :].split(" (")[0].rstrip("/") in rels
    return False


def plan_for(
    sessions: list[Session],
    pol: Policy,
    now: float,
    roots: list[Path],
    dirs: JanitorDirs,
    inuse: tuple[float, activity.InUse] | None = None,
) -> Plan:
    """Decide sessions already read from disk: every session of a scan, or the few the daemon re-read
    because they may be due (pins, sessions in use and Claude Code's windows are applied the same way).
    ``inuse``: (monotonic time it was begun, snapshot) of what other processes use under ``roots``, read
    while the sessions were (activity.scan_in_use_ahead); else it is read now."""
    cache.apply_pins(sessions, load_pins(dirs.pins_file))
    if inuse is None:
        snapshot = activity.mark_in_use(sessions, [str(r) for r in roots])
        taken = time.monotonic()
    else:
        taken, snapshot = inuse
        activity.mark_in_use(sessions, [str(r) for r in roots], snapshot)
    problems = claude_settings.resolve_claude_windows(pol, roots, sessions)
    plan = policy.decide(sessions, pol, now)
    plan.warnings += problems
    plan.in_use = (taken, snapshot)
    return plan


def _check_archive_dir(archive: Path, roots: list[Path]) -> None:
    real = Path(os.path.realpath(archive))
    for r in roots:
        rr = Path(os.path.realpath(r))
        if real == rr or rr in real.parents:
            raise ConfigError(f"archive_dir {archive} is inside the swept tree {r}; choose a place outside it")


def uses_archive(pol: Policy) -> bool:
    return pol.action is Action.ARCHIVE or any((r.action or pol.action) is Action.ARCHIVE for r in pol.rules)


def _days(secs: float) -> str:
    return f"{secs / 86400:g} days" if secs >= 86400 else f"{secs / 3600:g} hours"


def warnings_for(pol: Policy, roots: list[Path]) -> list[str]:
    """Cases where Claude Code's own sweep may delete sessions before the janitor archives them.

    Claude Code hard-deletes by file mtime once a session is older than cleanupPeriodDays, machine-wide,
    with the settings of whichever project it was started in: the shortest window known under a root is
    the one that counts. An archive window (never less than ``grace``) that is not shorter loses the race."""
    out: list[str] = []
    if not uses_archive(pol):
        return out
    for r in roots:
        known = [pol.claude_root_windows.get(str(r))]
        known += [w for (root, _), w in sorted(pol.claude_windows.items()) if root == str(r)]
        finite = [w for w in known if w is not None and w.seconds is not None]
        if not finite:
            continue
        cw = min(finite, key=lambda w: w.seconds or 0.0)
        assert cw.seconds is not None
        default = pol.retention.seconds if pol.retention else cw.seconds
        windows: list[tuple[str, float | None]] = []
        if pol.action is Action.ARCHIVE:
            windows.append(
                ("the janitor's default retention" + ("" if pol.retention else " (Claude Code's own window)"), default)
            )
        for rule in pol.rules:
            if (rule.action or pol.action) is Action.ARCHIVE:
                windows.append((rule.label, rule.retention if rule.retention_set else default))
        for label, secs in windows:
            eff = None if secs is None else max(secs, pol.grace)
            if eff is not None and eff < cw.seconds:
                continue
            when = "never (retention forever)" if eff is None else f"only after {_days(eff)}"
            safe = max(cw.seconds * 0.8, cw.seconds - 3 * 86400, 3600.0)
            suggest = f"{safe / 86400:.0f}d" if safe >= 86400 else f"{safe / 3600:.0f}h"
            out.append(
                f"Claude Code deletes sessions in {r} once they are {_days(cw.seconds)} old ({cw.source}), "
                f"but {label} archives them {when}: Claude Code may delete sessions before they are "
                f'archived. Fix: set a shorter retention for the janitor (e.g. retention = "{suggest}" in '
                f"its config{', or in that rule' if label.startswith('rule') else ''}). Raising "
                f"cleanupPeriodDays instead would also keep pasted text, shell snapshots and the other stores "
                f"that long (Claude Code's and the janitor's default for them), unless [stores] sets their "
                f"windows."
            )
    return out
