"""Finding the entries of the stores beyond sessions (stores.py), read-only: the dirs each family's selectors
name, walked by path without following a symlink or leaving the filesystem, minus the paths a session claims.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass

from claude_janitor.cache.layout import Selector, StoreFamily, piece_owner
from claude_janitor.cache.scan import make_piece
from claude_janitor.model import Piece, Session


@dataclass
class Found:
    piece: Piece
    selector: Selector
    name: str


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None


def sorted_names(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _dirs(base: str, sel: Selector, dev: int, uid: int, notes: list[str]) -> Iterator[str]:
    """The dirs (relative to ``base``, "" for base itself) that match the selector's path components: real
    dirs on base's filesystem only; a symlink is noted, never followed."""
    level = [""]
    for comp in sel.dirs:
        rx = re.compile(comp.replace("{uid}", str(uid)))
        nxt = []
        for rel in level:
            for name in sorted_names(os.path.join(base, rel)):
                if not rx.fullmatch(name):
                    continue
                sub = f"{rel}/{name}" if rel else name
                st = _lstat(os.path.join(base, sub))
                if st is None:
                    continue
                if stat.S_ISLNK(st.st_mode):
                    notes.append(f"{sub} (symlink, not followed)")
                elif not stat.S_ISDIR(st.st_mode):
                    continue
                elif st.st_dev != dev:
                    notes.append(f"{sub} (another filesystem, not entered)")
                elif sel.own and st.st_uid != uid:
                    notes.append(f"{sub} (belongs to uid {st.st_uid}, not entered)")
                else:
                    nxt.append(sub)
        level = nxt
    yield from level


def _listed(base: str, d: str, wanted: Callable[[str, str], bool]) -> list[tuple[str, str]]:
    """(rel, name) of the entries of the dir ``d`` that ``wanted`` takes, sorted; nothing if it cannot be
    listed. Only those are held: the id-keyed stores list one entry per session, nearly all of them a
    session's, and the whole listing at once was the scan's peak (~1 MB at 10k sessions)."""
    out = []
    try:
        with os.scandir(os.path.join(base, d)) as it:
            for e in it:
                rel = f"{d}/{e.name}" if d else e.name
                if wanted(rel, e.name):
                    out.append((rel, e.name))
    except OSError:
        return []
    out.sort()
    return out


def _files_below(base: str, rel: str, dev: int) -> Iterator[tuple[str, str]]:
    """(rel, name) of everything below the dir ``rel``, depth first, not following symlinks."""
    stack = [rel]
    while stack:
        d = stack.pop()
        for name in sorted_names(os.path.join(base, d)):
            sub = f"{d}/{name}"
            st = _lstat(os.path.join(base, sub))
            if st is not None and stat.S_ISDIR(st.st_mode) and st.st_dev == dev:
                stack.append(sub)
            yield sub, name


class Claimed:
    """The paths that are some session's pieces, answered from the sessions themselves: a set of every
    piece's path would cost ~1 KB a session (100 MB at 100k sessions) for the store scan's ``in``."""

    def __init__(self, sessions: Iterable[Session]) -> None:
        self.by_id: dict[str, Session | list[Session]] = {}
        for s in sessions:
            got = self.by_id.setdefault(s.session_id, s)
            if got is not s:
                self.by_id[s.session_id] = [*got, s] if isinstance(got, list) else [got, s]

    def __contains__(self, rel: object) -> bool:
        if not isinstance(rel, str):
            return False
        for is_dir in (False, True):
            owner = piece_owner(rel, is_dir)
            got = self.by_id.get(owner[1]) if owner else None
            for s in got if isinstance(got, list) else [got] if got else []:
                if s.pieces.has(rel):
                    return True
        return False

    def dirs(self) -> set[str]:
        """The dirs holding a claimed path."""
        return {
            rel.rsplit("/", 1)[0]
            for got in self.by_id.values()
            for s in (got if isinstance(got, list) else [got])
            for rel in s.pieces.rels()
        }


def find(
    base: str, fam: StoreFamily, claimed: Container[str], notes: list[str], claimed_dirs: set[str] | None = None
) -> Iterator[Found]:
    """Every entry of one store family under ``base`` (read-only). ``claimed``: paths that are a session's
    pieces; ``claimed_dirs``: the dirs holding them (never empty)."""
    st = _lstat(base)
    if st is None or not stat.S_ISDIR(st.st_mode):
        return
    dev, uid = st.st_dev, os.getuid()
    seen: set[str] = set()
    if claimed_dirs is None:
        claimed_dirs = {c.rsplit("/", 1)[0] for c in claimed} if isinstance(claimed, Iterable) else set()
    for sel in fam.selectors:
        rx = re.compile(sel.name)

        def wanted(rel: str, name: str, sel: Selector = sel, rx: re.Pattern[str] = rx) -> bool:
            return rel not in seen and name not in sel.exempt and rx.fullmatch(name) is not None and rel not in claimed

        for d in _dirs(base, sel, dev, uid, notes):
            names = (
                (x for x in _files_below(base, d, dev) if wanted(*x))
                if sel.recursive and d
                else _listed(base, d, wanted)
            )
            for rel, name in names:
                est = _lstat(os.path.join(base, rel))
                if est is None:
                    continue
                if stat.S_ISLNK(est.st_mode):
                    notes.append(f"{rel} (symlink, not followed)")
                    continue
                is_dir = stat.S_ISDIR(est.st_mode)
                if not (
                    is_dir
                    and sel.kind in ("dir", "any", "empty-dir")
                    or stat.S_ISREG(est.st_mode)
                    and sel.kind in ("file", "any")
                ):
                    continue
                if sel.kind == "empty-dir" and (sorted_names(os.path.join(base, rel)) or rel in claimed_dirs):
                    continue
                if is_dir and est.st_dev != dev:
                    notes.append(f"{rel} (another filesystem, not entered)")
                    continue
                if sel.own and est.st_uid != uid:
                    continue
                seen.add(rel)
                piece, _, problem = make_piece(base, rel, fam.key, est)
                if problem:
                    notes.append(f"{rel}: {problem}; kept")
                    continue
                yield Found(piece, sel, name)
