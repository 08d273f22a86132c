"""Archive lists and archive-maintenance summaries, as plain text (the CLI prints them)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from claude_janitor.durations import human_bytes
from claude_janitor.timefmt import iso

if TYPE_CHECKING:  # (the reader needs zstandard; a report's summary lines do not)
    from claude_janitor.archive.reader import ArchiveInfo


def summary_lines(info: dict[str, Any] | None, dry_run: bool) -> list[str]:
    """Lines for the sweep/report summary about archive maintenance."""
    if not info:
        return []
    lines = []
    verb = "would prune" if dry_run else "pruned"
    pruned = [p for p in info["pruned"] if p["result"] in ("ok", "dry-run")]
    if pruned:
        lines.append(
            f"archives: {verb} {len(pruned)} past archive_retention "
            f"({human_bytes(sum(p['bytes'] for p in pruned))}) in {info['dir']}"
        )
        lines += [f"  {p['archive']} ({p['reason']})" for p in pruned[:20]]
        if len(pruned) > 20:
            lines.append(f"  … and {len(pruned) - 20} more (see --json)")
    partials = info["partials"]
    if partials:
        lines.append(
            f"archives: {'would remove' if dry_run else 'removed'} {len(partials)} leftover temp "
            "file(s) of an interrupted run"
        )
    lines += [f"archive error: {e}" for e in info["errors"]]
    return lines


def render_list(archives: list[ArchiveInfo], archive_dir: Path, *, verified: bool) -> str:
    if not archives:
        return f"no archives in {archive_dir}"
    rows = [["ARCHIVED", "SESSION", "SIZE", "STORED"] + (["CHECK"] if verified else []) + ["PROJECT"]]
    for a in archives:
        h = a.header
        check = ["ok" if a.error is None else "INVALID"] if verified else []
        if not h:
            rows.append(["-", "-", "-", human_bytes(a.size)] + check + [f"{a.path}: {a.error}"])
            continue
        rows.append(
            [iso(a.archived_at) or "-", a.session_id, human_bytes(int(h.get("bytes") or 0)), human_bytes(a.size)]
            + check
            + [str(h.get("project_path") or h.get("project") or "-")]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=False)) + "  " + r[-1] for r in rows]
    bad = sum(1 for a in archives if a.error)
    lines.append("")
    lines.append(
        f"{len(archives)} archives in {archive_dir}, {human_bytes(sum(a.size for a in archives))}"
        + (f"; {bad} unreadable or not matching their manifest" if bad else "")
    )
    for a in archives:
        if a.error and a.header:
            lines.append(f"  {a.path}: {a.error}")
    return "\n".join(lines)
