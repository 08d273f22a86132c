"""Renderers for plans and outcomes: JSON (streamed), the summary lines, and what every renderer shares
(render.table has the table and markdown). Pure: data in, text out."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from claude_janitor.durations import human_bytes, human_duration
from claude_janitor.model import Action, Decision, Outcome, Session
from claude_janitor.timefmt import iso

if TYPE_CHECKING:
    from claude_janitor.sweep.run import RunResult


def shown(text: str) -> str:
    """A name as it can be printed safely: control characters and undecodable bytes escaped."""
    if text.isprintable():
        return text
    return "".join(
        c
        if c.isprintable()
        else (f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF else c.encode("unicode_escape").decode())
        for c in text
    )


def session_dict(d: Decision, now: float, outcome: Outcome | None, *, titles: bool = True) -> dict[str, Any]:
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
        "paths": [f"{s.root}/{rel}" for rel in s.pieces.rels()],
        "pinned": s.pinned,
        "kind": s.kind,
        "entrypoint": s.entrypoint,
        "replied": s.replied,
    }
    if titles:
        out["title"] = s.title
        out["title_source"] = s.title_source
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
        if outcome.trash:
            out["trash"] = outcome.trash
    return out


def totals(res: RunResult) -> dict[str, Any]:
    counts = {a.value: 0 for a in Action}
    by_project: dict[str, dict[str, int]] = defaultdict(lambda: {"sessions": 0, "bytes": 0, "bytes_reclaimable": 0})
    reclaim = 0
    total = 0
    to_trash = 0
    trash_on = getattr(res.policy, "trash", None) is not None
    for d in res.plan.decisions:
        counts[d.action.value] += 1
        b = d.session.bytes
        total += b
        p = by_project[d.session.display_project]
        p["sessions"] += 1
        p["bytes"] += b
        if d.action is Action.DELETE and trash_on:
            to_trash += b  # not freed until purged from the trash
        elif d.action is not Action.KEEP:
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
        **({"bytes_to_trash": to_trash} if trash_on else {}),
        "results": dict(results),
        "by_project": dict(sorted(by_project.items())),
    }


def outcome_lookup(res: RunResult) -> Callable[[Decision], Outcome | None]:
    """Each acted-on decision's outcome (by identity: a key tuple per session would cost ~100 B each)."""
    by_decision = {id(o.decision): o for o in res.outcomes}
    return lambda d: by_decision.get(id(d))


def _dumps(value: object, level: int) -> str:
    """``value`` as json.dumps(indent=2) writes it ``level`` levels deep in a document."""
    text = _flat_dumps(value, level) if isinstance(value, dict) else None
    if text is not None:
        return text
    text = json.dumps(value, indent=2, ensure_ascii=True)
    return text.replace("\n", "\n" + "  " * level) if level else text


_scalar_json: Callable[[str], str] = json.encoder.encode_basestring_ascii


def _scalar(v: object) -> str | None:
    """A scalar as json.dumps writes it (None for what it is not, or a float that is not finite)."""
    if isinstance(v, str):
        return _scalar_json(v)
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return int.__repr__(v)
    if isinstance(v, float) and v - v == 0.0:  # finite
        return float.__repr__(v)
    return None


def _flat_dumps(d: dict[Any, Any], level: int) -> str | None:
    """json.dumps(d, indent=2, ensure_ascii=True) ``level`` levels deep, byte for byte, for a dict of
    scalars and lists of scalars (a session's: made a session at a time, json's indenting encoder is
    written in Python, its C one only writes without indent); None for any other dict."""
    pad, inner = "\n" + "  " * (level + 1), "\n" + "  " * (level + 2)
    parts = []
    for k, v in d.items():
        if not isinstance(k, str):
            return None
        if isinstance(v, list):
            items = [t for x in v if (t := _scalar(x)) is not None]
            if len(items) != len(v):
                return None
            text = f"[{inner}{(',' + inner).join(items)}{pad}]" if items else "[]"
        else:
            got = _scalar(v)
            if got is None:
                return None
            text = got
        parts.append(f"{pad}{_scalar_json(k)}: {text}")
    return "{" + ",".join(parts) + "\n" + "  " * level + "}" if parts else "{}"


def json_chunks(res: RunResult, *, all_sessions: bool = True, titles: bool = True) -> Iterator[str]:
    """The JSON document to_json returns, made and given out a session at a time: byte for byte what
    json.dumps(doc, indent=2, ensure_ascii=True) writes (ASCII JSON: names that are not valid UTF-8 stay
    representable as \\udcXX escapes, and the output is always valid UTF-8), without the whole document
    (~1.2 KB a session) or its sessions' dicts in memory."""
    now = res.plan.now
    outcome_of = outcome_lookup(res)
    yield f'{{\n  "dry_run": {_dumps(res.dry_run, 1)},\n  "now": {_dumps(iso(now), 1)},\n  "sessions": '
    empty = True
    for d in res.plan.decisions if all_sessions else res.plan.to_act:
        yield ("[\n    " if empty else ",\n    ") + _dumps(session_dict(d, now, outcome_of(d), titles=titles), 2)
        empty = False
    yield "[]" if empty else "\n  ]"
    rest = {
        "totals": totals(res),
        "unknown": res.plan.unknown,
        "warnings": res.plan.warnings + ([res.guard] if res.guard else []),
        "archives": getattr(res, "archives", None),
        "stores": [sd.to_dict() for sd in res.plan.stores],
        "history": [h.to_dict() for h in res.plan.history],
    }
    for key, value in rest.items():
        yield f",\n  {_dumps(key, 1)}: {_dumps(value, 1)}"
    yield "\n}"


def to_json(res: RunResult, *, all_sessions: bool = True, titles: bool = True) -> str:
    return "".join(json_chunks(res, all_sessions=all_sessions, titles=titles))


TITLE_WIDTH = 40  # a title in a table row is cut to this many characters


def kind_cell(s: Session) -> str:
    from claude_janitor.cache.titles import KIND_LABEL

    kind: str = s.kind
    return KIND_LABEL.get(kind, kind) + (", replied" if s.replied and s.kind not in ("interactive", "desktop") else "")


def title_cell(s: Session, width: int = TITLE_WIDTH) -> str:
    from claude_janitor.cache.titles import clean

    return clean(s.title, width) if s.title else "-"


# ---- the stores beyond sessions (janitor.stores) ----------------------------------------------------


def window_text(sd: Any) -> str:
    return human_duration(sd.window.seconds) if sd.window.seconds is not None else "forever"


def store_lines(res: RunResult) -> list[str]:
    """What happened (or would) to each store: one line per store acted on, its problems and notes."""
    out = []
    for sd in res.plan.stores:
        where = shown(sd.place if sd.place == sd.root else sd.place)
        if sd.remove:
            why = f"older than {window_text(sd)} ({sd.window.source})"
            if res.dry_run or sd.result in (None, "dry-run"):
                out.append(
                    f"store {sd.key} in {where}: would remove {len(sd.remove)} of {sd.entries} entries "
                    f"({human_bytes(sd.remove_bytes)}), {why}"
                )
            else:
                out.append(
                    f"store {sd.key} in {where}: removed {sd.removed} of {sd.entries} entries "
                    f"({human_bytes(sd.removed_bytes)}), {why}"
                    + (f"; {sd.changed} changed since the scan, kept" if sd.changed else "")
                    + (f"; {sd.vanished} already gone" if sd.vanished else "")
                    + (f"; {sd.result}" if sd.result not in ("ok", None) else "")
                )
        for e in sd.errors:
            out.append(f"  failed: {shown(e)}")
        for n in sd.notes:
            if not n.startswith("windows: "):
                out.append(f"store {sd.key}: {shown(n)}")
    return out


def summary_lines(res: RunResult) -> list[str]:
    t = totals(res)
    verb = "would " if res.dry_run else ""
    lines = [
        f"{t['sessions']} sessions, {human_bytes(t['bytes'])}: {verb}keep {t['keep']}, "
        f"{verb}delete {t['delete']}, {verb}archive {t['archive']} "
        f"({human_bytes(t['bytes_reclaimable'])} {'reclaimable' if res.dry_run else 'to reclaim'})"
    ]
    if t.get("bytes_to_trash"):
        win = res.policy.trash
        assert win is not None  # bytes go to the trash only when it is on
        lines.append(
            f"{human_bytes(t['bytes_to_trash'])} of deleted sessions {'would go' if res.dry_run else 'go'} "
            "to the trash: not freed until purged"
            + (f" after {human_duration(win.seconds)}" if win.seconds is not None else " (kept forever)")
            + "; `janitor undo` puts the last sweep back"
        )
    r = t["results"]
    if not res.dry_run and res.outcomes:
        lines.append("results: " + ", ".join(f"{k} {v}" for k, v in sorted(r.items())))
    for o in res.outcomes:
        if o.result in ("failed", "skipped"):
            lines.append(f"{o.result}: {shown(o.decision.session.session_id)}: {shown(o.error or '')}")
    lines += store_lines(res)
    for h in res.plan.history:
        what = f"{h.dropped_sessions} of removed sessions, {h.dropped_age} past the [history] retention"
        if h.result in ("ok", "dry-run"):
            lines.append(
                f"history {shown(h.root)}/history.jsonl: {'would drop' if res.dry_run else 'dropped'} "
                f"{h.dropped} of {h.lines} lines ({what})"
            )
        elif h.result != "nothing to do":
            lines.append(f"history {shown(h.root)}/history.jsonl: {shown(h.result)}")
        if h.kept_archived:
            lines.append(f"  {h.kept_archived} lines of archived sessions are not in their archive: kept")
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
        from claude_janitor.render.archives import summary_lines as archive_lines

        lines += archive_lines(res.archives, res.dry_run)
    return lines
