"""The retention policy: pure. decide(sessions, policy, now) -> Plan. No I/O, no clock.

Order of reasons, first that applies wins (every kept session says why):
  unreadable → kept
  window unknowable (it would come from a broken Claude Code settings file) → kept
  pieces that may belong to another session (the same id in two projects) → kept
  in use by another process (open for writing, or locked) → kept
  pinned → kept
  no activity time → kept
  last activity in the future → kept (clock skew)
  active within ``grace`` → kept
  retention "forever" → kept
  among the ``keep_last`` most recent of its project → kept
  age ≤ window → kept (expires exactly when age exceeds the window: a session whose last activity is
    exactly ``window`` seconds old is kept; one second more and it expires)
  otherwise → the rule's or the default action
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
from collections import defaultdict

from claude_janitor.durations import human_duration
from claude_janitor.model import Action, Decision, Plan, Policy, Rule, Session, Window

DEFAULT_CLAUDE = Window(30 * 86400.0, "Claude Code default (30 days)")


def _project_matches(session: Session, pattern: str) -> bool:
    pat = os.path.expanduser(pattern)
    return any(
        cand and (fnmatch.fnmatchcase(cand, pat) or fnmatch.fnmatchcase(cand.rstrip("/"), pat.rstrip("/")))
        for cand in (session.project_path, session.project)
    )


def rule_matches(session: Session, rule: Rule) -> bool:
    """Every condition the rule sets holds: project glob (path or encoded dir name), kind, entrypoint glob,
    replied."""
    if rule.pattern is not None and not _project_matches(session, rule.pattern):
        return False
    if rule.kind is not None and session.kind != rule.kind:
        return False
    if rule.entrypoint is not None and not fnmatch.fnmatchcase(session.entrypoint or "", rule.entrypoint):
        return False
    return rule.replied is None or session.replied == rule.replied


def match_rule(session: Session, rules: list[Rule]) -> Rule | None:
    """First rule (in file order) whose conditions all hold for the session."""
    for rule in rules:
        if rule_matches(session, rule):
            return rule
    return None


def window_for(session: Session, policy: Policy, rule: Rule | None) -> Window | str:
    """The session's retention window, or (a str) why it cannot be known: its window comes from Claude
    Code's settings and one of the files it would come from is broken."""
    if rule is not None and rule.retention_set:
        return Window(rule.retention, rule.label)
    if policy.retention is not None:
        return policy.retention
    return claude_window(session, policy)


def claude_window(session: Session, policy: Policy) -> Window | str:
    """Claude Code's window for the session (its project's settings, else its root's), or why it cannot
    be known."""
    key = (session.root, session.project)
    if key in policy.claude_windows:
        return policy.claude_windows[key]
    if key in policy.project_doubts:
        return policy.project_doubts[key]
    if session.root in policy.claude_root_doubts:
        return policy.claude_root_doubts[session.root]
    return policy.claude_root_windows.get(session.root, DEFAULT_CLAUDE)


NO_CEILING = Window(None, "desktopSessionCleanupPeriodDays not set: no ceiling")


def desktop_why(s: Session, now: float, cc_window: float | None) -> str | None:
    """Why Claude Code's own cleanup would keep this session's old transcript as a desktop session (its
    rule, CLAUDE-CODE-CLEANUP.md), or None. ``cc_window``: its cleanupPeriodDays in seconds (a release
    marker with reason "archive" keeps the session while the marker is younger than that)."""
    tr = s.transcript
    if tr is None:
        return None
    if s.desktop_marker is not None:
        reason, mtime = s.desktop_marker
        if reason == "delete" or (reason == "archive" and cc_window is not None and mtime < now - cc_window):
            return None  # released by the desktop app
        if reason == "archive":
            return "released by the desktop app for archiving, within its grace"
    if tr.bytes == 0 and s.pieces.first("session-dir") is None:
        return "an empty transcript with no session folder"
    if s.desktop_entrypoint:
        return f"entrypoint {s.desktop_entrypoint}"
    return None


def desktop_window(s: Session, policy: Policy, win: Window, now: float) -> tuple[Window, str | None]:
    """Claude Code's window for a session, its desktop exemption applied: desktop sessions are kept for
    ever, or capped by desktopSessionCleanupPeriodDays (the longer of it and cleanupPeriodDays); off where
    managed settings set cleanupPeriodDays. Returns (window, why it is a desktop session or None)."""
    ceiling = policy.claude_desktop.get(s.root, NO_CEILING)
    why = desktop_why(s, now, win.seconds)
    if why is None or ceiling is None or win.seconds is None:
        return win, why
    if ceiling.seconds is None:
        return Window(None, f"Claude Code keeps desktop sessions: {why}; {ceiling.source}"), why
    secs = max(ceiling.seconds, win.seconds)
    return Window(secs, f"Claude Code's desktop-session ceiling: {why}; {ceiling.source}"), why


OWN_TIME_STORES = ("file-history", "session-env", "tasks")  # Claude Code ages these dirs by their own mtime


def claude_code_would_remove(s: Session, policy: Policy, now: float, desk: str | None) -> list[str]:
    """The pieces of a session Claude Code's own cleanup would remove now, each judged by its own file time
    against Claude Code's window (it knows no whole sessions and no record times): the janitor keeps them
    with their session, and says so."""
    cc = claude_window(s, policy)
    if not isinstance(cc, Window) or cc.seconds is None:
        return []
    cutoff = now - cc.seconds
    has_transcript = s.transcript is not None
    out = []
    for p in s.pieces:
        if p.store == "transcript" and desk and policy.claude_desktop.get(s.root, NO_CEILING) is not None:
            continue  # its desktop exemption
        if p.rel.endswith(".desktop-released.json") and has_transcript:
            continue  # kept while its transcript exists
        t = p.mtime_ns / 1e9 if p.store in OWN_TIME_STORES and p.mtime_ns else p.mtime
        if t < cutoff:
            name = p.rel.rsplit("/", 1)[-1]
            out.append({"transcript": name, "session-file": name, "session-dir": name + "/"}.get(p.store, p.rel))
    return out


def recency_ranks(sessions: list[Session], policy: Policy) -> dict[tuple[str, str, str], int]:
    """Rank (1 = newest) of each session, by last activity, among the sessions of its project that the
    same rule governs (all of the project's sessions when no rule splits it: keep_last = 20 in a
    kind = "headless" rule keeps the 20 newest headless runs of each project, not 20 of everything)."""
    by_project: dict[tuple[str, str, int], list[Session]] = defaultdict(list)
    for s in sessions:
        if s.last_activity is not None:
            rule = match_rule(s, policy.rules)
            by_project[(s.root, s.project, -1 if rule is None else rule.index)].append(s)
    ranks: dict[tuple[str, str, str], int] = {}
    for group in by_project.values():
        group.sort(key=lambda s: s.last_activity or 0.0, reverse=True)
        for i, s in enumerate(group, 1):
            ranks[s.key] = i
    return ranks


def decide_one(s: Session, policy: Policy, now: float, rank: int | None) -> Decision:
    keep = Action.KEEP
    if s.unreadable:
        return Decision(s, keep, f"unreadable, kept: {s.unreadable}")
    rule = match_rule(s, policy.rules)
    win = window_for(s, policy, rule)
    if isinstance(win, str):
        return Decision(s, keep, win, rule.label if rule else None)
    if s.ambiguous:
        return Decision(s, keep, f"kept: {s.ambiguous}")
    if s.in_use:
        return Decision(s, keep, f"in use, kept: {s.in_use}")
    if s.pinned:
        return Decision(s, keep, "pinned")
    last = s.last_activity
    if last is None:
        return Decision(s, keep, "no activity time could be determined, kept")
    if last > now:
        return Decision(
            s, keep, f"last activity is {human_duration(last - now)} in the future (clock skew?), counted as active"
        )
    age = now - last
    rule_label = rule.label if rule else None
    if (rule is None or not rule.retention_set) and policy.retention is None:
        win, desk = desktop_window(s, policy, win, now)  # Claude Code's window: its desktop rule too
        desk_note = ""
    else:
        cc = claude_window(s, policy)
        desk = desktop_why(s, now, cc.seconds if isinstance(cc, Window) else None)
        desk_note = (
            (f"; a desktop session ({desk}): Claude Code's own cleanup would keep it, the janitor's retention applies")
            if desk
            else ""
        )
    expires_at = None if win.seconds is None else last + max(win.seconds, policy.grace)

    def kept(reason: str, expires: float | None, *, by_keep_last: bool = False) -> Decision:
        """A kept session; the reason also says what Claude Code's own cleanup would still remove of it."""
        gone = claude_code_would_remove(s, policy, now, desk)
        if gone:
            why = (
                "its last record is newer than its files"
                if s.last_record_time is not None
                and s.last_record_time >= last
                and s.last_record_time > (s.newest_mtime or 0)
                else "newer pieces keep the whole session"
            )
            reason += (
                f"; Claude Code's own cleanup, which goes by each piece's file time, would remove "
                f"{', '.join(sorted(gone))} ({why})"
            )
        return Decision(s, keep, reason, rule_label, expires_at=expires, by_keep_last=by_keep_last)

    if age <= policy.grace:
        return kept(f"active within grace ({human_duration(policy.grace)})", expires_at)
    if win.seconds is None:
        return kept(f"retention forever ({win.source})", None)
    keep_last = rule.keep_last if rule and rule.keep_last is not None else policy.keep_last
    if keep_last and rank is not None and rank <= keep_last:
        split = rule is not None and (rule.kind, rule.entrypoint, rule.replied) != (None, None, None)
        return kept(
            f"among the {keep_last} most recent sessions of its project"
            f"{f' under {rule_label}' if split else ''} (keep_last)",
            None,
            by_keep_last=True,
        )
    if age <= win.seconds:
        return kept(f"within retention {human_duration(win.seconds)} ({win.source}){desk_note}", expires_at)
    action = rule.action if rule and rule.action else policy.action
    return Decision(
        s,
        action,
        f"inactive {human_duration(age)} > retention {human_duration(win.seconds)} ({win.source}){desk_note}",
        rule_label,
    )


def decide(sessions: list[Session], policy: Policy, now: float) -> Plan:
    ranks = recency_ranks(sessions, policy)
    reasons: dict[str, str] = {}  # most reasons repeat (the ages in them are coarse): one string each
    decisions = []
    for s in sessions:
        d = decide_one(s, policy, now, ranks.get(s.key))
        reason = reasons.setdefault(d.reason, d.reason)
        decisions.append(d if reason is d.reason else dataclasses.replace(d, reason=reason))
    return Plan(now=now, decisions=decisions)


def next_expiry(plan: Plan) -> float | None:
    """The earliest moment a currently kept session will expire (for the daemon's wake-up)."""
    times = [d.expires_at for d in plan.decisions if d.action is Action.KEEP and d.expires_at is not None]
    return min(times) if times else None


GUARD_ALL_MIN = 5


def removable_by_age(d: Decision, policy: Policy, now: float) -> bool:
    """Could time alone have this session removed? True for every session acted on, and for those kept
    only because of their times (active within grace, within retention, in the future). False for
    sessions kept whatever the clock says: unreadable or in doubt, in use, pinned, without a time,
    retention forever, among the keep_last most recent."""
    if d.action is not Action.KEEP:
        return True
    s = d.session
    if s.unreadable or s.in_use or s.pinned or s.last_activity is None:
        return False
    if (s.root, s.project) in policy.project_doubts or d.by_keep_last:
        return False
    return d.expires_at is not None or s.last_activity > now


def guard(plan: Plan, policy: Policy, total: int) -> str | None:
    """Mass-removal guard: a message when the plan removes more than the configured cap, or removes every
    session that time alone could remove (at least GUARD_ALL_MIN of them): the sign of a clock that jumped
    forward. Sessions kept whatever the clock says (in use, pinned, unreadable, forever, keep_last) do not
    count either way (removable_by_age): one open session does not disarm the guard."""
    n = len(plan.to_act)
    could = sum(removable_by_age(d, policy, plan.now) for d in plan.decisions)
    if n >= GUARD_ALL_MIN and n == could:
        newest = max(d.session.last_activity or 0.0 for d in plan.to_act)
        return (
            f"refusing to remove all {n} sessions in one run (every session not kept for a reason other "
            f"than its age): even the newest was last active {human_duration(plan.now - newest)} ago. "
            "If the system clock jumped forward this would wipe the cache. If the clock is right and this "
            "is intended, re-run with --force"
        )
    if policy.max_delete_count is not None and n > policy.max_delete_count:
        return (
            f"refusing to remove {n} sessions in one run: more than max_delete_count = "
            f"{policy.max_delete_count}. If the clock is right and this is intended, re-run with --force"
        )
    if policy.max_delete_percent is not None and total and 100.0 * n / total > policy.max_delete_percent:
        return (
            f"refusing to remove {n} of {total} sessions ({100.0 * n / total:.0f}%) in one run: more than "
            f"max_delete_percent = {policy.max_delete_percent:g}%. If the clock is right and this is "
            "intended, re-run with --force"
        )
    return None


def explain(d: Decision, policy: Policy, now: float) -> list[tuple[str, str]]:
    """The reasoning behind a decision, step by step, as (step, what was found): which rule matched (or
    none, and what the session is), which window applies and where it came from, Claude Code's own window,
    grace, keep_last, pins, use, the age. Pure, for `janitor show`; the decision's own reason is the last
    step and is what the sweep acts on."""
    s = d.session
    steps: list[tuple[str, str]] = []
    rule = match_rule(s, policy.rules)
    what = (
        f"project {s.display_project}, kind {s.kind}, entrypoint {s.entrypoint or '-'}, "
        f"replied {'yes' if s.replied else 'no'}"
    )
    if rule is not None:
        steps.append(("rule", f"{rule.label} matches ({what}); first matching rule wins"))
    else:
        steps.append(("rule", f"no [[rule]] matches ({what})" if policy.rules else "no [[rule]] in the config"))
    win = window_for(s, policy, rule)
    if isinstance(win, str):
        steps.append(("window", f"cannot be known: {win}"))
    else:
        steps.append(
            ("window", ("forever" if win.seconds is None else human_duration(win.seconds)) + f", from {win.source}")
        )
    cc = claude_window(s, policy)
    if isinstance(cc, Window) and cc is not win:
        steps.append(
            (
                "Claude Code's window",
                ("forever" if cc.seconds is None else human_duration(cc.seconds))
                + f", from {cc.source} (Claude Code's own cleanup goes by it)",
            )
        )
    steps.append(("grace", f"{human_duration(policy.grace)} ({policy.sources.get('grace', 'default')})"))
    keep_last = rule.keep_last if rule and rule.keep_last is not None else policy.keep_last
    if keep_last:
        src = rule.label if rule and rule.keep_last is not None else policy.sources.get("keep_last", "default")
        steps.append(("keep_last", f"{keep_last} ({src})"))
    if s.pinned:
        steps.append(("pinned", "yes: kept until `janitor unpin`"))
    if s.in_use:
        steps.append(("in use", s.in_use))
    last = s.last_activity
    if last is not None:
        by = (
            "a record's timestamp in the transcript"
            if s.last_record_time is not None and s.last_record_time >= (s.newest_mtime or 0)
            else "the newest file time of its pieces"
        )
        steps.append(
            ("last activity", f"{human_duration(abs(now - last))} {'ago' if last <= now else 'ahead'} (from {by})")
        )
    steps.append(("decision", f"{d.action.value}: {d.reason}"))
    if d.expires_at is not None and d.action is Action.KEEP:
        steps.append(("expires", f"in {human_duration(max(0.0, d.expires_at - now))} unless it is active again"))
    return steps
