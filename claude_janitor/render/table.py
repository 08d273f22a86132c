"""The report as a table or markdown (`janitor report`, `janitor du`): written line by line as it is made,
so that a report of 100k sessions never holds more than one project's sessions in order and one line."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from claude_janitor.durations import human_bytes, human_duration
from claude_janitor.model import Action, Decision, Outcome
from claude_janitor.render.report import (
    kind_cell,
    outcome_lookup,
    shown,
    summary_lines,
    title_cell,
    totals,
    window_text,
)
from claude_janitor.timefmt import display_minute, iso

if TYPE_CHECKING:
    from claude_janitor.cache.usage import StoreUsage
    from claude_janitor.sweep.run import RunResult

Groups = list[tuple[str, list[Decision]]]


def grouped(res: RunResult) -> Groups:
    """The sessions by project (as shown), each project's newest first."""
    groups: dict[str, list[Decision]] = defaultdict(list)
    for d in res.plan.decisions:
        groups[shown(d.session.display_project)].append(d)
    out = []
    for name in sorted(groups):
        ds = groups.pop(name)
        ds.sort(key=lambda d: d.session.last_activity or 0, reverse=True)
        out.append((name, ds))
    return out


def _cells(d: Decision, now: float, outcome: Outcome | None, titles: bool = True) -> list[str]:
    s = d.session
    last = s.last_activity
    decision = d.action.value
    if outcome is not None and outcome.result not in ("ok", "dry-run"):
        decision += f" ({outcome.result})"
    return [
        shown(s.session_id),
        decision,
        display_minute(last),
        human_duration(now - last) if last is not None else "-",
        human_bytes(s.bytes),
        kind_cell(s),
        *([title_cell(s)] if titles else []),
        shown(outcome.error if outcome and outcome.error else d.reason),
    ]


HEAD = ["SESSION", "DECISION", "LAST ACTIVITY", "AGE", "SIZE", "KIND", "TITLE", "REASON"]


def _head(titles: bool) -> list[str]:
    return HEAD if titles else [h for h in HEAD if h != "TITLE"]


PROJECT_HEAD = ["PROJECT", "SESSIONS", "SIZE", "RECLAIMABLE", "OLDEST", "NEWEST"]
_ANSI = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}


def _paint(text: str, style: str, color: bool) -> str:
    return f"\x1b[{_ANSI[style]}m{text}\x1b[0m" if color and text else text


def row(cells: list[str], widths: list[int], right: frozenset[int] = frozenset()) -> str:
    out = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=False))]
    return "  ".join(out).rstrip()


def _age(now: float, t: float | None) -> str:
    return "-" if t is None else human_duration(now - t)


def project_rows(res: RunResult, groups: Groups | None = None) -> list[dict[str, Any]]:
    """One summary per project, the most reclaimable first."""
    now = res.plan.now
    rows: list[dict[str, Any]] = []
    for name, ds in grouped(res) if groups is None else groups:
        acts = [t for d in ds if (t := d.session.last_activity) is not None]
        gone = [d for d in ds if d.action is not Action.KEEP]
        rows.append(
            {
                "project": name,
                "sessions": len(ds),
                "bytes": sum(d.session.bytes for d in ds),
                "to_act": len(gone),
                "bytes_reclaimable": sum(d.session.bytes for d in gone),
                "oldest_age": None if not acts else now - min(acts),
                "newest_age": None if not acts else now - max(acts),
            }
        )
    rows.sort(key=lambda r: (-r["bytes_reclaimable"], -r["bytes"], r["project"]))
    return rows


def _project_cells(r: dict[str, Any]) -> list[str]:
    rec = human_bytes(r["bytes_reclaimable"]) + (f" ({r['to_act']})" if r["to_act"] else "")
    return [
        r["project"],
        str(r["sessions"]),
        human_bytes(r["bytes"]),
        rec if r["to_act"] else "-",
        human_duration(r["oldest_age"]) if r["oldest_age"] is not None else "-",
        human_duration(r["newest_age"]) if r["newest_age"] is not None else "-",
    ]


def _headline(res: RunResult, t: dict[str, Any]) -> str:
    n_proj = len({d.session.display_project for d in res.plan.decisions})
    acting = t["delete"] + t["archive"]
    verbs = " and ".join(f"{v} {t[k]}" for k, v in (("delete", "delete"), ("archive", "archive")) if t[k])
    if res.dry_run:
        what = (
            f"a sweep would {verbs} sessions, reclaiming {human_bytes(t['bytes_reclaimable'])}"
            if acting
            else "a sweep would change nothing"
        )
    else:
        what = (
            f"this sweep acted on {acting} sessions ({human_bytes(t['bytes_reclaimable'])})"
            if acting
            else "nothing was due"
        )
    return (
        f"{t['sessions']} sessions in {n_proj} project{'s' if n_proj != 1 else ''}, {human_bytes(t['bytes'])}: {what}."
    )


def _in_project_order(groups: Groups, prows: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], list[Decision]]]:
    order = {r["project"]: i for i, r in enumerate(prows)}
    for name, ds in sorted(groups, key=lambda g: order[g[0]]):
        yield prows[order[name]], ds


def _session_lines(res: RunResult, ds: list[Decision], titles: bool, color: bool, outcome_of: Any) -> Iterator[str]:
    """One project's sessions: the column widths from a first pass, then each line as it is made."""
    now = res.plan.now
    head = _head(titles)
    w = [len(h) for h in head[:-1]]
    for d in ds:
        for i, c in enumerate(_cells(d, now, outcome_of(d), titles)[:-1]):
            w[i] = max(w[i], len(c))
    yield _paint(_line(head, w), "bold", color)
    for d in ds:
        cells = _cells(d, now, outcome_of(d), titles)
        text = _line(cells, w)
        dec = cells[1]
        style = "red" if dec.startswith("delete") else "yellow" if dec.startswith("archive") else None
        if color and style:
            text = text.replace(dec.ljust(w[1]), _paint(dec, style, True) + " " * (w[1] - len(dec)), 1)
        yield text


def _line(cells: list[str], w: list[int]) -> str:
    return (
        "  "
        + "  ".join(
            (c.rjust(wd) if k in (3, 4) else c.ljust(wd)) for k, (c, wd) in enumerate(zip(cells[:-1], w, strict=False))
        )
        + "  "
        + cells[-1]
    )


def table_lines(res: RunResult, *, sessions: bool = True, color: bool = False, titles: bool = True) -> Iterator[str]:
    title = "DRY RUN: nothing was changed" if res.dry_run else "SWEEP"
    yield _paint(f"{title} — {display_minute(res.plan.now)} UTC", "bold", color)
    yield _headline(res, totals(res))
    yield ""
    groups = grouped(res)
    prows = project_rows(res, groups)
    cells = [PROJECT_HEAD] + [_project_cells(r) for r in prows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(PROJECT_HEAD))]
    for i, c in enumerate(cells):
        line = row(c, widths, right=frozenset({1, 2, 3, 4, 5}))
        yield _paint(line, "bold", color) if i == 0 else line
    if sessions:
        outcome_of = outcome_lookup(res)
        for r, ds in _in_project_order(groups, prows):
            yield ""
            yield (
                _paint(r["project"], "cyan", color) + f"  {len(ds)} sessions, {human_bytes(r['bytes'])}, "
                f"{human_bytes(r['bytes_reclaimable'])} reclaimable"
            )
            yield from _session_lines(res, ds, titles, color, outcome_of)
    yield from _stores_table(res, color)
    yield ""
    yield from summary_lines(res)
    if not sessions:
        yield "(per-session detail: janitor report without --summary, or --format json)"


def to_table(res: RunResult, *, sessions: bool = True, color: bool = False, titles: bool = True) -> str:
    return "\n".join(table_lines(res, sessions=sessions, color=color, titles=titles))


def md(text: str) -> str:
    return text.replace("|", "\\|")


def _markdown_sessions(
    res: RunResult, r: dict[str, Any], ds: list[Decision], titles: bool, outcome_of: Any
) -> Iterator[str]:
    yield f"## `{r['project']}`"
    yield ""
    yield (
        f"<details><summary>{len(ds)} sessions, {human_bytes(r['bytes'])}, "
        f"{human_bytes(r['bytes_reclaimable'])} reclaimable</summary>"
    )
    yield ""
    head = _head(titles)
    yield "| " + " | ".join(h.title() for h in head) + " |"
    yield "|---|---|---|---:|---:|" + "---|" * (len(head) - 5)
    for d in ds:
        cells = [md(c) for c in _cells(d, res.plan.now, outcome_of(d), titles)]
        cells[0] = f"`{cells[0]}`"
        if titles:  # transcript text: no HTML or markdown of its own in the report
            cells[6] = re.sub(r"([\\`*_\[\]<>#~])", r"\\\1", cells[6])
        if d.action is not Action.KEEP:
            cells[1] = f"**{cells[1]}**"
        yield "| " + " | ".join(cells) + " |"
    yield ""
    yield "</details>"
    yield ""


def markdown_lines(res: RunResult, *, sessions: bool = True, titles: bool = True) -> Iterator[str]:
    yield f"# claude-janitor {'report (dry run)' if res.dry_run else 'sweep'} — {display_minute(res.plan.now)} UTC"
    yield ""
    yield _headline(res, totals(res))
    yield ""
    groups = grouped(res)
    prows = project_rows(res, groups)
    yield "| " + " | ".join(h.title() for h in PROJECT_HEAD) + " |"
    yield "|---|" + "---:|" * (len(PROJECT_HEAD) - 1)
    for r in prows:
        c = [md(x) for x in _project_cells(r)]
        c[0] = f"`{c[0]}`"
        yield "| " + " | ".join(c) + " |"
    yield ""
    if sessions:
        outcome_of = outcome_lookup(res)
        for r, ds in _in_project_order(groups, prows):
            yield from _markdown_sessions(res, r, ds, titles, outcome_of)
    srows = _stores_rows(res)
    if srows:
        yield from [
            "## Stores beyond sessions",
            "",
            "| " + " | ".join(h.title() for h in STORES_HEAD) + " |",
            "|---|---:|---:|---:|---:|---|---|",
        ]
        yield from ("| " + " | ".join([f"`{r[0]}`"] + [md(c) for c in r[1:]]) + " |" for r in srows)
        yield ""
    yield "## Totals"
    yield ""
    yield from (f"- {md(line.strip())}" for line in summary_lines(res))
    yield ""


def to_markdown(res: RunResult, *, sessions: bool = True, titles: bool = True) -> str:
    return "\n".join(markdown_lines(res, sessions=sessions, titles=titles))


# ---- the stores beyond sessions (removal.stores) and disk usage per store (`janitor du`) ----------------

STORES_HEAD = ["STORE", "ENTRIES", "SIZE", "WINDOW", "TO REMOVE", "KEPT", "WHERE"]


def _stores_rows(res: RunResult) -> list[list[str]]:
    rows = []
    for sd in res.plan.stores:
        gone = f"{len(sd.remove)} ({human_bytes(sd.remove_bytes)})" if sd.remove else "-"
        kept = ", ".join(f"{n} {why}" for why, n in sorted(sd.kept.items())) or "-"
        where = sd.place if sd.place == sd.root else f"{sd.place} (for {sd.root})"
        rows.append([sd.key, str(sd.entries), human_bytes(sd.bytes), window_text(sd), gone, shown(kept), shown(where)])
    return rows


def _stores_table(res: RunResult, color: bool) -> list[str]:
    rows = _stores_rows(res)
    if not rows:
        return []
    cells = [STORES_HEAD] + [r[:-1] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(STORES_HEAD) - 1)]
    out = ["", _paint("Stores beyond sessions (delete only; window: Claude Code's rule or [stores])", "bold", color)]
    for i, c in enumerate(cells):
        line = row(c, widths, right=frozenset({1, 2, 3, 4}))
        out.append(_paint(line, "bold", color) if i == 0 else line)
    return out


STORE_HEAD = ["STORE", "FILES", "SIZE", "ON DISK", "OLDEST", "NEWEST", "RECLAIMABLE", "WHAT"]


def _store_cells(u: StoreUsage, now: float) -> list[str]:
    name = u.store + ("/" if u.is_dir else "")
    return [
        name,
        f"{u.files:,}",
        human_bytes(u.bytes),
        human_bytes(u.disk_bytes),
        _age(now, u.oldest),
        _age(now, u.newest),
        human_bytes(u.reclaimable) if u.reclaimable else "-",
        u.note + (" [per session]" if u.per_session else "") + (f" [store: {', '.join(u.stores)}]" if u.stores else ""),
    ]


def stores_render(
    usage: list[tuple[str, list[StoreUsage]]], res: RunResult, fmt: str, trash: tuple[str, int, int] | None = None
) -> str:
    """`janitor du`: per-store usage of each Claude dir (table, markdown or JSON); ``trash``: (dir,
    sessions, bytes) of the janitor's trash, shown apart (it is not freed space)."""
    now = res.plan.now
    if fmt == "json":
        doc = {
            "now": iso(now),
            **({"trash": {"dir": trash[0], "sessions": trash[1], "bytes": trash[2]}} if trash is not None else {}),
            "roots": [
                {
                    "root": root,
                    "stores": [u.to_dict() for u in stores],
                    "total_bytes": sum(u.bytes for u in stores),
                    "total_disk_bytes": sum(u.disk_bytes for u in stores),
                    "reclaimable_bytes": sum(u.reclaimable for u in stores),
                }
                for root, stores in usage
            ],
        }
        return json.dumps(doc, indent=2, ensure_ascii=True)
    out: list[str] = []
    for root, stores in usage:
        disk = sum(u.disk_bytes for u in stores)
        rec = sum(u.reclaimable for u in stores)
        head = (
            f"{shown(root)}: {human_bytes(disk)} on disk in {sum(u.files for u in stores):,} files; "
            f"a sweep would reclaim {human_bytes(rec)}"
        )
        rows = [_store_cells(u, now) for u in stores]
        if fmt == "markdown":
            out += [
                f"### Disk usage of `{shown(root)}`",
                "",
                head,
                "",
                "| " + " | ".join(h.title() for h in STORE_HEAD) + " |",
                "|---|" + "---:|" * 6 + "---|",
            ]
            out += ["| " + " | ".join([f"`{md(shown(r[0]))}`"] + [md(c) for c in r[1:]]) + " |" for r in rows]
            out.append("")
        else:
            cells = [STORE_HEAD] + [[shown(r[0])] + r[1:] for r in rows]
            widths = [max(len(c[i]) for c in cells) for i in range(len(STORE_HEAD))]
            out += [head, ""] + [row(c, widths, right=frozenset({1, 2, 3, 4, 5, 6})) for c in cells] + [""]
    if not usage:
        out.append("no Claude config dir found")
    if trash is not None and trash[1]:
        out.append(
            f"trash: {trash[1]} sessions, {human_bytes(trash[2])} in {shown(trash[0])} (not freed until "
            "purged; `janitor show ID`, `janitor restore ID`, `janitor undo`)"
        )
    return "\n".join(out).rstrip() + "\n"
