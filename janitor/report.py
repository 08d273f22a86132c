"""Renderers for plans and outcomes: table, JSON, markdown. Pure: data in, text out."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from typing import Any

from .durations import human_bytes, human_duration
from .model import Action, Decision, Outcome
from .sweep import RunResult


def shown(text: str) -> str:
    """A name as it can be printed safely: control characters and undecodable bytes escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else
                   (f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF else c.encode("unicode_escape").decode())
                   for c in text)


def iso(t: float | None) -> str | None:
    if t is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _outcome_map(res: RunResult) -> dict[tuple[str, str, str], Outcome]:
    return {o.decision.session.key: o for o in res.outcomes}


def session_dict(d: Decision, now: float, outcome: Outcome | None) -> dict[str, Any]:
    s = d.session
    last = s.last_activity
    out: dict[str, Any] = {
        "session_id": s.session_id,
        "root": s.root,
        "project": s.project,
        "project_path": s.project_path,
        "decision": d.action.value,
        "reason": d.reason,
        "rule": d.rule,
        "last_activity": iso(last),
        "age_seconds": None if last is None else round(now - last, 3),
        "bytes": s.bytes,
        "paths": [f"{s.root}/{p.rel}" for p in s.pieces],
        "pinned": s.pinned,
    }
    if d.expires_at is not None:
        out["expires_at"] = iso(d.expires_at)
    if s.notes:
        out["notes"] = list(s.notes)
    if outcome is not None:
        out["result"] = outcome.result
        if outcome.error:
            out["error"] = outcome.error
        if outcome.archive:
            out["archive"] = outcome.archive
    return out


def totals(res: RunResult) -> dict[str, Any]:
    counts = {a.value: 0 for a in Action}
    by_project: dict[str, dict[str, int]] = defaultdict(lambda: {"sessions": 0, "bytes": 0,
                                                                 "bytes_reclaimable": 0})
    reclaim = 0
    total = 0
    for d in res.plan.decisions:
        counts[d.action.value] += 1
        b = d.session.bytes
        total += b
        p = by_project[d.session.display_project]
        p["sessions"] += 1
        p["bytes"] += b
        if d.action is not Action.KEEP:
            reclaim += b
            p["bytes_reclaimable"] += b
    results: dict[str, int] = defaultdict(int)
    for o in res.outcomes:
        results[o.result] += 1
    return {
        "sessions": len(res.plan.decisions),
        **counts,
        "bytes": total,
        "bytes_reclaimable": reclaim,
        "results": dict(results),
        "by_project": dict(sorted(by_project.items())),
    }


def to_json(res: RunResult, *, all_sessions: bool = True) -> str:
    om = _outcome_map(res)
    decisions = res.plan.decisions if all_sessions else res.plan.to_act
    doc = {
        "dry_run": res.dry_run,
        "now": iso(res.plan.now),
        "sessions": [session_dict(d, res.plan.now, om.get(d.session.key)) for d in decisions],
        "totals": totals(res),
        "unknown": res.plan.unknown,
        "warnings": res.plan.warnings + ([res.guard] if res.guard else []),
        "archives": getattr(res, "archives", None),
    }
    # ASCII JSON: names that are not valid UTF-8 stay representable (as \udcXX escapes) and the output is
    # always valid UTF-8 for whatever consumes it.
    return json.dumps(doc, indent=2, ensure_ascii=True)


def _grouped(res: RunResult) -> list[tuple[str, list[Decision]]]:
    groups: dict[str, list[Decision]] = defaultdict(list)
    for d in res.plan.decisions:
        groups[shown(d.session.display_project)].append(d)
    out = []
    for name in sorted(groups):
        ds = sorted(groups[name], key=lambda d: d.session.last_activity or 0, reverse=True)
        out.append((name, ds))
    return out


def _cells(d: Decision, now: float, outcome: Outcome | None) -> list[str]:
    s = d.session
    last = s.last_activity
    decision = d.action.value
    if outcome is not None and outcome.result not in ("ok", "dry-run"):
        decision += f" ({outcome.result})"
    return [shown(s.session_id), decision, iso(last) or "-", human_duration(None if last is None else now - last)
            if last is not None else "-", human_bytes(s.bytes),
            shown(outcome.error if outcome and outcome.error else d.reason)]


HEAD = ["SESSION", "DECISION", "LAST ACTIVITY", "AGE", "SIZE", "REASON"]


def to_table(res: RunResult) -> str:
    now = res.plan.now
    om = _outcome_map(res)
    lines: list[str] = []
    title = "DRY RUN: nothing was changed" if res.dry_run else "SWEEP"
    lines.append(title)
    for name, ds in _grouped(res):
        size = sum(d.session.bytes for d in ds)
        reclaim = sum(d.session.bytes for d in ds if d.action is not Action.KEEP)
        lines.append("")
        lines.append(f"{name}  ({len(ds)} sessions, {human_bytes(size)}, "
                     f"{human_bytes(reclaim)} reclaimable)")
        rows = [HEAD] + [_cells(d, now, om.get(d.session.key)) for d in ds]
        widths = [max(len(r[i]) for r in rows) for i in range(len(HEAD) - 1)]
        for r in rows:
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=False)) + "  " + r[-1])
    lines.append("")
    lines += summary_lines(res)
    return "\n".join(lines)


def to_markdown(res: RunResult) -> str:
    now = res.plan.now
    om = _outcome_map(res)
    out = [f"# claude-janitor {'report (dry run)' if res.dry_run else 'sweep'} — {iso(now)}", ""]
    for name, ds in _grouped(res):
        reclaim = sum(d.session.bytes for d in ds if d.action is not Action.KEEP)
        out.append(f"## `{name}`")
        out.append("")
        out.append(f"{len(ds)} sessions, {human_bytes(sum(d.session.bytes for d in ds))}, "
                   f"{human_bytes(reclaim)} reclaimable")
        out.append("")
        out.append("| " + " | ".join(h.title() for h in HEAD) + " |")
        out.append("|" + "---|" * len(HEAD))
        for d in ds:
            cells = [c.replace("|", "\\|") for c in _cells(d, now, om.get(d.session.key))]
            cells[0] = f"`{cells[0]}`"
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    out.append("## Totals")
    out.append("")
    out += [f"- {line}" for line in summary_lines(res)]
    return "\n".join(out) + "\n"


def summary_lines(res: RunResult) -> list[str]:
    t = totals(res)
    verb = "would " if res.dry_run else ""
    lines = [f"{t['sessions']} sessions, {human_bytes(t['bytes'])}: {verb}keep {t['keep']}, "
             f"{verb}delete {t['delete']}, {verb}archive {t['archive']} "
             f"({human_bytes(t['bytes_reclaimable'])} {'reclaimable' if res.dry_run else 'to reclaim'})"]
    r = t["results"]
    if not res.dry_run and res.outcomes:
        lines.append("results: " + ", ".join(f"{k} {v}" for k, v in sorted(r.items())))
    for o in res.outcomes:
        if o.result in ("failed", "skipped"):
            lines.append(f"{o.result}: {shown(o.decision.session.session_id)}: {shown(o.error or '')}")
    if res.plan.unknown:
        lines.append(f"{len(res.plan.unknown)} unknown entries left alone:")
        lines += [f"  {shown(u)}" for u in res.plan.unknown[:50]]
        if len(res.plan.unknown) > 50:
            lines.append(f"  … and {len(res.plan.unknown) - 50} more (see --format json)")
    for w in res.plan.warnings:
        lines.append(f"warning: {w}")
    if res.guard:
        lines.append(f"guard: {res.guard}")
    if getattr(res, "archives", None):
        from .archive import summary_lines as archive_lines

        lines += archive_lines(res.archives, res.dry_run)
    return lines
