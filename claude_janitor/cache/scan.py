"""Discovering sessions: walk one Claude dir's projects/ and id-keyed stores, group every piece with its session
(cache/layout.py's rules), read each transcript's tail and head (cache/transcript.py).

Read-only. Never follows symlinks, never descends into another filesystem.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from claude_janitor import testhooks
from claude_janitor.cache.ids import canonical_id
from claude_janitor.cache.layout import (
    DEBUG_RE,
    DIR_STORES,
    NEVER_TOUCHED,
    SIBLING,
    TODO_RE,
    UUID_RE,
    sibling_id,
    transcript_id,
)
from claude_janitor.cache.readahead import FIELDS, Ahead, dir_ident, readers_for, transcript_ident
from claude_janitor.cache.transcript import MARKER, read_custom_title, read_marker, read_transcript
from claude_janitor.fs.mounts import mounts_below
from claude_janitor.fs.tree import each_entry, iter_tree, lstat_entry
from claude_janitor.model import Piece, Session


@dataclass
class ScanResult:
    sessions: list[Session] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # paths left alone, relative to their root
    files_seen: int = 0


# ---- walking ---------------------------------------------------------------------------------------


def dir_usage(path: str, dev: int) -> tuple[int, float, int, str | None]:
    """(bytes of regular files, newest mtime, entries, problem) under a dir (see safefs.iter_tree).

    ``problem`` says what could not be read: such a session is in doubt, and kept."""
    problems: list[str] = []
    total, newest, count = usage_of(iter_tree(path, dev, problems))
    return total, newest, count, problems[0] if problems else None


def usage_of(stats: Iterable[os.stat_result]) -> tuple[int, float, int]:
    """(bytes of regular files, newest mtime, entries) of these lstats: what a dir piece records of what is
    in it, and what removal.checks.matches_scan compares a staged dir against (one definition for both)."""
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


Usage = tuple[int, float, int, str | None]


def make_piece(
    root: str, rel: str, store: str, st: os.stat_result, usage: Usage | None = None
) -> tuple[Piece, int, str | None]:
    """The piece for one entry, its entries counted (a dir: itself and all below) and what of it could not
    be read; ``usage``: a dir's dir_usage already walked (cache/readahead.py)."""
    if stat.S_ISDIR(st.st_mode):
        b, newest, n, problem = usage or dir_usage(os.path.join(root, rel), st.st_dev)
        return (
            Piece(rel, store, True, b, max(newest, st.st_mtime), st.st_ino, st.st_dev, st.st_mtime_ns, st.st_size),
            n + 1,
            problem,
        )
    return Piece(rel, store, False, st.st_size, st.st_mtime, st.st_ino, st.st_dev, st.st_mtime_ns, st.st_size), 1, None


def dir_entries(path: str) -> list[os.DirEntry[str]]:
    return list(each_entry(path))


def scan_root(root: Path, *, progress: Callable[[int], None] | None = None) -> ScanResult:
    """Discover every session under one Claude config dir."""
    return _RootScan(str(root)).run(progress)


def holding(sessions: list[Session], mounts: tuple[str, ...]) -> None:
    """Sessions with a piece that holds one of ``mounts`` (paths below the root) are in doubt, as the removal
    will refuse them (staging.py): the report says so, and the sweep agrees."""
    for s in sessions:
        for rel in s.pieces.rels():
            mp = next((m for m in mounts if m == rel or m.startswith(rel + "/")), None)
            if mp is not None:
                s.unreadable = s.unreadable or f"{mp} is a mount point: never entered"
                break


# A reader's strings that many sessions share, made one object again (pickle makes a copy for each)
_INTERNED = frozenset(("project_path", "entrypoint", "title_source"))
_HAS_BODY = ("transcript", "session-dir")  # a session copy with these is real, not leftovers beside a transcript


class _RootScan:
    """One scan_root: projects first (each project's transcripts, the files beside them, their folders), then
    the id-keyed stores outside projects/, attached to the session of their id."""

    def __init__(self, r: str) -> None:
        self.r = r
        self.res = ScanResult()
        self.root_dev = os.lstat(r).st_dev
        self.by_id: dict[str, Session] = {}
        self.where: dict[str, list[Session]] = {}  # every project session of an id (the same id in two projects)
        self.orphans: dict[str, Session] = {}
        self.shared: dict[str, Session] = {}
        self.ahead: Ahead | None = None
        self.untitled: set[str] = set()  # this project's session folders a reader walked: no title file in them

    def run(self, progress: Callable[[int], None] | None) -> ScanResult:
        r, res = self.r, self.res
        projects = os.path.join(r, "projects")
        n = readers_for(r)
        self.ahead = Ahead(r, self.root_dev, n) if n else None
        try:
            listing = dir_entries(projects) if store_dir_ok(r, "projects", self.root_dev, res.unknown) else []
            for pe in sorted(listing, key=lambda e: e.name):
                seen = self.project(pe)
                if self.ahead:
                    self.ahead.done(f"projects/{pe.name}")
                if progress and seen is not None:
                    progress(seen)
            self.mark_shared()
            self.id_stores()
        finally:
            if self.ahead:
                self.ahead.close()
                self.ahead = None
        res.sessions.extend(self.orphans.values())
        res.sessions.extend(s for s in self.shared.values() if s.pieces)
        mounts = mounts_below(r)
        if mounts:
            holding(res.sessions, mounts)
        return res

    def project(self, pe: os.DirEntry[str]) -> int | None:
        """Scan one projects/<dir>: the number of entries in it, or None if it is not entered."""
        testhooks.point("scan-project")  # the read-ahead tests change a transcript the readers have read
        res, prel = self.res, f"projects/{pe.name}"
        pst = lstat_entry(pe)
        if pst is None:
            return None
        if not stat.S_ISDIR(pst.st_mode):
            res.unknown.append(prel + (" (symlink, not followed)" if stat.S_ISLNK(pst.st_mode) else ""))
            return None
        if pst.st_dev != self.root_dev:
            res.unknown.append(prel + " (another filesystem, not entered)")
            return None
        entries = dir_entries(pe.path)
        found: dict[str, Session] = {}
        dirs, siblings = self.project_files(pe, entries, found)
        self.project_siblings(pe, siblings, found)
        self.project_dirs(pe, dirs, found)
        for sid, s in found.items():
            if f"{prel}/{sid}" not in self.untitled:  # (a reader saw no title file there: not opened)
                read_custom_title(s)
            if s.pieces.has_store(_HAS_BODY):  # as rescan checks it
                self.where.setdefault(sid, []).append(s)
                if not self.by_id.get(sid, s).pieces.has_store(_HAS_BODY):
                    self.by_id[sid] = s  # side stores go with a real copy, not with leftovers beside a transcript
            self.by_id.setdefault(sid, s)
            res.sessions.append(s)
        self.untitled.clear()
        return len(entries)

    def project_files(
        self, pe: os.DirEntry[str], entries: list[os.DirEntry[str]], found: dict[str, Session]
    ) -> tuple[dict[str, os.stat_result], list[tuple[str, str, os.stat_result]]]:
        """Transcripts (into ``found``), and the project's dirs and sibling files, for the next two steps."""
        r, res, prel = self.r, self.res, f"projects/{pe.name}"
        dirs: dict[str, os.stat_result] = {}
        siblings: list[tuple[str, str, os.stat_result]] = []
        for e in entries:
            st = lstat_entry(e)
            if st is None:
                continue
            res.files_seen += 1
            if stat.S_ISREG(st.st_mode) and (sid := transcript_id(e.name)) is not None:
                new = Session(session_id=sid, root=r, project=pe.name)
                piece, _, _ = make_piece(r, f"{prel}/{e.name}", "transcript", st)
                new.pieces.append(piece)
                self.read_transcript(prel, new, e.path, st)
                found[sid] = new
            elif e.name in NEVER_TOUCHED:
                continue
            elif stat.S_ISDIR(st.st_mode):
                dirs[e.name] = st
            elif stat.S_ISREG(st.st_mode) and (owner := sibling_id(e.name)) is not None:
                siblings.append((owner, e.name, st))
            else:
                kind = "symlink, not followed" if stat.S_ISLNK(st.st_mode) else "not a session file"
                res.unknown.append(f"{prel}/{e.name} ({kind})")
        return dirs, siblings

    def project_siblings(
        self, pe: os.DirEntry[str], siblings: list[tuple[str, str, os.stat_result]], found: dict[str, Session]
    ) -> None:
        r, prel = self.r, f"projects/{pe.name}"
        for sid, name, st in siblings:
            s = found.get(sid)
            if s is None and UUID_RE.match(sid):
                s = found[sid] = Session(
                    session_id=sid, root=r, project=pe.name, notes=("no transcript; files beside it only",)
                )
            if s is None:
                self.res.unknown.append(f"{prel}/{name} (not a session file)")
                continue
            s.pieces.append(make_piece(r, f"{prel}/{name}", SIBLING, st)[0])
            if name == sid + MARKER:
                s.desktop_marker = read_marker(os.path.join(pe.path, name), st)

    def project_dirs(self, pe: os.DirEntry[str], dirs: dict[str, os.stat_result], found: dict[str, Session]) -> None:
        r, res, prel = self.r, self.res, f"projects/{pe.name}"
        for name, st in sorted(dirs.items()):
            if st.st_dev != self.root_dev:
                res.unknown.append(f"{prel}/{name} (another filesystem, not entered)")
                continue
            s = found.get(name)
            if s is None and UUID_RE.match(name):
                s = found[name] = Session(
                    session_id=name, root=r, project=pe.name, notes=("no transcript; per-session folder only",)
                )
            elif s is not None and s.transcript is None:
                s.notes = ("no transcript; per-session folder and files beside it only",)
            if s is None:
                res.unknown.append(f"{prel}/{name}/ (not a session folder)")
                continue
            rel = f"{prel}/{name}"
            piece, n, problem = make_piece(r, rel, "session-dir", st, self.usage(prel, rel, st))
            res.files_seen += n - 1
            s.pieces.append(piece)
            if problem:
                s.unreadable = s.unreadable or f"{prel}/{name}: {problem}"

    def read_transcript(self, section: str, s: Session, path: str, st: os.stat_result) -> None:
        """read_transcript, or a reader's answer for the same file (cache/readahead.py)."""
        got = self.ahead.get(section, "t", path, transcript_ident(st)) if self.ahead else None
        if got is None:
            read_transcript(s, path, st)
            return
        for name, value in zip(FIELDS, got, strict=True):
            setattr(s, name, sys.intern(value) if name in _INTERNED and value else value)

    def usage(self, section: str, rel: str, st: os.stat_result) -> Usage | None:
        """A reader's dir_usage of the dir ``rel`` if it walked the same dir, else None (walk it here). A
        session folder a reader found without a title file goes into ``untitled``."""
        if self.ahead is None or not stat.S_ISDIR(st.st_mode):
            return None
        got: tuple[Usage, bool | None] | None = self.ahead.get(section, "d", os.path.join(self.r, rel), dir_ident(st))
        if got is None:
            return None
        if got[1] is False:
            self.untitled.add(rel)
        return got[0]

    def mark_shared(self) -> None:
        """The same id in two projects: its side stores cannot be told apart, and go to a session of their own."""
        for sid, copies in self.where.items():
            if len(copies) < 2:
                continue
            names = ", ".join(f"projects/{c.project}" for c in copies)
            for c in copies:
                c.note(
                    f"the same session id is also in {names}: its side stores (file-history, "
                    "session-env, tasks, todos, debug) cannot be told apart and are kept apart"
                )
            self.shared[sid] = Session(
                session_id=sid,
                root=self.r,
                project="",
                ambiguous=(
                    f"side stores of session id {sid}, which is in more than one project ({names}): they may belong "
                    "to a copy that is kept"
                ),
                notes=(f"ambiguous: the same id is in {names}",),
            )

    def attach(self, sid: str, rel: str, store: str, st: os.stat_result) -> None:
        s = self.shared.get(sid) or self.by_id.get(sid) or self.orphans.get(sid)
        if s is None:
            s = self.orphans[sid] = Session(
                session_id=sid, root=self.r, project="", notes=("side files only: no transcript found",)
            )
        piece, n, problem = make_piece(self.r, rel, store, st, self.usage(store, rel, st))
        self.res.files_seen += n
        s.pieces.append(piece)
        if problem:
            s.unreadable = s.unreadable or f"{rel}: {problem}"

    def id_stores(self) -> None:
        """file-history/<id>/, session-env/<id>/, tasks/<id>/, todos/<id>….json, debug/<id>.txt."""
        r, res = self.r, self.res
        for store in DIR_STORES:
            if not store_dir_ok(r, store, self.root_dev, res.unknown):
                continue
            for e in each_entry(os.path.join(r, store)):
                st = lstat_entry(e)
                if st is None:
                    continue
                if stat.S_ISDIR(st.st_mode) and UUID_RE.match(e.name) and st.st_dev == self.root_dev:
                    self.attach(e.name, f"{store}/{e.name}", store, st)
                else:
                    res.unknown.append(f"{store}/{e.name}")
        for store, rx in (("todos", TODO_RE), ("debug", DEBUG_RE)):
            if not store_dir_ok(r, store, self.root_dev, res.unknown):
                continue
            for e in each_entry(os.path.join(r, store)):
                st = lstat_entry(e)
                if st is None:
                    continue
                m = rx.match(e.name)
                if m and stat.S_ISREG(st.st_mode):
                    self.attach(m.group(1), f"{store}/{e.name}", store, st)
                elif not (store == "debug" and e.name == "latest"):
                    res.unknown.append(f"{store}/{e.name}")


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
