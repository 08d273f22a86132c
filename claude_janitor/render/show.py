"""`janitor show ID`: one session, everything the janitor knows about it. Reads only.

The session is found by a dry-run plan of the whole cache (the same scan and decisions as `janitor report`,
so its decision and reasons are exactly a sweep's), plus its pins, archives and trash entries."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from claude_janitor.cache.ids import same_id
from claude_janitor.durations import human_bytes
from claude_janitor.model import Decision, Plan, Policy
from claude_janitor.policy import explain
from claude_janitor.render.report import kind_cell, session_dict, shown
from claude_janitor.timefmt import display_second, iso


@dataclass
class Shown:
    decision: Decision
    steps: list[tuple[str, str]]
    archives: list[dict[str, Any]] = field(default_factory=list)
    trash: list[dict[str, Any]] = field(default_factory=list)


def find(plan: Plan, pol: Policy, session_id: str) -> list[Shown]:
    """Every decision of the plan for this id: one per project holding it (the same id in two projects is
    two sessions), and the side stores such an id leaves on their own."""
    return [Shown(d, explain(d, pol, plan.now)) for d in plan.decisions if same_id(d.session.session_id, session_id)]


def to_dict(x: Shown, now: float, titles: bool) -> dict[str, Any]:
    s = x.decision.session
    out = session_dict(x.decision, now, None, titles=titles)
    out["pieces"] = [
        {"path": f"{s.root}/{p.rel}", "store": p.store, "dir": p.is_dir, "bytes": p.bytes, "mtime": iso(p.mtime)}
        for p in s.pieces
    ]
    out["last_record_time"] = iso(s.last_record_time)
    out["in_use"] = s.in_use
    out["reasoning"] = [{"step": k, "detail": v} for k, v in x.steps]
    out["archives"] = x.archives
    out["trash"] = x.trash
    return out


def to_json(found: list[Shown], now: float, titles: bool) -> str:
    return json.dumps(
        {"now": iso(now), "sessions": [to_dict(x, now, titles) for x in found]}, indent=2, ensure_ascii=True
    )


def render(found: list[Shown], now: float, titles: bool) -> str:
    out: list[str] = []
    if len(found) > 1:
        out += [f"{len(found)} sessions have this id (the same id in more than one place):", ""]
    for x in found:
        s = x.decision.session
        out.append(f"session {shown(s.session_id)}")
        if titles:
            out.append(
                f"  title:     {shown(s.title) if s.title else '-'}" + (f"  ({s.title_source})" if s.title else "")
            )
        out.append(
            f"  kind:      {kind_cell(s)}  (entrypoint {shown(s.entrypoint or '-')}; replied: "
            f"{'yes' if s.replied else 'no'})"
        )
        out.append(
            f"  project:   {shown(s.display_project)}" + (f"  [projects/{shown(s.project)}]" if s.project else "")
        )
        out.append(f"  root:      {shown(s.root)}")
        out.append(f"  size:      {human_bytes(s.bytes)} in {len(s.pieces)} pieces")
        out.append(f"  pinned:    {'yes' if s.pinned else 'no'}")
        out.append("  pieces:")
        width = max((len(p.rel) for p in s.pieces), default=0)
        for p in s.pieces:
            out.append(
                f"    {shown(p.rel + ('/' if p.is_dir else '')).ljust(width + 1)}  {p.store:<13}"
                f"{human_bytes(p.bytes):>10}  {display_second(p.mtime)}"
            )
        out.append(f"  decision:  {x.decision.action.value}")
        out.append("  how it was decided:")
        for k, v in x.steps:
            out.append(f"    {k}: {shown(v)}")
        for n in s.notes:
            out.append(f"  note: {shown(n)}")
        if x.archives:
            out.append("  archives:")
            for a in x.archives:
                out.append(
                    f"    {shown(a['path'])}  archived {a.get('archived_at') or '?'}"
                    + (f"  ERROR: {shown(a['error'])}" if a.get("error") else "")
                )
        else:
            out.append("  archives:  none")
        if x.trash:
            out.append("  in the trash:")
            for t in x.trash:
                out.append(f"    {shown(t['path'])}  removed {t.get('removed_at') or '?'}")
        out.append("")
    return "\n".join(out).rstrip() + "\n"
