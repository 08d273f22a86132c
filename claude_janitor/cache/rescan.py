"""Re-reading only the sessions that may be due (the daemon's wake-ups): each with every piece a full scan
(cache/scan.py) would give it, listing only what those ids need."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable

from claude_janitor.cache.layout import DEBUG_RE, DIR_STORES, NEVER_TOUCHED, SIBLING, TODO_RE, UUID_RE, sibling_id
from claude_janitor.cache.scan import make_piece, store_dir_ok
from claude_janitor.cache.transcript import MARKER, read_custom_title, read_marker, read_transcript
from claude_janitor.model import Piece, Session


def rescan(root: str, wanted: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Session | None]:
    """Re-read the given (project, session_id) sessions of one Claude config dir from disk, each with every
    piece a full scan (scan_root) would give it; None for a session that is gone. The daemon's wake-ups use
    it to read only the sessions that are due.

    A session with ``project == ""`` is an orphan (side files only); it is reported gone once a transcript
    for its id exists in any project (the full scan then attaches the side files to that session)."""
    try:
        root_dev = os.lstat(root).st_dev
    except OSError:
        return dict.fromkeys(wanted, None)
    wanted = list(wanted)
    r = _Rescan(root, root_dev, {sid for _, sid in wanted})
    return {(project, sid): r.one(project, sid) for project, sid in wanted}


class _Rescan:
    """One rescan: lists (projects/, a project's dir, todos/) are read once, only for the ids wanted."""

    def __init__(self, root: str, root_dev: int, sids: set[str]) -> None:
        self.root, self.root_dev, self.sids = root, root_dev, sids
        self.ok = {name: store_dir_ok(root, name, root_dev) for name in ("projects", *DIR_STORES, "todos", "debug")}
        self._projects: list[str] | None = None
        self._siblings: dict[str, dict[str, list[str]]] = {}  # project → session id → names beside its transcript
        self._todos: dict[str, list[str]] | None = None
        self._id_lengths = sorted({len(sid) for sid in sids})

    def lst(self, rel: str) -> os.stat_result | None:
        try:
            return os.lstat(os.path.join(self.root, rel))
        except OSError:
            return None

    def piece(self, s: Session, rel: str, store: str, st: os.stat_result) -> Piece:
        got, _, problem = make_piece(self.root, rel, store, st)
        if problem:
            s.unreadable = s.unreadable or f"{rel}: {problem}"
        return got

    def project_names(self) -> list[str]:
        if self._projects is None:
            self._projects = _names(os.path.join(self.root, "projects")) if self.ok["projects"] else []
        return self._projects

    def siblings(self, project: str, sid: str) -> list[str]:
        if project not in self._siblings:
            # A project dir holds every session of the project (a transcript and a folder each): only the
            # names that begin with a wanted id are parsed (a file beside a transcript is named by its id).
            got: dict[str, list[str]] = {}
            sids, names = self.sids, _names(os.path.join(self.root, "projects", project))
            for name in {name for n in self._id_lengths for name in names if name[:n] in sids}:
                if not name.endswith(".jsonl") and (o := sibling_id(name)) in sids:
                    got.setdefault(o, []).append(name)
            self._siblings[project] = got
        return sorted(self._siblings[project].get(sid, []))

    def todos(self, sid: str) -> list[str]:
        if self._todos is None:
            self._todos = {}
            for name in _names(os.path.join(self.root, "todos")) if self.ok["todos"] else ():
                if name[:36] in self.sids and (m := TODO_RE.match(name)):  # only the wanted ids are matched
                    self._todos.setdefault(m.group(1), []).append(name)
        return self._todos.get(sid, [])

    def one(self, project: str, sid: str) -> Session | None:
        s = Session(session_id=sid, root=self.root, project=project)
        if project:
            if not self.project_pieces(s, project, sid):
                return None
            others = [
                p
                for p in self.project_names()
                if p != project
                and (
                    os.path.lexists(os.path.join(self.root, "projects", p, f"{sid}.jsonl"))
                    or (UUID_RE.match(sid) and os.path.isdir(os.path.join(self.root, "projects", p, sid)))
                )
            ]
            if others:
                # The same id in another project: the side stores cannot be told apart (scan_root keeps
                # them in a session of their own); this session is its project pieces only.
                s.note(
                    "the same session id is also in "
                    + ", ".join(f"projects/{p}" for p in others)
                    + ": its side stores are kept apart"
                )
                return s
        else:
            if any(
                os.path.lexists(os.path.join(self.root, "projects", p, f"{sid}.jsonl")) for p in self.project_names()
            ):
                return None
            s.note("side files only: no transcript found")
        self.side_pieces(s, sid)
        return s if s.pieces else None

    def project_pieces(self, s: Session, project: str, sid: str) -> bool:
        """The pieces in projects/<project>/ (transcript, folder, files beside it); False if there are none."""
        pst = self.lst(f"projects/{project}") if self.ok["projects"] else None
        if pst is None or not stat.S_ISDIR(pst.st_mode) or pst.st_dev != self.root_dev:
            return False
        rel = f"projects/{project}/{sid}.jsonl"
        st = self.lst(rel)
        if st is not None and stat.S_ISREG(st.st_mode):
            s.pieces.append(self.piece(s, rel, "transcript", st))
            read_transcript(s, os.path.join(self.root, rel), st)
        rel = f"projects/{project}/{sid}"
        st = self.lst(rel)
        if (
            st is not None
            and stat.S_ISDIR(st.st_mode)
            and st.st_dev == self.root_dev
            and sid not in NEVER_TOUCHED
            and (s.pieces or UUID_RE.match(sid))
        ):
            if not s.pieces:
                s.note("no transcript; per-session folder only")
            s.pieces.append(self.piece(s, rel, "session-dir", st))
            read_custom_title(s)
        if s.pieces or UUID_RE.match(sid):
            for name in self.siblings(project, sid):
                st = self.lst(f"projects/{project}/{name}")
                if st is not None and stat.S_ISREG(st.st_mode):
                    if not s.pieces:
                        s.note("no transcript; files beside it only")
                    s.pieces.append(self.piece(s, f"projects/{project}/{name}", SIBLING, st))
                    if name == sid + MARKER:
                        s.desktop_marker = read_marker(os.path.join(self.root, "projects", project, name), st)
        return bool(s.pieces)

    def side_pieces(self, s: Session, sid: str) -> None:
        """The id-keyed pieces outside projects/: DIR_STORES/<id>/, todos/<id>….json, debug/<id>.txt."""
        if UUID_RE.match(sid):
            for store in DIR_STORES:
                if not self.ok[store]:
                    continue
                st = self.lst(f"{store}/{sid}")
                if st is not None and stat.S_ISDIR(st.st_mode) and st.st_dev == self.root_dev:
                    s.pieces.append(self.piece(s, f"{store}/{sid}", store, st))
        for name in self.todos(sid):
            st = self.lst(f"todos/{name}")
            if st is not None and stat.S_ISREG(st.st_mode):
                s.pieces.append(self.piece(s, f"todos/{name}", "todos", st))
        st = self.lst(f"debug/{sid}.txt") if self.ok["debug"] else None
        if st is not None and stat.S_ISREG(st.st_mode) and DEBUG_RE.match(f"{sid}.txt"):
            s.pieces.append(self.piece(s, f"debug/{sid}.txt", "debug", st))


def _names(path: str) -> list[str]:
    """The names in a dir (os.listdir: no entry objects); none for a dir that is gone or not a dir."""
    try:
        return os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return []
