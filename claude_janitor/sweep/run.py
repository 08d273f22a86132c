"""Orchestration: scan → plan → execute → record. Dry-run and real runs share this one path; the only
difference is that a dry run stops short of the mutation (and of the audit records of mutations)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from claude_janitor import policy, testhooks
from claude_janitor.config.paths import archive_dir_for
from claude_janitor.errors import ConfigError, ExitStatus, GuardTripped
from claude_janitor.fs.safefs import Root, validate_root
from claude_janitor.fs.tree import Unsafe
from claude_janitor.model import Action, Outcome, Plan, Policy, Result
from claude_janitor.removal import recovery, staging
from claude_janitor.sweep.act import Actor
from claude_janitor.sweep.execute import audit_log, execute
from claude_janitor.sweep.plan import Env, ProgressFn, build_plan


@dataclass
class RunResult:
    plan: Plan
    policy: Policy
    outcomes: list[Outcome] = field(default_factory=list)
    dry_run: bool = True
    files_seen: int = 0
    guard: str | None = None
    archives: dict[str, Any] | None = None  # archive maintenance: temp leftovers, pruned archives, errors
    trash: dict[str, Any] | None = None  # trash maintenance (trash.maintain): what was purged

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.result is Result.FAILED]

    @property
    def exit_code(self) -> ExitStatus:
        stores_failed = any(sd.failed for sd in self.plan.stores) or any(
            h.result.startswith("failed") for h in self.plan.history
        )
        failed = self.failed or stores_failed or (self.archives and self.archives.get("errors"))
        return ExitStatus.ACTIONS_FAILED if failed else ExitStatus.OK


def _once(fn: Callable[[], None]) -> Callable[[], None]:
    done: list[bool] = []

    def call() -> None:
        if not done:
            done.append(True)
            fn()

    return call


def recover_interrupted(env: Env, acting: Callable[[], None] | None = None) -> list[str]:
    """Finish or undo the removals a crashed sweep left behind (recovery.recover), in every root that is
    there; each finished one is recorded in the audit log. Returns what to tell the user.

    Called under the sweep lock, before the scan, by every real sweep (one-shot and the daemon's).
    ``acting()`` is called first if there is anything to recover (see ``run``)."""
    notes: list[str] = []
    records: list[dict[str, Any]] = []
    for r in env.roots:
        try:
            root = Root(validate_root(r))
        except (ConfigError, OSError):
            continue  # build_plan reports it
        try:
            if acting is not None and recovery.pending(root):
                acting()
            for got in recovery.recover(root):
                notes.append(got.message)
                if got.session_id:
                    records.append(got.record(root.path))
        except (OSError, Unsafe) as e:
            notes.append(f"{r}/{staging.STAGE_DIR}: {e}")
        finally:
            root.close()
    if records:
        audit_log(env).append(records)
    return notes


def recover(env: Env) -> list[dict[str, Any]]:
    """Before a sweep acts (the caller holds the sweep lock): settle what a killed run left behind.

    Every intent in the audit log without a result gets one saying what is on disk now (gone, present
    or partly), so the log tells what happened. Returns those records. A recovery that changes the disk
    (e.g. of an interrupted removal's own leftovers) belongs before the reconcile, here, so that what the
    records say is what is left."""
    roots = [str(r) for r in env.roots] or None
    return audit_log(env).reconcile(lambda p: os.path.lexists(p), roots)


def maintain_archives(env: Env, pol: Policy, now: float, *, dry_run: bool) -> dict[str, Any] | None:
    """Once per full sweep: temp files of an interrupted run, archive_retention (archive.maintenance). None
    when nothing was ever archived: then archive (and zstandard) are not even imported."""
    if not archive_dir_for(pol, env.dirs).is_dir():
        return None
    try:
        from claude_janitor.archive.maintenance import maintain
    except ImportError:
        return None
    return maintain(pol, env.dirs, now, dry_run=dry_run, audit=None if dry_run else audit_log(env))


def maintain_trash(env: Env, pol: Policy, now: float, *, dry_run: bool) -> dict[str, Any] | None:
    """Once per full sweep: purge what has been in the trash longer than ``trash`` (trash.maintain)."""
    from claude_janitor.removal import trash

    if not trash.trash_dir(env.dirs).is_dir():
        return None
    return trash.maintain(pol, env.dirs, now, dry_run=dry_run, audit=None if dry_run else audit_log(env))


def run(
    env: Env,
    now: float,
    *,
    dry_run: bool,
    progress: ProgressFn | None = None,
    actors: dict[Action, Actor] | None = None,
    should_stop: Callable[[], bool] | None = None,
    phase: Callable[[str, int | None, str], ProgressFn] | None = None,
    acting: Callable[[], None] | None = None,
) -> RunResult:
    """The whole sweep: plan, guard, execute.

    ``phase(label, total, unit)``, if given, is told when scanning and acting start and returns the
    counter for that phase (the CLI's progress line). ``acting()``, if given, is called once, just before
    the first change to anything but the audit log (never in a dry run): until then a signal may stop the
    run at once. Removals a crash left half way are finished or undone first (``recover_interrupted``,
    after ``acting()`` if there is one), then the audit log is settled from what is on disk (``recover``,
    crash-safe at any instant)."""
    if acting is not None:
        acting = _once(acting)
    recovered = [] if dry_run else recover_interrupted(env, acting)  # first: then the log settles on the truth
    if not dry_run:
        recover(env)
    plan, pol, seen = build_plan(env, now, progress=phase("scanning", None, "entries") if phase else progress)
    plan.warnings[:0] = recovered
    testhooks.point("after-plan")
    result = RunResult(plan=plan, policy=pol, dry_run=dry_run, files_seen=seen)
    msg = policy.guard(plan, pol, len(plan.decisions))
    if msg and not env.force:
        if dry_run:
            result.guard = msg
        else:
            raise GuardTripped(msg)
    if acting is not None and not dry_run:
        acting()
    result.archives = maintain_archives(env, pol, now, dry_run=dry_run)
    result.trash = maintain_trash(env, pol, now, dry_run=dry_run)
    act_progress = phase("checking" if dry_run else "sweeping", len(plan.to_act), "sessions") if phase else None
    result.outcomes = execute(
        plan, pol, env, dry_run=dry_run, progress=act_progress, actors=actors, should_stop=should_stop
    )
    return result
