"""claude_janitor.sweep.execute."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from claude_janitor import testhooks
from claude_janitor.audit.log import AuditLog
from claude_janitor.config import janitor as config
from claude_janitor.errors import ConfigError
from claude_janitor.fs.safefs import Root
from claude_janitor.model import Action, Decision, Outcome, Plan, Policy, Result
from claude_janitor.removal import store_removal
from claude_janitor.sweep.act import CANCELLED, Actor, InUseWatch, act_one, audit_record, delete_session, open_root
from claude_janitor.sweep.plan import Env, ProgressFn
from claude_janitor.sweep.workers import Removers, thread_workers

BATCH = 256  # intents recorded (and fsync'd) per batch before acting on it


# Complexity 29, on purpose: the run loop keeps, in one place a reader can check, the order the guarantees
# depend on (a batch's intents fsync'd before any of it is acted on, results recorded in plan order, a stop
# only between sessions, the workers' outcomes folded back as they come); its steps are the closures below.
def execute(  # noqa: C901 (see the comment above)
    plan: Plan,
    pol: Policy,
    env: Env,
    *,
    dry_run: bool,
    progress: ProgressFn | None = None,
    actors: dict[Action, Actor] | None = None,
    should_stop: Callable[[], bool] | None = None,
    parallel: bool = True,
) -> list[Outcome]:
    """Act on the plan. Dry runs perform every check but the mutation and write no audit records.
    ``parallel=False``: act in the calling thread (the daemon's own process, for a small wake-up: a pool of
    removal threads would stay with it for good).

    For every action an intent record is made durable before acting and a result record after.
    ``should_stop`` is asked between sessions: a stop never leaves a session half done."""
    actors = actors or {Action.DELETE: delete_session}
    if any(d.action is Action.ARCHIVE for d in plan.to_act):  # else archive (and zstandard) stay unloaded
        actors = with_archive(actors, pol, env, plan.now)
    if pol.trash is not None and actors.get(Action.DELETE) is delete_session and plan.to_act and not dry_run:
        from claude_janitor.removal import (
            trash,  # (ux) delete into the trash: the same transaction, moved instead of purged
        )

        fallback = with_archive({}, pol, env, plan.now).get(Action.ARCHIVE)
        actors = trash.bind(actors, pol, env.dirs, plan.now, fallback)
    audit = None if dry_run else audit_log(env)
    todo = plan.to_act
    outcomes: list[Outcome] = []
    roots: dict[str, Root] = {}
    watch = InUseWatch(sorted({d.session.root for d in todo}), start=plan.in_use)
    stopped = False
    # Deletions run in a few processes or threads (dry runs only stat: nothing to overlap); outcomes and
    # result records stay in plan order, and each session is still checked, then removed, as a whole.
    for d in {d.session.root: d for d in todo}.values():  # forked removers inherit the roots (and .busy)
        if open_root(d, roots):
            roots[d.session.root].busy = watch.inuse.inodes
    # With the trash on, a removal is a few renames (nothing to overlap), and its actor (trash.actor) must be
    # the one used: sessions are acted on here, not by the removal workers (which only delete).
    removers = (
        None
        if dry_run or not parallel or actors.get(Action.DELETE) is not delete_session
        else Removers(todo, roots, actors, inline=thread_workers() == 1)
    )
    results: list[dict[str, Any]] = []  # result records not appended yet

    def finish(d: Decision, o: Outcome) -> None:
        outcomes.append(o)
        if audit:  # a dry run writes no records: none is built (each lists the session's paths)
            results.append(
                audit_record(
                    d, "result", o.result, o.error, {k: v for k, v in (("archive", o.archive), ("trash", o.trash)) if v}
                )
            )
        if progress:
            progress(1)

    order = InOrder(todo, finish)
    chunk: list[int] = []  # plan indices gathered for the removers, not handed out yet

    def take(block: bool) -> None:
        for n, o in removers.collect(block) if removers else ():
            order.put(n, o)

    def hand_out(final: bool = False) -> None:
        """The gathered chunk to the removers once full (or ``final``); take in what they finished."""
        if removers and chunk and (final or len(chunk) >= removers.chunk):
            while not removers.room():
                take(True)
            removers.submit(list(chunk))
            chunk.clear()
        take(False)

    def settle() -> None:
        """Everything handed out is done (and finished, in plan order)."""
        hand_out(final=True)
        while removers and removers.pending():
            take(True)

    def flush(intents: list[Decision]) -> None:
        """One durable append: the results finished so far, then the intents of the next sessions."""
        if audit:
            recs = results + [audit_record(x, "intent", "pending") for x in intents]
            results.clear()
            audit.append(recs)

    try:
        # Intents go out a batch (BATCH sessions) at a time, each fsync'd before any of its sessions is
        # acted on, together with the results finished by then (one append, not two, per batch). The
        # removers keep working meanwhile: no batch waits for the one before it to be done.
        written = 0
        for n, d in enumerate(todo):
            if n == written:
                if stopped or (should_stop and should_stop()):
                    break
                flush(todo[n : n + BATCH])
                written = n + BATCH
                testhooks.point("after-intent")
            testhooks.point("before-session")
            if stopped or (should_stop and should_stop()):
                stopped = True
                if removers:
                    removers.stop()
                order.put(n, Outcome(d, Result.CANCELLED, CANCELLED))
                continue
            busy = watch.why(d.session)
            if open_root(d, roots):  # what staging checks every file of the session against
                roots[d.session.root].busy = watch.inuse.inodes
            if busy:
                order.put(n, Outcome(d, Result.SKIPPED, f"in use, kept: {busy}"))
            elif removers and removers.takes(d) and open_root(d, roots):
                chunk.append(n)
                hand_out()
            else:
                settle()
                order.put(n, act_one(d, roots, dry_run, actors))
        settle()
        flush([])
        if not stopped and not (should_stop and should_stop()):
            # The stores beyond sessions (planned by a full scan only), after the sessions.
            store_removal.execute(plan.stores, dry_run=dry_run, audit=audit, should_stop=should_stop)
        if not dry_run:  # (ux) what this sweep removed and where it went, for `janitor undo`
            from claude_janitor.removal import trash

            with contextlib.suppress(OSError):
                trash.record_last_sweep(env.dirs, plan.now, outcomes)
        if pol.history.enabled:  # the lines of the sessions removed above (and old lines), under Claude's lock
            from claude_janitor.removal import history

            plan.history = history.after_sweep(plan.decisions, outcomes, pol, plan.now, dry_run=dry_run, audit=audit)
    finally:
        if removers:  # an exception above never leaves a session being acted on in the background
            removers.close()
        for r in roots.values():
            r.close()
    return outcomes


class InOrder:
    """Outcomes by plan index, each finished (recorded, counted) once every one before it is: workers
    answer in any order, the report and the audit log keep the plan's."""

    def __init__(self, todo: list[Decision], finish: Callable[[Decision, Outcome], None]) -> None:
        self.todo, self.finish = todo, finish
        self.done: dict[int, Outcome] = {}
        self.next = 0

    def put(self, n: int, o: Outcome) -> None:
        self.done[n] = o
        while self.next in self.done:
            self.finish(self.todo[self.next], self.done.pop(self.next))
            self.next += 1


def _sinks(env: Env) -> tuple[str, ...]:
    try:
        raw = config.effective_raw(env.config_path)  # the managed policy's audit_sink wins
    except ConfigError:
        return ()
    sink = raw.get("audit_sink")
    return (sink,) if sink in ("journald", "syslog") else ()


def audit_log(env: Env) -> AuditLog:
    """The audit log as configured: its sinks, its anchor (in the data dir) and its rotation."""
    try:
        raw = config.effective_raw(env.config_path)  # the managed policy's keys win
    except ConfigError:
        raw = {}
    sink = raw.get("audit_sink")
    st = config.audit_settings(raw)
    return AuditLog(
        env.dirs.audit_log,
        sinks=(sink,) if sink in ("journald", "syslog") else (),
        anchor=env.dirs.audit_anchor,
        rotate_bytes=st.rotate_bytes,
        keep=st.keep,
        compress=st.compress,
    )


def with_archive(actors: dict[Action, Actor], pol: Policy, env: Env, now: float) -> dict[Action, Actor]:
    """Bind the archive action to the archive dir and this run's time (callers of execute need not)."""
    try:
        from claude_janitor.archive.store import bind
    except ImportError:  # zstandard missing: delete still works, archive reports itself unavailable
        return actors
    return bind(actors, pol, env.dirs, now)
