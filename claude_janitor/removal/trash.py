"""The trash: opt-in (``trash = "7d"``), removed sessions kept whole for a while so they can be put back.

Built on the removal transaction (staging.py): a session is staged, verified and committed exactly as for a
delete, and then, instead of being purged, its committed entry is moved by one rename into
``<data dir>/trash/<session id>.<token>/`` — no copy, as fast as deleting. The entry holds the pieces
under their %-encoded paths (staging's names), and ``trash.json`` (what, from where, when; no content).

The trash must be on the Claude dir's filesystem (a rename cannot cross filesystems). When it is not, the
session is archived instead (the same undo, at the cost of a copy) and the outcome says so.

A later sweep purges entries older than the period (audited, ``"action": "purge-trash"``). ``janitor
restore ID`` puts a trashed session back as from an archive (never replacing anything, only into the
resolved Claude dir, every piece with the restore time, like an archive restore); ``janitor undo`` puts
back everything the last sweep that removed something removed (``last-sweep.json`` in the state dir).
Trashed bytes are not freed until purged: reports and metrics count them apart.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from claude_janitor.cache.ids import same_id
from claude_janitor.cache.layout import piece_owner
from claude_janitor.config.paths import JanitorDirs
from claude_janitor.errors import ExitStatus, JanitorError
from claude_janitor.fs.atomicfile import DIR_FLAGS, mkdirs_private, write_atomic
from claude_janitor.fs.safefs import Root
from claude_janitor.fs.tree import Unsafe, rename_noreplace, rmtree_at, walk_at
from claude_janitor.model import Decision, Policy
from claude_janitor.removal.staging import ORIGIN  # staging's map of long piece names
from claude_janitor.timefmt import iso

META = "trash.json"
LAST_SWEEP = "last-sweep.json"
LAST_SWEEP_MAX = 256 << 20  # ~200 B a session removed: over a million sessions (STATE_MAX, 16 MB, was ~80k)
MAX_META = 1 << 20


def trash_dir(dirs: JanitorDirs) -> Path:
    return dirs.data / "trash"


def _open_trash(tdir: Path) -> int:
    if not tdir.is_dir():
        mkdirs_private(tdir)
    return os.open(str(tdir), DIR_FLAGS)


def same_filesystem(tdir: Path, root: Root) -> bool:
    """Whether a session of ``root`` can be moved into the trash by a rename."""
    try:
        fd = _open_trash(tdir)
    except OSError:
        return False
    try:
        return os.fstat(fd).st_dev == root.dev
    finally:
        os.close(fd)


def actor(root: Root, d: Decision, *, tdir: Path, now: float, fallback: Any = None) -> dict[str, Any]:
    """Delete with the trash on: the removal transaction, its committed entry moved into the trash."""
    from claude_janitor.removal import checks, staging

    fd = _open_trash(tdir)
    try:
        if os.fstat(fd).st_dev != root.dev:
            if fallback is None:
                raise Unsafe(
                    f"the trash {tdir} is on another filesystem than {root.path} and archives are "
                    "unavailable: kept (put the janitor's data dir on the same filesystem)"
                )
            extra = dict(fallback(root, d) or {})
            extra["trash_fallback"] = f"the trash {tdir} is on another filesystem than {root.path}: archived instead"
            return extra
        name = f"{d.session.session_id}.{secrets.token_hex(4)}"
        staging.remove(root, d.session, d.action.value, checks.matches_scan(d.session), into=(fd, name))
        meta = {
            "session_id": d.session.session_id,
            "root": root.path,
            "project": d.session.project,
            "project_path": d.session.project_path,
            "removed_at": now,
            "pieces": [p.rel for p in d.session.pieces],
            "bytes": d.session.bytes,
            "reason": d.reason,
        }
        with contextlib.suppress(OSError):  # the entry is complete without it (names say where each piece goes)
            write_atomic(tdir / name / META, json.dumps(meta))
        return {"trash": str(tdir / name)}
    finally:
        os.close(fd)


def bind(actors: dict[Any, Any], pol: Policy, dirs: JanitorDirs, now: float, fallback: Any) -> dict[Any, Any]:
    """The actors with delete going to the trash (when ``trash`` is set)."""
    import functools

    from claude_janitor.model import Action

    if pol.trash is None:
        return actors
    actors = dict(actors)
    actors[Action.DELETE] = functools.partial(actor, tdir=trash_dir(dirs), now=now, fallback=fallback)
    return actors


# ---- what is in the trash ----------------------------------------------------------------------------


@dataclass
class Entry:
    name: str
    path: Path
    session_id: str
    removed_at: float
    project: str = ""
    project_path: str | None = None
    root: str | None = None
    pieces: dict[str, str] = field(default_factory=dict)  # staged name → original rel
    bytes: int = 0
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "session_id": self.session_id,
            "removed_at": iso(self.removed_at),
            "project": self.project,
            "project_path": self.project_path,
            "root": self.root,
            "bytes": self.bytes,
            "pieces": sorted(self.pieces.values()),
            "problem": self.problem,
        }


def _read_json(dfd: int, name: str) -> Any:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        raw = os.read(fd, MAX_META + 1)
    finally:
        os.close(fd)
    if len(raw) > MAX_META:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def _entry(tfd: int, tdir: Path, name: str) -> Entry | None:
    sid = name.partition(".")[0]
    try:
        fd = os.open(name, DIR_FLAGS, dir_fd=tfd)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        meta = _read_json(fd, META)
        meta = meta if isinstance(meta, dict) else {}
        origin = _read_json(fd, ORIGIN)
        origin = origin if isinstance(origin, dict) else {}
        e = Entry(
            name,
            tdir / name,
            sid,
            float(meta["removed_at"]) if isinstance(meta.get("removed_at"), int | float) else st.st_mtime,
        )
        project = meta.get("project")
        e.project = project if isinstance(project, str) else ""
        e.project_path = meta.get("project_path") if isinstance(meta.get("project_path"), str) else None
        e.root = meta.get("root") if isinstance(meta.get("root"), str) else None
        for staged in sorted(os.listdir(fd)):
            if staged in (META, ORIGIN) or staged.startswith("."):
                continue
            named = origin.get(staged)
            rel: str | None = (
                (named if isinstance(named, str) else None)
                if staged in origin
                else unquote(staged, errors="surrogateescape")
            )
            try:
                pst = os.stat(staged, dir_fd=fd, follow_symlinks=False)
            except OSError:
                continue
            owner = piece_owner(rel, stat.S_ISDIR(pst.st_mode)) if rel is not None else None
            if rel is None or owner is None or not same_id(owner[1], sid):
                e.problem = f"{staged}: not a piece of session {sid}; the entry is left alone"
                continue
            if owner[0] and not e.project:
                e.project = owner[0]
            e.pieces[staged] = rel
            for _, ist in walk_at(fd, staged, st.st_dev):
                if stat.S_ISREG(ist.st_mode):
                    e.bytes += ist.st_size
        return e
    except OSError as err:
        return Entry(name, tdir / name, sid, 0.0, problem=f"unreadable: {err.strerror}")
    finally:
        os.close(fd)


def entries(tdir: Path) -> list[Entry]:
    """Every session in the trash, oldest first."""
    try:
        tfd = os.open(str(tdir), DIR_FLAGS)
    except OSError:
        return []
    try:
        out = [e for n in sorted(os.listdir(tfd)) if not n.startswith(".") and (e := _entry(tfd, tdir, n))]
    finally:
        os.close(tfd)
    return sorted(out, key=lambda e: e.removed_at)


def usage(tdir: Path) -> tuple[int, int]:
    """(sessions, bytes) in the trash."""
    es = entries(tdir)
    return len(es), sum(e.bytes for e in es)


# ---- purge ------------------------------------------------------------------------------------------


def maintain(pol: Policy, dirs: JanitorDirs, now: float, *, dry_run: bool, audit: Any) -> dict[str, Any] | None:
    """Purge trash entries older than the trash period (none while trash is off: `janitor undo`/`restore`
    still find them)."""
    tdir = trash_dir(dirs)
    if not tdir.is_dir():
        return None
    info: dict[str, Any] = {"dir": str(tdir), "purged": [], "errors": [], "kept": 0}
    period = pol.trash.seconds if pol.trash is not None else None  # trash off or "forever": nothing purged
    found = entries(tdir)
    due = [e for e in found if period is not None and e.removed_at < now - period and e.problem is None]
    info["kept"] = len(found) - len(due)
    if not due:
        return info
    tfd = os.open(str(tdir), DIR_FLAGS)
    try:
        dev = os.fstat(tfd).st_dev
        for e in due:
            rec = {
                "action": "purge-trash",
                "session_id": e.session_id,
                "root": e.root,
                "project": e.project,
                "paths": sorted(e.pieces.values()),
                "bytes": e.bytes,
                "trash": str(e.path),
                "reason": f"in the trash longer than {pol.trash.source if pol.trash else 'trash is off'}",
            }
            if dry_run:
                info["purged"].append({**rec, "result": "dry-run"})
                continue
            if audit:
                audit.append([{**rec, "phase": "intent", "result": "pending"}])
            try:
                rmtree_at(tfd, e.name, dev)
                result, err = "ok", None
            except (OSError, Unsafe) as x:
                result, err = "failed", str(x)
                info["errors"].append(f"{e.path}: {x}")
            if audit:
                audit.append([{**rec, "phase": "result", "result": result, **({"error": err} if err else {})}])
            info["purged"].append({**rec, "result": result})
    finally:
        os.close(tfd)
    return info


# ---- restore ----------------------------------------------------------------------------------------


@dataclass
class Restored:
    entry: Entry
    root: str
    restored: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def find(tdir: Path, session_id: str, project: str | None = None) -> Entry | None:
    """The newest trash entry of a session (of ``project`` when given: its path or encoded name)."""
    got = [
        e
        for e in entries(tdir)
        if same_id(e.session_id, session_id) and (project is None or project in (e.project, e.project_path))
    ]
    return got[-1] if got else None


def _touch(fd: int, name: str, dev: int, when: float) -> None:
    for rel, st in walk_at(fd, name, dev):
        if not stat.S_ISLNK(st.st_mode):
            with contextlib.suppress(OSError):
                os.utime(rel, (when, when), dir_fd=fd, follow_symlinks=False)


def restore(e: Entry, target: Path, *, audit: Any = None, now: float | None = None) -> Restored:
    """Put a trashed session back into ``target`` (the resolved Claude dir): one rename per piece, never
    replacing anything; every piece gets the restore time (Claude Code's own cleanup goes by file times).
    A piece in the way stays in the trash (``refused``); the rest is restored; run again once it is moved."""
    if e.problem:
        raise JanitorError(f"trash entry {e.path}: {e.problem}", ExitStatus.ACTIONS_FAILED)
    when = time.time() if now is None else now
    out = Restored(e, str(target))
    root = Root(target)
    rec = {
        "action": "restore-trash",
        "session_id": e.session_id,
        "root": str(target),
        "project": e.project,
        "paths": sorted(e.pieces.values()),
        "bytes": e.bytes,
        "trash": str(e.path),
        "reason": "janitor restore / undo",
    }
    if audit:
        audit.append([{**rec, "phase": "intent", "result": "pending"}])
    try:
        efd = os.open(str(e.path), DIR_FLAGS)
        try:
            if os.fstat(efd).st_dev != root.dev:
                raise JanitorError(
                    f"the trash {e.path.parent} is on another filesystem than {target}: cannot "
                    "restore by a rename; nothing restored",
                    ExitStatus.ACTIONS_FAILED,
                )
            for staged, rel in sorted(e.pieces.items(), key=lambda kv: kv[1].endswith(".jsonl")):
                pfd, name = root.open_parent(rel, create=True)
                try:
                    rename_noreplace(efd, staged, pfd, name)
                except OSError as x:
                    if x.errno in (errno.EEXIST, errno.ENOTEMPTY):
                        out.refused.append(f"{rel}: something is in the way; not overwritten, left in the trash")
                        continue
                    raise
                else:
                    _touch(pfd, name, root.dev, when)
                    out.restored.append(rel)
                finally:
                    os.close(pfd)
            if not out.refused:
                for extra in (META, ORIGIN):
                    with contextlib.suppress(OSError):
                        os.unlink(extra, dir_fd=efd)
        finally:
            os.close(efd)
        if not out.refused:
            with contextlib.suppress(OSError):
                os.rmdir(e.path)
    finally:
        root.close()
        if audit:
            audit.append(
                [
                    {
                        **rec,
                        "phase": "result",
                        "result": "ok" if not out.refused else "failed",
                        "restored": out.restored,
                        **({"error": "; ".join(out.refused)} if out.refused else {}),
                    }
                ]
            )
    return out


# ---- the last sweep, for undo ---------------------------------------------------------------------


def record_last_sweep(dirs: JanitorDirs, now: float, outcomes: list[Any]) -> None:
    """What a sweep removed, where each session went (trash, archive, or deleted for good): for undo.
    Written only by a sweep that removed something (an idle sweep leaves the previous one's record).
    Made a session at a time, one line each (~200 B): as a list and its indented JSON it peaked at 116 MB
    of Python objects for 75k removed sessions; now the sweep's memory does not grow with it."""
    if not any(o.result == "ok" for o in outcomes):
        return

    def chunks() -> Iterator[str]:
        yield f'{{"at": {json.dumps(now)}, "removed": ['
        sep = "\n"
        for o in outcomes:
            if o.result != "ok":
                continue
            s = o.decision.session
            rec = {
                "session_id": s.session_id,
                "root": s.root,
                "project": s.project,
                "project_path": s.project_path,
                "trash": getattr(o, "trash", None),
                "archive": o.archive,
            }
            yield sep + json.dumps(rec)
            sep = ",\n"
        yield "\n]}\n"

    write_atomic(dirs.state / LAST_SWEEP, chunks())


def last_sweep(dirs: JanitorDirs) -> dict[str, Any] | None:
    from claude_janitor.fs.saferead import read_input

    raw = read_input(dirs.state / LAST_SWEEP, what="last sweep record", limit=LAST_SWEEP_MAX, follow=False)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise JanitorError(f"{dirs.state / LAST_SWEEP} is unreadable; nothing undone") from None
    if not isinstance(data, dict) or not isinstance(data.get("removed"), list):
        raise JanitorError(f"{dirs.state / LAST_SWEEP} is not a sweep record; nothing undone")
    return data
