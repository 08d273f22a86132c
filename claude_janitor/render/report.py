"""Renderers for plans and outcomes: table, JSON, markdown. Pure: data in, text out."""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from typing import Any

from claude_janitor.durations import human_bytes, human_duration
from claude_janitor.model import Action, Decision, Outcome
from claude_janitor.sweep.run import RunResult


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
        "paths": [f"{s.root}/{p.rel}" for p in s.pieces],
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
    by_project: dict[str, dict[str, int]] = defaultdict(lambda: {"sessions": 0, "bytes": 0,
                                                                 "bytes_reclaimable": 0})
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


def to_json(res: RunResult, *, all_sessions: bool = True, titles: bool = True) -> str:
    om = _outcome_map(res)
    decisions = res.plan.decisions if all_sessions else res.plan.to_act
    doc = {
        "dry_run": res.dry_run,
        "now": iso(res.plan.now),
        "sessions": [session_dict(d, res.plan.now, om.get(d.session.key), titles=titles) for d in decisions],
        "totals": totals(res),
        "unknown": res.plan.unknown,
        "warnings": res.plan.warnings + ([res.guard] if res.guard else []),
        "archives": getattr(res, "archives", None),
        "stores": [sd.to_dict() for sd in res.plan.stores],
        "history": [h.to_dict() for h in res.plan.history],
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


TITLE_WIDTH = 40  # a title in a table row is cut to this many characters


def kind_cell(s: Any) -> str:
    from claude_janitor.cache.titles import KIND_LABEL

    return KIND_LABEL.get(s.kind, s.kind) + (", replied" if s.replied and s.kind not in ("interactive",
                                                                                        "desktop") else "")


def title_cell(s: Any, width: int = TITLE_WIDTH) -> str:
    from claude_janitor.cache.titles import clean

    return clean(s.title, width) if s.title else "-"


def _cells(d: Decision, now: float, outcome: Outcome | None, titles: bool = True) -> list[str]:
    s = d.session
    last = s.last_activity
    decision = d.action.value
    if outcome is not None and outcome.result not in ("ok", "dry-run"):
        decision += f" ({outcome.result})"
    return [shown(s.session_id), decision, iso(last) or "-", human_duration(None if last is None else now - last)
            if last is not None else "-", human_bytes(s.bytes), kind_cell(s),
            *([title_cell(s)] if titles else []),
            shown(outcome.error if outcome and outcome.error else d.reason)]


HEAD = ["SESSION", "DECISION", "LAST ACTIVITY", "AGE", "SIZE", "KIND", "TITLE", "REASON"]


def _head(titles: bool) -> list[str]:
    return HEAD if titles else [h for h in HEAD if h != "TITLE"]
PROJECT_HEAD = ["PROJECT", "SESSIONS", "SIZE", "RECLAIMABLE", "OLDEST", "NEWEST"]
_ANSI = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}


def _paint(text: str, style: str, color: bool) -> str:
    return f"\x1b[{_ANSI[style]}m{text}\x1b[0m" if color and text else text


def _row(cells: list[str], widths: list[int], right: set[int] = frozenset()) -> str:  # type: ignore[assignment]
    out = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=False))]
    return "  ".join(out).rstrip()


def _when(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(t))


def _age(now: float, t: float | None) -> str:
    return "-" if t is None else human_duration(now - t)


def project_rows(res: RunResult) -> list[dict[str, Any]]:
    """One summary per project, the most reclaimable first."""
    now = res.plan.now
    rows = []
    for name, ds in _grouped(res):
        acts = [d.session.last_activity for d in ds if d.session.last_activity is not None]
        gone = [d for d in ds if d.action is not Action.KEEP]
        rows.append({"project": name, "sessions": len(ds), "bytes": sum(d.session.bytes for d in ds),
                     "to_act": len(gone), "bytes_reclaimable": sum(d.session.bytes for d in gone),
                     "oldest_age": None if not acts else now - min(acts),
                     "newest_age": None if not acts else now - max(acts)})
    rows.sort(key=lambda r: (-r["bytes_reclaimable"], -r["bytes"], r["project"]))
    return rows


def _project_cells(r: dict[str, Any]) -> list[str]:
    rec = human_bytes(r["bytes_reclaimable"]) + (f" ({r['to_act']})" if r["to_act"] else "")
    return [r["project"], str(r["sessions"]), human_bytes(r["bytes"]), rec if r["to_act"] else "-",
            human_duration(r["oldest_age"]) if r["oldest_age"] is not None else "-",
            human_duration(r["newest_age"]) if r["newest_age"] is not None else "-"]


def _headline(res: RunResult) -> str:
    t = totals(res)
    n_proj = len({d.session.display_project for d in res.plan.decisions})
    acting = t["delete"] + t["archive"]
    verbs = " and ".join(f"{v} {t[k]}" for k, v in (("delete", "delete"), ("archive", "archive")) if t[k])
    if res.dry_run:
        what = (f"a sweep would {verbs} sessions, reclaiming {human_bytes(t['bytes_reclaimable'])}"
                if acting else "a sweep would change nothing")
    else:
        what = (f"this sweep acted on {acting} sessions ({human_bytes(t['bytes_reclaimable'])})" if acting
                else "nothing was due")
    return (f"{t['sessions']} sessions in {n_proj} project{'s' if n_proj != 1 else ''}, "
            f"{human_bytes(t['bytes'])}: {what}.")


def to_table(res: RunResult, *, sessions: bool = True, color: bool = False, titles: bool = True) -> str:
    now = res.plan.now
    om = _outcome_map(res)
    title = "DRY RUN: nothing was changed" if res.dry_run else "SWEEP"
    lines = [_paint(f"{title} — {_when(now)} UTC", "bold", color), _headline(res), ""]
    prows = project_rows(res)
    cells = [PROJECT_HEAD] + [_project_cells(r) for r in prows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(PROJECT_HEAD))]
    for i, c in enumerate(cells):
        line = _row(c, widths, right={1, 2, 3, 4, 5})
        lines.append(_paint(line, "bold", color) if i == 0 else line)
    if sessions:
        order = {r["project"]: i for i, r in enumerate(prows)}
        for name, ds in sorted(_grouped(res), key=lambda g: order[g[0]]):
            r = prows[order[name]]
            lines.append("")
            lines.append(_paint(name, "cyan", color) + f"  {len(ds)} sessions, {human_bytes(r['bytes'])}, "
                         f"{human_bytes(r['bytes_reclaimable'])} reclaimable")
            head = _head(titles)
            rows = [head] + [_cells(d, now, om.get(d.session.key), titles) for d in ds]
            for row, d in zip(rows[1:], ds, strict=True):
                row[2] = _when(d.session.last_activity)
            w = [max(len(row[i]) for row in rows) for i in range(len(head) - 1)]
            for j, row in enumerate(rows):
                text = "  " + "  ".join(
                    (c.rjust(wd) if k in (3, 4) else c.ljust(wd)) for k, (c, wd) in enumerate(zip(row[:-1], w,
                                                                                                  strict=False)))
                text += "  " + row[-1]
                if j == 0:
                    text = _paint(text, "bold", color)
                elif color:
                    dec = row[1]
                    style = "red" if dec.startswith("delete") else "yellow" if dec.startswith("archive") else None
                    if style:
                        text = text.replace(dec.ljust(w[1]), _paint(dec, style, True) + " " * (w[1] - len(dec)), 1)
                lines.append(text)
    lines += _stores_table(res, color)
    lines.append("")
    lines += summary_lines(res)
    if not sessions:
        lines.append("(per-session detail: janitor report without --summary, or --format json)")
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(res: RunResult, *, sessions: bool = True, titles: bool = True) -> str:
    now = res.plan.now
    om = _outcome_map(res)
    out = [f"# claude-janitor {'report (dry run)' if res.dry_run else 'sweep'} — {_when(now)} UTC", "",
           _headline(res), ""]
    prows = project_rows(res)
    out.append("| " + " | ".join(h.title() for h in PROJECT_HEAD) + " |")
    out.append("|---|" + "---:|" * (len(PROJECT_HEAD) - 1))
    for r in prows:
        c = [_md(x) for x in _project_cells(r)]
        c[0] = f"`{c[0]}`"
        out.append("| " + " | ".join(c) + " |")
    out.append("")
    if sessions:
        order = {r["project"]: i for i, r in enumerate(prows)}
        for name, ds in sorted(_grouped(res), key=lambda g: order[g[0]]):
            r = prows[order[name]]
            out.append(f"## `{name}`")
            out.append("")
            out.append(f"<details><summary>{len(ds)} sessions, {human_bytes(r['bytes'])}, "
                       f"{human_bytes(r['bytes_reclaimable'])} reclaimable</summary>")
            out.append("")
            head = _head(titles)
            out.append("| " + " | ".join(h.title() for h in head) + " |")
            out.append("|---|---|---|---:|---:|" + "---|" * (len(head) - 5))
            for d in ds:
                cells = [_md(c) for c in _cells(d, now, om.get(d.session.key), titles)]
                cells[0] = f"`{cells[0]}`"
                cells[2] = _when(d.session.last_activity)
                if titles:  # transcript text: no HTML or markdown of its own in the report
                    cells[6] = re.sub(r"([\\`*_\[\]<>#~])", r"\\\1", cells[6])
                if d.action is not Action.KEEP:
                    cells[1] = f"**{cells[1]}**"
                out.append("| " + " | ".join(cells) + " |")
            out.append("")
            out.append("</details>")
            out.append("")
    srows = _stores_rows(res)
    if srows:
        out += ["## Stores beyond sessions", "", "| " + " | ".join(h.title() for h in STORES_HEAD) + " |",
                "|---|---:|---:|---:|---:|---|---|"]
        out += ["| " + " | ".join([f"`{r[0]}`"] + [_md(c) for c in r[1:]]) + " |" for r in srows]
        out.append("")
    out.append("## Totals")
    out.append("")
    out += [f"- {_md(line.strip())}" for line in summary_lines(res)]
    return "\n".join(out) + "\n"


# ---- the stores beyond sessions (janitor.stores) ----------------------------------------------------

STORES_HEAD = ["STORE", "ENTRIES", "SIZE", "WINDOW", "TO REMOVE", "KEPT", "WHERE"]


def _window_text(sd: Any) -> str:
    return human_duration(sd.window.seconds) if sd.window.seconds is not None else "forever"


def _stores_rows(res: RunResult) -> list[list[str]]:
    rows = []
    for sd in res.plan.stores:
        gone = f"{len(sd.remove)} ({human_bytes(sd.remove_bytes)})" if sd.remove else "-"
        kept = ", ".join(f"{n} {why}" for why, n in sorted(sd.kept.items())) or "-"
        where = sd.place if sd.place == sd.root else f"{sd.place} (for {sd.root})"
        rows.append([sd.key, str(sd.entries), human_bytes(sd.bytes), _window_text(sd), gone, shown(kept),
                     shown(where)])
    return rows


def _stores_table(res: RunResult, color: bool) -> list[str]:
    rows = _stores_rows(res)
    if not rows:
        return []
    cells = [STORES_HEAD] + [r[:-1] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(STORES_HEAD) - 1)]
    out = ["", _paint("Stores beyond sessions (delete only; window: Claude Code's rule or [stores])", "bold", color)]
    for i, c in enumerate(cells):
        line = _row(c, widths, right={1, 2, 3, 4})
        out.append(_paint(line, "bold", color) if i == 0 else line)
    return out


def store_lines(res: RunResult) -> list[str]:
    """What happened (or would) to each store: one line per store acted on, its problems and notes."""
    out = []
    for sd in res.plan.stores:
        where = shown(sd.place if sd.place == sd.root else sd.place)
        if sd.remove:
            why = f"older than {_window_text(sd)} ({sd.window.source})"
            if res.dry_run or sd.result in (None, "dry-run"):
                out.append(f"store {sd.key} in {where}: would remove {len(sd.remove)} of {sd.entries} entries "
                           f"({human_bytes(sd.remove_bytes)}), {why}")
            else:
                out.append(f"store {sd.key} in {where}: removed {sd.removed} of {sd.entries} entries "
                           f"({human_bytes(sd.removed_bytes)}), {why}"
                           + (f"; {sd.changed} changed since the scan, kept" if sd.changed else "")
                           + (f"; {sd.vanished} already gone" if sd.vanished else "")
                           + (f"; {sd.result}" if sd.result not in ("ok", None) else ""))
        for e in sd.errors:
            out.append(f"  failed: {shown(e)}")
        for n in sd.notes:
            if not n.startswith("windows: "):
                out.append(f"store {sd.key}: {shown(n)}")
    return out


STORE_HEAD = ["STORE", "FILES", "SIZE", "ON DISK", "OLDEST", "NEWEST", "RECLAIMABLE", "WHAT"]


def _store_cells(u: Any, now: float) -> list[str]:
    name = u.store + ("/" if u.is_dir else "")
    return [name, f"{u.files:,}", human_bytes(u.bytes), human_bytes(u.disk_bytes), _age(now, u.oldest),
            _age(now, u.newest), human_bytes(u.reclaimable) if u.reclaimable else "-",
            u.note + (" [per session]" if u.per_session else "")
            + (f" [store: {', '.join(u.stores)}]" if u.stores else "")]


def stores_render(usage: list[tuple[str, list[Any]]], res: RunResult, fmt: str,
                  trash: tuple[str, int, int] | None = None) -> str:
    """`janitor du`: per-store usage of each Claude dir (table, markdown or JSON); ``trash``: (dir,
    sessions, bytes) of the janitor's trash, shown apart (it is not freed space)."""
    now = res.plan.now
    if fmt == "json":
        doc = {"now": iso(now), **({"trash": {"dir": trash[0], "sessions": trash[1], "bytes": trash[2]}}
                                   if trash is not None else {}), "roots": [
            {"root": root, "stores": [u.to_dict() for u in stores],
             "total_bytes": sum(u.bytes for u in stores), "total_disk_bytes": sum(u.disk_bytes for u in stores),
             "reclaimable_bytes": sum(u.reclaimable for u in stores)} for root, stores in usage]}
        return json.dumps(doc, indent=2, ensure_ascii=True)
    out: list[str] = []
    for root, stores in usage:
        disk = sum(u.disk_bytes for u in stores)
        rec = sum(u.reclaimable for u in stores)
        head = (f"{shown(root)}: {human_bytes(disk)} on disk in {sum(u.files for u in stores):,} files; "
                f"a sweep would reclaim {human_bytes(rec)}")
        rows = [_store_cells(u, now) for u in stores]
        if fmt == "markdown":
            out += [f"### Disk usage of `{shown(root)}`", "", head, "",
                    "| " + " | ".join(h.title() for h in STORE_HEAD) + " |",
                    "|---|" + "---:|" * 6 + "---|"]
            out += ["| " + " | ".join([f"`{_md(shown(r[0]))}`"] + [_md(c) for c in r[1:]]) + " |" for r in rows]
            out.append("")
        else:
            cells = [STORE_HEAD] + [[shown(r[0])] + r[1:] for r in rows]
            widths = [max(len(c[i]) for c in cells) for i in range(len(STORE_HEAD))]
            out += [head, ""] + [_row(c, widths, right={1, 2, 3, 4, 5, 6}) for c in cells] + [""]
    if not usage:
        out.append("no Claude config dir found")
    if trash is not None and trash[1]:
        out.append(f"trash: {trash[1]} sessions, {human_bytes(trash[2])} in {shown(trash[0])} (not freed until "
                   "purged; `janitor show ID`, `janitor restore ID`, `janitor undo`)")
    return "\n".join(out).rstrip() + "\n"


def summary_lines(res: RunResult) -> list[str]:
    t = totals(res)
    verb = "would " if res.dry_run else ""
    lines = [f"{t['sessions']} sessions, {human_bytes(t['bytes'])}: {verb}keep {t['keep']}, "
             f"{verb}delete {t['delete']}, {verb}archive {t['archive']} "
             f"({human_bytes(t['bytes_reclaimable'])} {'reclaimable' if res.dry_run else 'to reclaim'})"]
    if t.get("bytes_to_trash"):
        win = res.policy.trash
        lines.append(f"{human_bytes(t['bytes_to_trash'])} of deleted sessions {'would go' if res.dry_run else 'go'} "
                     "to the trash: not freed until purged"
                     + (f" after {human_duration(win.seconds)}" if win.seconds is not None else " (kept forever)")
                     + "; `janitor undo` puts the last sweep back")
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
            lines.append(f"history {shown(h.root)}/history.jsonl: {'would drop' if res.dry_run else 'dropped'} "
                         f"{h.dropped} of {h.lines} lines ({what})")
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
