"""Archive maintenance and lookup: list archives, clean temp leftovers, prune past retention, find one."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from claude_janitor.archive.format import (
    SUFFIX,
    ArchiveInvalid,
    archive_files,
    error_text,
    partial_files,
    safe_name,
)
from claude_janitor.archive.reader import ArchiveInfo, read_header, verify
from claude_janitor.audit.log import AuditLog
from claude_janitor.cache.ids import canonical_id, same_id
from claude_janitor.config.paths import JanitorDirs, archive_dir_for, encode_project
from claude_janitor.durations import human_duration
from claude_janitor.errors import ExitStatus, JanitorError
from claude_janitor.fs.atomicfile import fsync_dir
from claude_janitor.model import Policy, Window
from claude_janitor.timefmt import iso


def list_archives(archive_dir: Path, *, full: bool = False) -> list[ArchiveInfo]:
    """Every archive under ``archive_dir`` (temp files are never included), oldest first.

    Unreadable ones are included with ``error`` set. ``full`` verifies each one completely."""
    out: list[ArchiveInfo] = []
    for path in archive_files(archive_dir):
        try:
            out.append(verify(path) if full else read_header(path))
        except (ArchiveInvalid, OSError) as e:
            out.append(ArchiveInfo(path, {}, {} if full else None, _size(path), error_text(e)))
    out.sort(key=age_key)
    return out


def age_key(a: ArchiveInfo) -> tuple[float, int, str]:
    """Oldest first: by archived_at, then by the -N a later archive of the same second got."""
    m = re.search(r"-(\d+)" + re.escape(SUFFIX) + "$", a.path.name)
    return (a.archived_at, int(m.group(1)) if m else 0, str(a.path))


def _size(path: Path) -> int:
    try:
        return path.lstat().st_size
    except OSError:
        return 0


def maintain(
    pol: Policy, dirs: JanitorDirs, now: float, *, dry_run: bool, audit: AuditLog | None
) -> dict[str, Any] | None:
    """Once per sweep: remove temp files left by an interrupted run (real runs only; the caller holds the
    sweep lock) and prune archives past ``archive_retention`` (dry runs only report both).
    Returns a summary, or None when there is no archive dir."""
    adir = archive_dir_for(pol, dirs)
    if not os.path.isdir(adir):
        return None
    info: dict[str, Any] = {"dir": str(adir), "partials": [], "pruned": [], "errors": []}
    for p in partial_files(adir):
        if dry_run:
            info["partials"].append({"path": str(p), "result": "dry-run"})
            continue
        try:
            p.unlink()
            info["partials"].append({"path": str(p), "result": "removed"})
        except FileNotFoundError:
            pass
        except OSError as e:
            info["errors"].append(f"cannot remove leftover temp file {p}: {e.strerror}")
    info["pruned"] = prune(adir, pol.archive_retention, now, dry_run=dry_run, audit=audit, errors=info["errors"])
    return info


def prune(
    archive_dir: Path,
    retention: Window | None,
    now: float,
    *,
    dry_run: bool,
    audit: AuditLog | None,
    errors: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Remove archives older than ``retention`` (by the archived_at in their header), audited.

    An archive archived exactly ``retention`` ago is kept. Unreadable archives are never pruned."""
    if retention is None or retention.seconds is None:
        return []
    errors = errors if errors is not None else []
    todo: list[tuple[ArchiveInfo, dict[str, Any]]] = []
    for a in list_archives(archive_dir):
        if a.error:
            errors.append(f"archive {a.path} is unreadable ({a.error}); kept, not pruned")
            continue
        age = now - a.archived_at
        if age <= retention.seconds:
            continue
        rec = {
            "action": "prune-archive",
            "archive": str(a.path),
            "session_id": a.session_id,
            "root": a.header.get("root"),
            "project": a.header.get("project"),
            "archived_at": iso(a.archived_at),
            "bytes": a.size,
            "reason": f"archived {human_duration(age)} ago > archive_retention "
            f"{human_duration(retention.seconds)} ({retention.source})",
        }
        todo.append((a, rec))
    if not todo or dry_run:
        return [{**rec, "result": "dry-run"} for _, rec in todo] if dry_run else []
    if audit:
        audit.append([{**rec, "phase": "intent", "result": "pending"} for _, rec in todo])
    out = []
    for a, rec in todo:
        try:
            a.path.unlink()
            fsync_dir(a.path.parent)
            res = {**rec, "result": "ok"}
        except FileNotFoundError:
            res = {**rec, "result": "vanished"}
        except OSError as e:
            res = {**rec, "result": "failed", "error": f"{e.strerror or e}"}
            errors.append(f"cannot prune archive {a.path}: {e.strerror or e}")
        out.append(res)
    if audit:
        audit.append([{**r, "phase": "result"} for r in out])
    return out


def _project_matches(h: dict[str, Any], project: str) -> bool:
    cands = {h.get("project"), h.get("project_path")}
    if project in cands:
        return True
    expanded = os.path.abspath(os.path.expanduser(project))
    return expanded in cands or encode_project(expanded) == h.get("project")


def find_archive(archive_dir: Path, session_id: str, *, project: str | None = None) -> ArchiveInfo:
    """The newest archive of ``session_id`` (in ``project`` if given). JanitorError if none or ambiguous."""
    prefixes = tuple({f"{safe_name(x)}.".lower() for x in (session_id, canonical_id(session_id))})
    found = []
    for path in archive_files(archive_dir):
        if not path.name.lower().startswith(prefixes):  # ids compare case-blind (ids.canonical_id)
            continue
        try:
            a = read_header(path)
        except (ArchiveInvalid, OSError):
            continue
        if same_id(a.session_id, session_id) and (project is None or _project_matches(a.header, project)):
            found.append(a)
    if not found:
        where = f" of project {project}" if project else ""
        raise JanitorError(
            f"no archive of session {session_id}{where} in {archive_dir} (see `janitor archive list`)",
            ExitStatus.ACTIONS_FAILED,
        )
    places = {(a.header["root"], a.header["project"]) for a in found}
    if len(places) > 1:
        opts = ", ".join(sorted(a.header.get("project_path") or a.header["project"] for a in found))
        raise JanitorError(
            f"session {session_id} was archived from more than one place ({opts}); "
            "choose one with --project or --archive",
            ExitStatus.USAGE,
        )
    return max(found, key=age_key)
