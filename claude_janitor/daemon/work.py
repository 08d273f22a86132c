"""A sweep's work as the daemon does it, in its own process or in its full-sweep child: decide the sessions
read from disk, act through sweep.execute, and keep the index in step (each session's next due time).

  full         scan everything, decide, act, and rebuild the index from what is on disk (the source of truth)
  incremental  a wake-up: re-read only the sessions that are due (their whole projects under keep_last)
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from claude_janitor import policy
from claude_janitor.cache import activity
from claude_janitor.cache.layout import transcript_id
from claude_janitor.cache.rescan import rescan
from claude_janitor.daemon.clock import REAL, Clock
from claude_janitor.daemon.follower import audit_since
from claude_janitor.daemon.index import Entry, Index, Key
from claude_janitor.model import Action, Decision, Outcome, Plan, Policy, Session
from claude_janitor.render import metrics

if TYPE_CHECKING:
    from claude_janitor.sweep.plan import Env

log = logging.getLogger("janitor.daemon")

MIN_STEP = 1.0  # a kept session is looked at again no sooner than this (no busy loop at the boundary)
RECHECK_CHANGED = 60.0  # a session changed or in use while acting: look again after this
RECHECK_FAILED = 3600.0


class Stopping(Exception):
    """The daemon (or the full-sweep child) was told to stop: the sweep ends between sessions."""


def shortest_expiry(pol: Policy) -> float | None:
    """A lower bound of how long after its last activity any session can expire under ``pol``
    (None: never). Used to schedule the first look at a session seen only by the watcher."""
    windows: list[float | None] = []
    # Without a janitor retention the window is Claude Code's cleanupPeriodDays, a whole number ≥ 1 day.
    windows.append(pol.retention.seconds if pol.retention is not None else 86400.0)
    windows += [r.retention for r in pol.rules if r.retention_set]
    finite = [w for w in windows if w is not None]
    if not finite:
        return None
    return max(min(finite), pol.grace)


def uses_keep_last(pol: Policy) -> bool:
    return bool(pol.keep_last) or any(r.keep_last for r in pol.rules)


def plan_for(
    env: Env,
    sessions: list[Session],
    now: float,
    pol: Policy,
    inuse: Callable[[], tuple[float, activity.InUse]] | None = None,
) -> Plan:
    """Decide a subset of sessions (already read from disk) the way a full sweep decides them. ``inuse``:
    what other processes use, as begun by in_use_ahead (else read now)."""
    from claude_janitor.fs.safefs import validate_root
    from claude_janitor.sweep.plan import plan_for

    roots = [validate_root(r) for r in env.roots]
    # A broken Claude Code settings file keeps the sessions whose window depends on it (as in a full sweep).
    return plan_for(sessions, pol, now, roots, env.dirs, inuse() if inuse is not None else None)


def in_use_ahead(env: Env) -> Callable[[], tuple[float, activity.InUse]]:
    """What other processes use under the roots, read on a thread while a wake-up re-reads its sessions
    (the same root strings plan_for's validated roots give)."""
    return activity.scan_in_use_ahead([os.path.abspath(r) for r in env.roots])


def act(
    plan: Plan,
    pol: Policy,
    env: Env,
    total: int,
    actors: dict[Action, Any] | None,
    should_stop: Callable[[], bool],
    index: Index | None = None,
    *,
    parallel: bool = True,
) -> list[Outcome]:
    """Guard, then sweep.execute (which re-checks each piece before acting; stops between sessions).

    ``index``: for a wake-up's subset of sessions, the index the guard judges the whole population from."""
    from claude_janitor.sweep.execute import execute

    if not plan.to_act and not any(sd.remove for sd in plan.stores):
        return []
    msg = policy.guard(plan, pol, total)
    if msg and index is not None:
        # The mass-removal guard must judge the whole population, not just the sessions due now (more
        # kept sessions never make it trip, so this is only needed when it trips on the subset).
        # The sessions acted on are all timed and unpinned, so beyond the plan only whether one more timed
        # session exists matters ("all sessions at once"); the caps use ``total``.
        picked = {d.session.key for d in plan.decisions}
        e = index.timed_other(picked)
        # (counted as removable by age, policy.removable_by_age: the index does not say why a row is kept)
        extra = (
            []
            if e is None
            else [
                Decision(
                    Session(e.session_id, e.root, e.project, last_record_time=e.last_activity),
                    Action.KEEP,
                    "indexed",
                    expires_at=plan.now,
                )
            ]
        )
        msg = policy.guard(Plan(now=plan.now, decisions=plan.decisions + extra), pol, total)
    if msg:
        log.error("not acting: %s (run `janitor sweep --force` by hand if this is intended)", msg)
        return []
    return execute(plan, pol, env, dry_run=False, actors=actors, should_stop=should_stop, parallel=parallel)


def entries_for(plan: Plan, outcomes: list[Outcome], now: float, pol: Policy) -> list[Entry]:
    """Index rows for the sessions of a plan that are still there, each with when to look again."""
    by_decision = {id(o.decision): o for o in outcomes}  # (the plan's own Decisions: no key tuple made each)
    low = shortest_expiry(pol)
    out: list[Entry] = []
    for d in plan.decisions:
        s = d.session
        o = by_decision.get(id(d))
        if o is not None and o.result in ("ok", "vanished"):
            continue
        due: float | None = None
        kl = False
        if o is not None:
            due = now + (RECHECK_FAILED if o.result == "failed" else RECHECK_CHANGED)
            if o.result == "cancelled":
                due = now
        elif d.action is not Action.KEEP:
            due = None  # held back by the guard: left to the next full sweep
        elif d.expires_at is not None:
            due = d.expires_at
        elif d.by_keep_last:
            kl = True
        elif getattr(s, "in_use", None):
            due = now + RECHECK_CHANGED
        elif s.last_activity is not None and s.last_activity > now and low is not None:
            due = s.last_activity + low  # clock skew: look again once it is no longer in the future
        if due is not None:
            due = max(due, now + MIN_STEP)
        tr = s.transcript
        out.append(
            Entry(
                s.root,
                s.project,
                s.session_id,
                tr.rel if tr else None,
                s.last_activity,
                s.bytes,
                due,
                kl,
                now,
                d.reason,
            )
        )
    return out


def incremental_work(
    env: Env,
    pol: Policy,
    now: float,
    index: Index,
    rows: list[Entry],
    *,
    should_stop: Callable[[], bool],
    actors: dict[Action, Any] | None = None,
    parallel: bool = True,
) -> tuple[list[Outcome], list[Entry]]:
    """A wake-up's work on the due ``rows``: read those sessions again (their whole projects under
    keep_last), decide, act, and update their index rows. Returns the outcomes and the indexed sessions
    found gone (for the daemon to judge). ``parallel=False``: act in this thread (the daemon's own process
    keeps no pool of removal threads)."""
    wanted: dict[str, set[tuple[str, str]]] = {}
    for e in rows:
        wanted.setdefault(e.root, set()).add((e.project, e.session_id))
    if uses_keep_last(pol):  # a session's rank depends on its whole project
        for root, project in {(e.root, e.project) for e in rows if e.project}:
            wanted[root] |= index.project_keys(root, project)
            wanted[root] |= _project_transcripts(root, project)
    sessions: list[Session] = []
    gone: list[Entry] = []
    inuse = in_use_ahead(env)
    for root, keys in wanted.items():
        for (project, sid), s in rescan(root, sorted(keys)).items():
            if should_stop():
                raise Stopping()
            if s is None:
                old = index.get((root, project, sid))
                if old is not None:
                    gone.append(old)
            else:
                sessions.append(s)
    log.debug("incremental sweep: %d due, %d read", len(rows), len(sessions))
    plan = plan_for(env, sessions, now, pol, inuse)
    outcomes = act(plan, pol, env, max(index.count(), len(sessions)), actors, should_stop, index, parallel=parallel)
    index.put(entries_for(plan, outcomes, now, pol))
    index.remove(removed_keys(outcomes))
    return outcomes, gone


def full_sweep_work(
    env: Env,
    pol: Policy,
    now: float,
    index: Index,
    *,
    should_stop: Callable[[], bool],
    actors: dict[Action, Any] | None = None,
    audit_from: str | None = None,
    clock: Clock = REAL,
) -> dict[str, Any]:
    """One full sweep as the daemon runs it: scan everything, decide, act, and rebuild the index from what
    is on disk. Returns a small JSON-able summary: the outcome counts, the sessions that disappeared
    without this sweep removing them (for the daemon to judge), and where the audit log stands after it.
    Raises _Stopping if asked to stop before acting."""
    from claude_janitor.sweep.plan import build_plan
    from claude_janitor.sweep.run import maintain_archives

    def check(_n: int = 0) -> None:
        if should_stop():
            raise Stopping()

    before = {e.key: e for e in index.all()}
    plan, used, _ = build_plan(env, now, progress=check, pol=copy.deepcopy(pol))
    check()
    for w in plan.warnings:
        log.warning("%s", w)
    for err in (maintain_archives(env, used, now, dry_run=False) or {}).get("errors", []):
        log.warning("archives: %s", err)
    from claude_janitor.sweep.run import maintain_trash  # (ux) the trash is purged by full sweeps too

    for err in (maintain_trash(env, used, now, dry_run=False) or {}).get("errors", []):
        log.warning("trash: %s", err)
    outcomes = act(plan, used, env, len(plan.decisions), actors, should_stop)
    entries = entries_for(plan, outcomes, now, pol)
    roots = [str(r) for r in env.roots]
    for r in roots:
        index.replace_root(r, [e for e in entries if e.root == r], since=now)
    index.remove(removed_keys(outcomes))
    # Transcripts the index knew that are not there any more (the session may have left a folder), and the
    # sessions that vanished between the scan and the act: removed by someone else, judged by the daemon.
    # Gone: what the index knew with a transcript, less what this sweep removed and what it scanned with a
    # transcript and did not find vanished (worked out in ``before`` itself: sets of every session's key
    # were ~250 B a session of the child's peak, issue 14).
    vanished = {o.decision.session.key: o.decision.session for o in outcomes if o.result == "vanished"}
    known = {k for k, e in before.items() if e.rel}
    for o in outcomes:
        if o.result == "ok":
            known.discard(o.decision.session.key)
    for d in plan.decisions:
        if known and (k := d.session.key) in known and k not in vanished and d.session.transcript is not None:
            known.discard(k)
    gone = [before[k] for k in before if k in known]
    for k, s in vanished.items():
        if k not in before and s.transcript is not None:
            gone.append(Entry(s.root, s.project, s.session_id, s.transcript.rel, s.last_activity, s.bytes))
    # The daemon's watcher does not report transcripts that go while a full sweep runs: those of the sessions
    # kept here that went since they were scanned are reported now (one lstat each).
    listed = {e.key for e in gone}
    gone += [e for e in entries if e.rel and e.key not in listed and not os.path.lexists(os.path.join(e.root, e.rel))]
    pos, restored = audit_since(env.dirs.audit_log, audit_from)
    vacuumed = index.vacuum_if_sparse()
    out: dict[str, Any] = counts(outcomes)
    sample = metrics.from_run(
        plan,
        outcomes,
        started=now,
        finished=clock.time(),
        kind="full",
        guard=policy.guard(plan, used, len(plan.decisions)) if plan.to_act else None,
    )
    out.update(
        {
            "metrics": metrics.to_json(sample),
            "sessions": len(plan.decisions),
            "indexed": len(entries),
            "cancelled": sum(o.result == "cancelled" for o in outcomes),
            "gone": gone_rows(gone),
            "audit_pos": pos,
            "restored": [list(k) for k in restored],
            "index_vacuumed": vacuumed,
        }
    )
    return out


def incremental_result(outcomes: list[Outcome], started: float, finished: float) -> dict[str, Any]:
    """A wake-up's counts, and what metrics_file says of it (ux) when it acted on anything."""
    res: dict[str, Any] = counts(outcomes)
    if outcomes:
        res["metrics"] = metrics.to_json(
            metrics.from_run(None, outcomes, started=started, finished=finished, guard=None, kind="incremental")
        )
    return res


def gone_rows(entries: list[Entry]) -> list[list[Any]]:
    """Sessions gone, as a sweep's JSON result carries them (read back as ``Entry(*row)``)."""
    return [[e.root, e.project, e.session_id, e.rel, e.last_activity, e.bytes] for e in entries]


def removed_keys(outcomes: list[Outcome]) -> list[Key]:
    return [o.decision.session.key for o in outcomes if o.result in ("ok", "vanished")]


def counts(outcomes: list[Outcome]) -> dict[str, int]:
    out = {"acted": 0, "failed": 0, "skipped": 0}
    for o in outcomes:
        if o.result in ("ok", "vanished"):
            out["acted"] += 1
        elif o.result == "failed":
            out["failed"] += 1
        else:
            out["skipped"] += 1
    return out


def _project_transcripts(root: str, project: str) -> set[tuple[str, str]]:
    out = set()
    try:
        with os.scandir(os.path.join(root, "projects", project)) as it:
            for e in it:
                if (sid := transcript_id(e.name)) is not None:
                    out.add((project, sid))
    except OSError:
        pass
    return out
