"""What a staged removal's verify (staging.Check) compares the staged entries with: the scan, in delete
mode (``matches_scan``), or the archive's snapshot, in archive mode (``matches_identities``).
"""

from __future__ import annotations

import os
import stat
from typing import Any

from claude_janitor.cache.scan import usage_of
from claude_janitor.model import Piece, Session


class matches_scan:  # noqa: N801 (a Check, used like a function: checks.matches_scan(session))
    """Delete mode: each staged piece must be the inode the scan saw, unchanged — for a dir, with the
    same bytes of regular files and the same newest mtime at any depth (cache.usage_of, as the scan
    counted)."""

    def __init__(self, session: Session) -> None:
        self.pieces = session.pieces
        self.seen: dict[str, list[Any]] = {}  # piece rel -> [top stat, bytes, newest mtime] (cache.usage_of)

    def entry(self, piece: Piece, rel: str, st: os.stat_result) -> str | None:
        if rel == piece.rel:
            if (st.st_ino, st.st_dev, stat.S_ISDIR(st.st_mode)) != (piece.ino, piece.dev, piece.is_dir):
                return f"{piece.rel} was replaced since the scan"
            if not piece.is_dir and (st.st_size, st.st_mtime_ns) != (piece.size, piece.mtime_ns):
                return f"{piece.rel} was written to since the scan"
            self.seen[piece.rel] = [st, 0, 0.0]
            return None
        acc = self.seen[piece.rel]
        total, newest, _ = usage_of((st,))
        acc[1] += total
        acc[2] = max(acc[2], newest)
        return None

    def done(self) -> str | None:
        for p in self.pieces:
            got = self.seen.get(p.rel)
            if got is None:
                return f"{p.rel} vanished during removal"
            st, total, newest = got
            if p.is_dir and (st.st_mtime_ns != p.mtime_ns or total != p.bytes or max(newest, st.st_mtime) != p.mtime):
                return f"something in {p.rel} changed since the scan"
        return None


class matches_identities:  # noqa: N801 (a Check, used like a function)
    """Archive mode: what is staged must be exactly what went into the archive (kind, inode, size,
    mtime of every entry)."""

    def __init__(self, idents: dict[str, tuple[str, int, int, int]]) -> None:
        self.idents, self.count = idents, 0

    def entry(self, piece: Piece, rel: str, st: os.stat_result) -> str | None:
        now = ("dir" if stat.S_ISDIR(st.st_mode) else "file", st.st_ino, st.st_size, st.st_mtime_ns)
        if self.idents.get(rel) != now:
            return f"{rel} changed since it was archived"
        self.count += 1
        return None

    def done(self) -> str | None:
        if self.count != len(self.idents):
            return "something archived is no longer there"
        return None
