"""Claude Code's on-disk layout: discover sessions (transcript + every piece keyed by its id).

Read-only. Never follows symlinks, never descends into another filesystem.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from claude_janitor.cache.ids import canonical_id
from claude_janitor.cache.titles import (
    CUSTOM_TITLE_MAX,
    TITLE_HEAD,
    TailTitles,
    choose,
    custom_title,
    read_head,
    replied,
    tail_scan,
)
from claude_janitor.fs.safefs import iter_tree
from claude_janitor.model import Piece, Session

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
TODO_RE = re.compile(r"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
                     r"(?:-agent-[^/]*)?\.json$")
DEBUG_RE = re.compile(r"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\.txt$")
DIR_STORES = ("file-history", "session-env", "tasks")
NEVER_TOUCHED = {"memory"}  # projects/<enc>/memory/: Claude Code's auto-memory

# ---- the layout: which paths are a session's pieces (the one place that says so) -------------------
#
# In projects/<enc>/: <id>.jsonl (the transcript), <id>/ (everything inside it: subagents/, tool-results/,
# workflows/, remote-agents/, mcp-tasks/, custom-title.json, archived.json, resume-head.jsonl, …), and the
# files Claude Code keeps beside a transcript and deletes with it (CLAUDE-CODE-CLEANUP.md): <id> + one of
# SIBLING_SUFFIXES, each also as a ".tmp.<8 hex>" copy, and <id>.jsonl.compact.tmp.* / <id>.jsonl.superseded-*
# (a compaction's or a rewrite's leftovers). Keyed by id elsewhere: DIR_STORES/<id>/,
# todos/<id>[-agent-*].json, debug/<id>.txt.
SIBLING_SUFFIXES = (".ccr-tip.json", ".precompact.json", ".desktop-released.json", ".dir-sync.json",
                    ".dir-sync-empty.json", ".cloud-worktrees.json", ".cast")
_TMP_COPY_RE = re.compile(r"\.tmp\.[0-9a-f]{8}$")
_TRANSCRIPT_LEFTOVER_RE = re.compile(r"^(.+)\.jsonl\.(?:compact\.tmp\..+|superseded-.+)$", re.S)
SIBLING = "session-file"  # the store of a file beside the transcript


def sibling_id(name: str) -> str | None:
    """The session id a file beside transcripts in a project dir belongs to (not the transcript itself)."""
    m = _TRANSCRIPT_LEFTOVER_RE.match(name)
    if m:
        return m.group(1)
    base = _TMP_COPY_RE.sub("", name)
    for suf in SIBLING_SUFFIXES:
        if base.endswith(suf) and len(base) > len(suf):
            return base[:-len(suf)]
    return None


def piece_owner(rel: str, is_dir: bool) -> tuple[str, str, str] | None:
    """(project, session id, store) of a path (relative to the Claude config dir) that can be a piece of a
    session; project is "" for the per-session stores outside projects/. None: not a place a session's
    piece lives. Archive restores write only where this says yes."""
    parts = rel.split("/")
    if len(parts) == 3 and parts[0] == "projects":
        project, name = parts[1], parts[2]
        if is_dir:
            return None if name in NEVER_TOUCHED else (project, name, "session-dir")
        if name.endswith(".jsonl") and len(name) > 6:
            return project, name[:-6], "transcript"
        sid = sibling_id(name)
        return None if sid is None else (project, sid, SIBLING)
    if len(parts) != 2:
        return None
    store, name = parts
    if store in DIR_STORES:
        return ("", name, store) if is_dir else None
    if store == "todos" and not is_dir and (m := TODO_RE.match(name)):
        return "", m.group(1), store
    if store == "debug" and not is_dir and (m := DEBUG_RE.match(name)):
        return "", m.group(1), store
    return None

TAIL_CHUNK = 16 * 1024  # first read; grows ×4 up to TAIL_MAX while no timestamped record is found
TAIL_MAX = 1024 * 1024  # never read more than this from a transcript's end, whatever its size
HEAD_MAX = 64 * 1024


@dataclass
class ScanResult:
    sessions: list[Session] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # paths left alone, relative to their root
    files_seen: int = 0


# ---- reading a transcript's tail ---------------------------------------------------------------

TS_MIN = 0.0  # 1970: no Claude Code record is older
TS_MAX = 253402300799.0  # 9999-12-31T23:59:59Z: the last instant a datetime (and every report) can show


def parse_timestamp(value: object) -> float | None:
    """A record's ``timestamp`` as Unix seconds, or None when it is not a usable time.

    Transcript content is untrusted: huge or non-finite numbers, dates out of range and garbage strings
    are all None (the line is skipped like one without a timestamp), never an exception. Numbers above
    1e11 are taken as milliseconds."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            v = float(value)
        except OverflowError:  # an int with hundreds of digits
            return None
        if v > 1e11:
            v /= 1000.0
    elif isinstance(value, str) and value and len(value) <= 64:
        try:
            dt = datetime.fromisoformat(value)
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
            v = dt.timestamp()
        except (ValueError, OverflowError, OSError):
            return None
    else:
        return None
    if not math.isfinite(v) or not TS_MIN <= v <= TS_MAX:
        return None
    return v


def _records(lines: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """JSON objects from ``lines``, parsed lazily (callers stop early), skipping anything malformed."""
    for line in lines:
        line = line.strip()
        if not line or line[:1] != b"{":
            continue
        try:
            rec = json.loads(line)
        except (ValueError, UnicodeDecodeError, RecursionError, MemoryError):
            continue
        if isinstance(rec, dict):
            yield rec


def usable_cwd(value: object) -> bool:
    """A record's ``cwd`` that can name a project: an absolute path without NUL, of a sane length (it is
    untrusted: the project's own settings are read from under it, and it is shown in reports)."""
    if not (isinstance(value, str) and value.startswith("/") and "\0" not in value and len(value) <= 4096):
        return False
    try:
        value.encode("utf-8")  # a lone surrogate (JSON "\\ud800") is not a path
    except UnicodeEncodeError:
        return False
    return True


@dataclass
class TailInfo:
    last_time: float | None = None
    cwd: str | None = None
    bytes_read: int = 0
    titles: TailTitles | None = None  # Claude Code's titles and the human prompts among the records read
    whole: bytes | None = None  # the whole transcript, when the tail read covered it (no head read needed)


def _lines_newest_first(buf: bytes, *, cut_first: bool) -> Iterator[bytes]:
    """The lines of ``buf`` from the last to the first, sliced lazily (a 64 KiB tail is not split whole).
    With ``cut_first`` the first line is incomplete (the read started mid-line) and is skipped."""
    end = len(buf)
    while end > 0:
        i = buf.rfind(b"\n", 0, end)
        if i < 0:
            if not cut_first:
                yield buf[:end]
            return
        yield buf[i + 1:end]
        end = i


def read_tail(fd: int, size: int) -> TailInfo:
    """Newest record timestamp (and cwd) from the end of a transcript: reads at most TAIL_MAX bytes.

    Lines without timestamps, malformed JSON and invalid UTF-8 are skipped. Cost does not depend on
    the transcript's size.
    """
    info = TailInfo()
    want = min(TAIL_CHUNK, size)
    while True:
        start = size - want
        buf = os.pread(fd, want, start)
        info.bytes_read = len(buf)
        for rec in _records(_lines_newest_first(buf, cut_first=start > 0)):
            if info.last_time is None:
                info.last_time = parse_timestamp(rec.get("timestamp"))
            if info.cwd is None and usable_cwd(rec.get("cwd")):
                info.cwd = rec["cwd"]
            if info.last_time is not None and info.cwd is not None:
                break
        if info.last_time is not None or start == 0 or want >= TAIL_MAX:
            break
        want = min(want * 4, TAIL_MAX, size)
    # the same buffer once more, for titles and prompts: only lines that can hold one are parsed
    info.titles = tail_scan(_lines_newest_first(buf, cut_first=start > 0), _records)
    if start == 0:
        info.whole = buf
    if info.cwd is None and size > want:
        head = os.pread(fd, min(HEAD_MAX, size), 0)
        for rec in _records(head.split(b"\n")[:-1]):
            if usable_cwd(rec.get("cwd")):
                info.cwd = rec["cwd"]
                break
    return info


# ---- walking ---------------------------------------------------------------------------------------

def _dir_usage(path: str, dev: int) -> tuple[int, float, int, str | None]:
    """(bytes of regular files, newest mtime, entries, problem) under a dir (see safefs.iter_tree).

    ``problem`` says what could not be read: such a session is in doubt, and kept."""
    problems: list[str] = []
    total, newest, count = usage_of(iter_tree(path, dev, problems))
    return total, newest, count, problems[0] if problems else None


def usage_of(stats: Iterable[os.stat_result]) -> tuple[int, float, int]:
    """(bytes of regular files, newest mtime, entries) of these lstats: what a dir piece records of what is
    in it, and what staging.matches_scan compares a staged dir against (one definition for both)."""
    total = 0
    newest = 0.0
    count = 0
    for st in stats:
        count += 1
        if st.st_mtime > newest:
            newest = st.st_mtime
        if stat.S_ISREG(st.st_mode):
            total += st.st_size
    return total, newest, count


def _piece(root: str, rel: str, store: str, st: os.stat_result) -> tuple[Piece, int, str | None]:
    if stat.S_ISDIR(st.st_mode):
        b, newest, n, problem = _dir_usage(os.path.join(root, rel), st.st_dev)
        return Piece(rel, store, True, b, max(newest, st.st_mtime), st.st_ino, st.st_dev, st.st_mtime_ns,
                     st.st_size), n + 1, problem
    return Piece(rel, store, False, st.st_size, st.st_mtime, st.st_ino, st.st_dev, st.st_mtime_ns,
                 st.st_size), 1, None


def _entries(path: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return list(it)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _lstat(e: os.DirEntry[str]) -> os.stat_result | None:
    try:
        return e.stat(follow_symlinks=False)
    except OSError:
        return None


def scan_root(root: Path, *, progress: Callable[[int], None] | None = None,
              read_transcripts: bool = True) -> ScanResult:
    """Discover every session under one Claude config dir."""
    res = ScanResult()
    r = str(root)
    root_dev = os.lstat(r).st_dev
    by_id: dict[str, Session] = {}
    where: dict[str, list[Session]] = {}  # every project session of an id (the same id in two projects)

    projects = os.path.join(r, "projects")
    for pe in sorted(_entries(projects) if store_dir_ok(r, "projects", root_dev, res.unknown) else [],
                     key=lambda e: e.name):
        prel = f"projects/{pe.name}"
        pst = _lstat(pe)
        if pst is None:
            continue
        if not stat.S_ISDIR(pst.st_mode):
            res.unknown.append(prel + (" (symlink, not followed)" if stat.S_ISLNK(pst.st_mode) else ""))
            continue
        if pst.st_dev != root_dev:
            res.unknown.append(prel + " (another filesystem, not entered)")
            continue
        entries = _entries(pe.path)
        dirs: dict[str, tuple[os.DirEntry[str], os.stat_result]] = {}
        found: dict[str, Session] = {}
        siblings: list[tuple[str, str, os.stat_result]] = []
        sid: str | None
        s: Session | None
        for e in entries:
            st = _lstat(e)
            if st is None:
                continue
            res.files_seen += 1
            if e.name.endswith(".jsonl") and stat.S_ISREG(st.st_mode) and len(e.name) > 6:
                sid = e.name[:-6]
                new = Session(session_id=sid, root=r, project=pe.name)
                piece, _, _ = _piece(r, f"{prel}/{e.name}", "transcript", st)
                new.pieces.append(piece)
                if read_transcripts:
                    _read_transcript(new, e.path, st)
                found[sid] = new
            elif stat.S_ISDIR(st.st_mode) and e.name not in NEVER_TOUCHED:
                dirs[e.name] = (e, st)
            elif e.name in NEVER_TOUCHED:
                continue
            elif stat.S_ISREG(st.st_mode) and (sid := sibling_id(e.name)) is not None:
                siblings.append((sid, e.name, st))
            else:
                kind = "symlink, not followed" if stat.S_ISLNK(st.st_mode) else "not a session file"
                res.unknown.append(f"{prel}/{e.name} ({kind})")
        for sid, name, st in siblings:
            s = found.get(sid)
            if s is None and UUID_RE.match(sid):
                s = found[sid] = Session(session_id=sid, root=r, project=pe.name,
                                         notes=["no transcript; files beside it only"])
            if s is None:
                res.unknown.append(f"{prel}/{name} (not a session file)")
                continue
            s.pieces.append(_piece(r, f"{prel}/{name}", SIBLING, st)[0])
            if name == sid + MARKER:
                s.desktop_marker = read_marker(os.path.join(pe.path, name), st)
        for name, (_entry, st) in sorted(dirs.items()):
            if st.st_dev != root_dev:
                res.unknown.append(f"{prel}/{name} (another filesystem, not entered)")
                continue
            s = found.get(name)
            if s is None and UUID_RE.match(name):
                s = found[name] = Session(session_id=name, root=r, project=pe.name,
                                          notes=["no transcript; per-session folder only"])
            elif s is not None and s.transcript is None:
                s.notes = ["no transcript; per-session folder and files beside it only"]
            if s is None:
                res.unknown.append(f"{prel}/{name}/ (not a session folder)")
                continue
            piece, n, problem = _piece(r, f"{prel}/{name}", "session-dir", st)
            res.files_seen += n - 1
            s.pieces.append(piece)
            if problem:
                s.unreadable = s.unreadable or f"{prel}/{name}: {problem}"
        for sid, s in found.items():
            if read_transcripts:
                read_custom_title(s)
            if any(p.store in ("transcript", "session-dir") for p in s.pieces):  # as rescan checks it
                where.setdefault(sid, []).append(s)
                if not any(p.store in ("transcript", "session-dir") for p in by_id.get(sid, s).pieces):
                    by_id[sid] = s  # side stores go with a real copy, not with leftovers beside a transcript
            by_id.setdefault(sid, s)
            res.sessions.append(s)
        if progress:
            progress(len(entries))

    orphans: dict[str, Session] = {}
    shared: dict[str, Session] = {}
    for sid, copies in where.items():
        if len(copies) > 1:
            names = ", ".join(f"projects/{c.project}" for c in copies)
            for c in copies:
                c.notes.append(f"the same session id is also in {names}: its side stores (file-history, "
                               "session-env, tasks, todos, debug) cannot be told apart and are kept apart")
            shared[sid] = Session(session_id=sid, root=r, project="", ambiguous=(
                f"side stores of session id {sid}, which is in more than one project ({names}): they may belong "
                "to a copy that is kept"), notes=[f"ambiguous: the same id is in {names}"])

    def attach(sid: str, rel: str, store: str, st: os.stat_result) -> None:
        s = shared.get(sid) or by_id.get(sid) or orphans.get(sid)
        if s is None:
            s = orphans[sid] = Session(session_id=sid, root=r, project="",
                                       notes=["side files only: no transcript found"])
        piece, n, problem = _piece(r, rel, store, st)
        res.files_seen += n
        s.pieces.append(piece)
        if problem:
            s.unreadable = s.unreadable or f"{rel}: {problem}"

    for store in DIR_STORES:
        if not store_dir_ok(r, store, root_dev, res.unknown):
            continue
        for e in _entries(os.path.join(r, store)):
            st = _lstat(e)
            if st is None:
                continue
            if stat.S_ISDIR(st.st_mode) and UUID_RE.match(e.name) and st.st_dev == root_dev:
                attach(e.name, f"{store}/{e.name}", store, st)
            else:
                res.unknown.append(f"{store}/{e.name}")
    for store, rx in (("todos", TODO_RE), ("debug", DEBUG_RE)):
        if not store_dir_ok(r, store, root_dev, res.unknown):
            continue
        for e in _entries(os.path.join(r, store)):
            st = _lstat(e)
            if st is None:
                continue
            m = rx.match(e.name)
            if m and stat.S_ISREG(st.st_mode):
                attach(m.group(1), f"{store}/{e.name}", store, st)
            elif not (store == "debug" and e.name == "latest"):
                res.unknown.append(f"{store}/{e.name}")
    res.sessions.extend(orphans.values())
    res.sessions.extend(s for s in shared.values() if s.pieces)
    return res


def store_dir_ok(root: str, name: str, root_dev: int, unknown: list[str] | None = None) -> bool:
    """Is ``root/name`` (projects/ or a per-session store) a real dir on the root's filesystem? A symlink
    is never followed, by the scan or by the sweep (which would refuse it anyway): what it points to is
    outside the cache. Anything else there is listed under "unknown" with the reason."""
    try:
        st = os.lstat(os.path.join(root, name))
    except OSError:
        return False
    why = None
    if stat.S_ISLNK(st.st_mode):
        why = "symlink, not followed: nothing through it is swept"
    elif not stat.S_ISDIR(st.st_mode):
        why = "not a directory"
    elif st.st_dev != root_dev:
        why = "another filesystem, not entered"
    if why and unknown is not None:
        unknown.append(f"{name} ({why})")
    return why is None


def rescan(root: str, wanted: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Session | None]:
    """Re-read the given (project, session_id) sessions of one Claude config dir from disk, each with every
    piece a full scan (scan_root) would give it; None for a session that is gone. The daemon's wake-ups use
    it to read only the sessions that are due.

    A session with ``project == ""`` is an orphan (side files only); it is reported gone once a transcript
    for its id exists in any project (the full scan then attaches the side files to that session)."""
    out: dict[tuple[str, str], Session | None] = {}
    try:
        root_dev = os.lstat(root).st_dev
    except OSError:
        return dict.fromkeys(wanted, None)
    todos: dict[str, list[str]] | None = None
    wanted = list(wanted)
    sids = {sid for _, sid in wanted}

    def lst(rel: str) -> os.stat_result | None:
        try:
            return os.lstat(os.path.join(root, rel))
        except OSError:
            return None

    def piece(s: Session, rel: str, store: str, st: os.stat_result) -> Piece:
        got, _, problem = _piece(root, rel, store, st)
        if problem:
            s.unreadable = s.unreadable or f"{rel}: {problem}"
        return got

    projects: list[str] | None = None
    siblings: dict[str, dict[str, list[str]]] = {}  # project → session id → names beside its transcript
    ok = {name: store_dir_ok(root, name, root_dev) for name in ("projects", *DIR_STORES, "todos", "debug")}

    def project_names() -> list[str]:
        nonlocal projects
        if projects is None:
            projects = [e.name for e in _entries(os.path.join(root, "projects"))] if ok["projects"] else []
        return projects

    for project, sid in wanted:
        s = Session(session_id=sid, root=root, project=project)
        if project:
            pst = lst(f"projects/{project}") if ok["projects"] else None
            if pst is None or not stat.S_ISDIR(pst.st_mode) or pst.st_dev != root_dev:
                out[(project, sid)] = None
                continue
            rel = f"projects/{project}/{sid}.jsonl"
            st = lst(rel)
            if st is not None and stat.S_ISREG(st.st_mode):
                s.pieces.append(piece(s, rel, "transcript", st))
                _read_transcript(s, os.path.join(root, rel), st)
            rel = f"projects/{project}/{sid}"
            st = lst(rel)
            if (st is not None and stat.S_ISDIR(st.st_mode) and st.st_dev == root_dev
                    and sid not in NEVER_TOUCHED and (s.pieces or UUID_RE.match(sid))):
                if not s.pieces:
                    s.notes.append("no transcript; per-session folder only")
                s.pieces.append(piece(s, rel, "session-dir", st))
                read_custom_title(s)
            if s.pieces or UUID_RE.match(sid):
                if project not in siblings:
                    siblings[project] = {}
                    for name in (e.name for e in _entries(os.path.join(root, "projects", project))):
                        if not name.endswith(".jsonl") and (o := sibling_id(name)) in sids:
                            siblings[project].setdefault(o, []).append(name)
                for name in sorted(siblings[project].get(sid, [])):
                    st = lst(f"projects/{project}/{name}")
                    if st is not None and stat.S_ISREG(st.st_mode):
                        if not s.pieces:
                            s.notes.append("no transcript; files beside it only")
                        s.pieces.append(piece(s, f"projects/{project}/{name}", SIBLING, st))
                        if name == sid + MARKER:
                            s.desktop_marker = read_marker(os.path.join(root, "projects", project, name), st)
            if not s.pieces:
                out[(project, sid)] = None
                continue
            others = [p for p in project_names() if p != project and (
                os.path.lexists(os.path.join(root, "projects", p, f"{sid}.jsonl"))
                or (UUID_RE.match(sid) and os.path.isdir(os.path.join(root, "projects", p, sid))))]
            if others:
                # The same id in another project: the side stores cannot be told apart (scan_root keeps
                # them in a session of their own); this session is its project pieces only.
                s.notes.append("the same session id is also in " + ", ".join(f"projects/{p}" for p in others)
                               + ": its side stores are kept apart")
                out[(project, sid)] = s
                continue
        else:
            if any(os.path.lexists(os.path.join(root, "projects", p, f"{sid}.jsonl")) for p in project_names()):
                out[(project, sid)] = None
                continue
            s.notes.append("side files only: no transcript found")
        if UUID_RE.match(sid):
            for store in DIR_STORES:
                if not ok[store]:
                    continue
                st = lst(f"{store}/{sid}")
                if st is not None and stat.S_ISDIR(st.st_mode) and st.st_dev == root_dev:
                    s.pieces.append(piece(s, f"{store}/{sid}", store, st))
        if todos is None:
            todos = {}
            for name in (e.name for e in (_entries(os.path.join(root, "todos")) if ok["todos"] else [])):
                if name[:36] in sids and (m := TODO_RE.match(name)):  # only the wanted ids are matched
                    todos.setdefault(m.group(1), []).append(name)
        for name in todos.get(sid, []):
            st = lst(f"todos/{name}")
            if st is not None and stat.S_ISREG(st.st_mode):
                s.pieces.append(piece(s, f"todos/{name}", "todos", st))
        st = lst(f"debug/{sid}.txt") if ok["debug"] else None
        if st is not None and stat.S_ISREG(st.st_mode) and DEBUG_RE.match(f"{sid}.txt"):
            s.pieces.append(piece(s, f"debug/{sid}.txt", "debug", st))
        out[(project, sid)] = s if s.pieces else None
    return out


DESKTOP_ENTRYPOINTS = frozenset({"claude-desktop", "claude-desktop-3p", "local-agent"})
ENTRYPOINT_SPAN = 64 * 1024  # Claude Code looks for the entrypoint in a transcript's first and last 64 KiB
_ENTRYPOINT_RE = re.compile(rb'"entrypoint"\s*:\s*"([A-Za-z0-9_-]{1,64})"')
MARKER = ".desktop-released.json"
MARKER_MAX = 4096  # Claude Code reads at most this much of a release marker


def desktop_entrypoint(fd: int, size: int) -> str | None:
    """The desktop entrypoint (claude-desktop, claude-desktop-3p, local-agent) a transcript names in its first
    record with one within its first 64 KiB, or its last within the last 64 KiB — what Claude Code's own
    cleanup looks at to exempt desktop sessions. Reads 8 KiB at each end, up to 64 KiB while none is found."""
    def norm(v: bytes) -> str | None:
        name = v.decode("ascii").replace("local_agent", "local-agent")
        return name if name in DESKTOP_ENTRYPOINTS else None

    want = min(8192, size)
    while True:
        m = _ENTRYPOINT_RE.search(os.pread(fd, want, 0))
        if m or want >= min(ENTRYPOINT_SPAN, size):
            break
        want = min(ENTRYPOINT_SPAN, size)
    head = norm(m.group(1)) if m else None
    if head or size <= want:
        return head
    want = min(8192, size)
    while True:
        found = list(_ENTRYPOINT_RE.finditer(os.pread(fd, want, size - want)))
        if found or want >= min(ENTRYPOINT_SPAN, size):
            break
        want = min(ENTRYPOINT_SPAN, size)
    return norm(found[-1].group(1)) if found else None


def read_marker(path: str, st: os.stat_result) -> tuple[str | None, float]:
    """(reason, mtime) of a <id>.desktop-released.json: "archive", "delete", or None (unreadable, other)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None, st.st_mtime
    try:
        data = os.read(fd, MARKER_MAX) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
    except OSError:
        data = b""
    finally:
        os.close(fd)
    try:
        rec = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None, st.st_mtime
    reason = rec.get("reason") if isinstance(rec, dict) else None
    return (reason if reason in ("archive", "delete") else None), st.st_mtime


def _read_transcript(s: Session, path: str, st: os.stat_result) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        s.notes.append("transcript vanished during the scan")
        return
    except OSError as e:
        s.unreadable = f"cannot open transcript: {e.strerror}"
        return
    try:
        fst = os.fstat(fd)
        if not stat.S_ISREG(fst.st_mode) or fst.st_ino != st.st_ino:
            s.unreadable = "transcript changed while being read"
            return
        info = read_tail(fd, fst.st_size)
        s.desktop_entrypoint = desktop_entrypoint(fd, fst.st_size) if fst.st_size else None
        head = info.whole[:TITLE_HEAD] if info.whole is not None else os.pread(fd, min(TITLE_HEAD, fst.st_size), 0)
    except OSError as e:
        s.unreadable = f"cannot read transcript: {e.strerror}"
        return
    finally:
        os.close(fd)
    s.last_record_time = info.last_time
    s.project_path = info.cwd
    _describe(s, info, head)


def _describe(s: Session, info: TailInfo, head: bytes) -> None:
    """Title, entrypoint and replied from the tail already read and the head (titles.py)."""
    complete = info.whole is not None and len(info.whole) <= TITLE_HEAD
    lines = head.split(b"\n")
    if not complete and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut: read_head looks at it on its own
    h = read_head(head, _records(lines), complete)
    s.entrypoint = h.entrypoint or (info.titles.last_entrypoint if info.titles else None)
    s.title, s.title_source = choose(None, info.titles, h)
    s.replied = replied(h, info.titles)


def read_custom_title(s: Session) -> None:
    """Claude Code's own title file, ``projects/<p>/<id>/custom-title.json``, over any other title (one
    small bounded read, never through a symlink; a bad file is no title)."""
    from claude_janitor.fs.saferead import InputError, read_input

    if not any(p.store == "session-dir" for p in s.pieces):
        return
    path = os.path.join(s.root, "projects", s.project, s.session_id, "custom-title.json")
    try:
        raw = read_input(path, what="title file", limit=CUSTOM_TITLE_MAX, follow=False)
    except (InputError, OSError):
        return
    t = custom_title(raw)
    if t is not None:
        title, source = choose(t, None, None)
        if title:
            s.title, s.title_source = title, source


def scan(roots: list[Path], *, progress: Callable[[int], None] | None = None) -> ScanResult:
    out = ScanResult()
    for root in roots:
        res = scan_root(root, progress=progress)
        out.sessions += res.sessions
        out.unknown += [f"{root}/{u}" for u in res.unknown]
        out.files_seen += res.files_seen
    return out


def apply_pins(sessions: list[Session], pins: set[str]) -> None:
    """Mark pinned sessions; ids compare in canonical (lower) case, whatever case the file name has."""
    wanted = {canonical_id(p) for p in pins}
    for s in sessions:
        if canonical_id(s.session_id) in wanted:
            s.pinned = True


def load_pins(path: Path) -> set[str]:
    """The pinned ids (canonical case). Read through saferead: pins.json is the janitor's own file in its
    private state dir, so a symlink there is refused rather than followed."""
    from claude_janitor.fs.saferead import STATE_MAX, read_input
    from claude_janitor.model import ConfigError

    raw = read_input(path, what="pins file", limit=STATE_MAX, follow=False)
    if raw is None:
        return set()
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise ConfigError(f"pins file {path} is unreadable: {str(e)[:200]}; fix or remove it") from None
    if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
        raise ConfigError(f"pins file {path} must be a JSON list of session ids")
    return {canonical_id(x) for x in data}


# ---- stores beyond sessions ---------------------------------------------------------------------------
# What Claude Code 2.1.328's own cleanup ages outside sessions (../shared/CLAUDE-CODE-CLEANUP.md), as data:
# janitor.stores scans, decides and removes by this table. An entry a session claims (a piece in the
# session scan above) is never a store entry, so session-keyed names (debug/<id>.txt, todos/<id>-agent-…,
# file-history/<id>/ …) stay with their session and only the rest of those folders is aged here.

ISO_NAME_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2})[-:](\d{2})[-:](\d{2})(?:[-.](\d{3}))?Z")


@dataclass(frozen=True, slots=True)
class Selector:
    """Entries of one store: ``dirs`` (a regex per path component below the place; ``{uid}`` is this user's
    uid) hold the entries whose name fully matches ``name`` and whose type is ``kind``."""

    dirs: tuple[str, ...]
    name: str
    kind: str = "file"  # file | dir | any (a regular file or a dir) | empty-dir (removed by rmdir only)
    age: str = "mtime"  # mtime (a dir: the newest mtime in it) | name (time in the name) | none (no age rule)
    cap_days: int | None = None  # Claude Code's own window is min(cleanupPeriodDays, cap)
    recursive: bool = False  # regular files at any depth below ``dirs`` (telemetry/**)
    exempt: frozenset[str] = frozenset()
    own: bool = False  # the entry (and the dirs above it) must belong to this user (shared tmp dirs)


@dataclass(frozen=True, slots=True)
class StoreFamily:
    key: str  # the name in the config's [stores] table
    place: str  # config (the Claude config dir) | cache (~/.cache or $XDG_CACHE_HOME) | tmp
    what: str
    selectors: tuple[Selector, ...]

    @property
    def no_age(self) -> bool:
        return all(s.age == "none" for s in self.selectors)


_TMP_NAMES = r"cc-transcript-.*\.txt|auto-mode-builtins-.*\.md|cache-break-.*"
STORE_FAMILIES: tuple[StoreFamily, ...] = (
    StoreFamily("image-cache", "config", "pasted images (Claude Code wipes them at every start)",
                (Selector(("image-cache",), r".+", "any", age="none"),)),
    StoreFamily("paste-cache", "config", "pasted text over 1 KiB (named in history.jsonl)",
                (Selector(("paste-cache",), r".+\.txt"),)),
    StoreFamily("shell-snapshots", "config", "shell environment snapshots",
                (Selector(("shell-snapshots",), r".+\.sh"),)),
    StoreFamily("plans", "config", "plan-mode plans", (Selector(("plans",), r".+\.md"),)),
    StoreFamily("debug", "config", "debug logs of no session (debug/latest is kept)",
                (Selector(("debug",), r".+", exempt=frozenset({"latest"})),)),
    StoreFamily("todos", "config", "todo lists of no session", (Selector(("todos",), r".+", "any"),)),
    StoreFamily("session-leftovers", "config",
                "file-history/, session-env/, tasks/, uploads/, shares/ folders of no session",
                tuple(Selector((d,), r".+", "dir") for d in ("file-history", "session-env", "tasks", "uploads",
                                                             "shares"))),
    StoreFamily("backups", "config", "backups of Claude Code's config", (Selector(("backups",), r".+"),)),
    StoreFamily("statsig", "config", "feature-flag cache", (Selector(("statsig",), r".+", "any"),)),
    StoreFamily("logs", "config", "logs", (Selector(("logs",), r".+", "any"),)),
    StoreFamily("access-audit", "config", "access audit records", (Selector(("access-audit",), r".+", "any"),)),
    StoreFamily("telemetry", "config", "telemetry queue, traces, startup timings",
                (Selector(("telemetry",), r".+\.json", recursive=True), Selector(("traces",), r".+\.json"),
                 Selector(("startup-perf",), r".+\.(?:txt|json)"))),
    StoreFamily("usage-data", "config", "usage insights (facets, session meta, reports)",
                (Selector(("usage-data", "facets|session-meta"), r".+\.json"),
                 Selector(("usage-data",), r".+\.html"))),
    StoreFamily("feedback", "config", "feedback bundles and drafts, shared zips",
                (Selector(("feedback-bundles",), r".+\.zip"), Selector(("shares",), r".+\.zip"),
                 Selector(("feedback", "drafts"), r".+\.json", cap_days=30))),
    StoreFamily("dump-prompts", "config", "dumped prompts", (Selector(("dump-prompts",), r".+\.jsonl",
                                                                     cap_days=3),)),
    StoreFamily("file-transfers", "config", "file transfers", (Selector(("file-transfers",), r".+", "any",
                                                                        cap_days=1),)),
    StoreFamily("teams", "config", "team inboxes and deleted teams",
                (Selector(("teams", r"[^/]+", "inboxes"), r".+\.json"),
                 Selector(("teams",), r".+\.deleted-[0-9a-fA-F-]{36}", "dir", age="none"))),
    StoreFamily("fork-seeds", "config", "remote-control fork seeds",
                (Selector(("remote-control", "fork-seeds"), r".+\.json"),)),
    StoreFamily("caches", "config", "MCP, model and discovery caches",
                (Selector((), r"mcp-needs-auth-cache\.json"),
                 Selector(("cache",), r"team-discovery\.json|model-access\.json|provider-probe-verdicts\.json"),
                 Selector(("cache", "model-catalog"), r".+\.json",
                          exempt=frozenset({"masked-ids.json", "published-floor.json"})),
                 Selector(("state",), r"device-unbound-creates\.json|mcp-discover-verdicts\.json"
                                      r"|device-mcp-consent-not-now\.json"),
                 Selector(("mcp-discovery-cache",), r".+\.json"))),
    StoreFamily("project-files", "config", "empty project folders; bridge-pointer.json in a project folder",
                (Selector(("projects",), r".+", "empty-dir", age="none"),
                 Selector(("projects", r"[^/]+"), r"bridge-pointer\.json(?:\.tmp\.[0-9a-f]{8})?"))),
    StoreFamily("tmp-files", "config", "temp files of interrupted writes",
                (Selector((), r"history\.jsonl\.tmp\.[0-9a-f]{8}|\.[0-9a-f]{16}\.tmp"
                              r"|remote-settings-consent\.json\.tmp\.[0-9a-f]{8}"),)),
    StoreFamily("plugin-set-aside", "config", "plugin data set aside on uninstall (time in the name)",
                (Selector(("plugins", "data", r"\.set-aside"), ISO_NAME_RE.pattern[1:] + r"\.[0-9a-f]{12}",
                          "dir", age="name"),)),
    StoreFamily("cli-logs", "cache", "claude-cli-nodejs error and MCP logs (time in the name)",
                (Selector(("claude-cli-nodejs", r"[^/]+", r"errors|mcp-logs-.+"), ISO_NAME_RE.pattern[1:] + r".*",
                          age="name"),)),
    StoreFamily("tmp", "tmp", "claude-<uid>/ temp files, previews, paste and history-prefetch folders",
                (Selector(("claude-{uid}",), _TMP_NAMES, own=True),
                 Selector(("claude-{uid}",), r"speculation", "dir", cap_days=3, own=True),
                 Selector((), r"claude-preview-.+|claude-paste-[0-9a-f]{32}|cc-history-prefetch-.+", "dir",
                          own=True))),
)
STORE_KEYS = {f.key: f for f in STORE_FAMILIES}


def name_time(name: str) -> float | None:
    """The UTC time at the start of a name like ``2025-01-01T12-00-00-000Z…``; None if there is none."""
    m = ISO_NAME_RE.match(name)
    if not m:
        return None
    try:
        y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
        dt = datetime(y, mo, d, h, mi, s, int(m.group(7) or 0) * 1000, tzinfo=UTC)
    except ValueError:
        return None
    return dt.timestamp()
