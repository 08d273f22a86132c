"""Reading Claude Code's prompt history (``history.jsonl``, see history.py): its lines parsed, and the
lines of each session, indexed once per file version (read without the lock: the file is only ever appended
to or replaced whole).
"""

from __future__ import annotations

import json
import math
import os
import stat
from typing import Any

NAME = "history.jsonl"
MAX_READ = 1 << 30  # a history file bigger than this is left alone (a corrupt or hostile file)


def split_lines(data: bytes) -> list[bytes]:
    """The lines of ``data``, each with its newline (a last line without one is kept as it is)."""
    return data.splitlines(keepends=True)


def parse(line: bytes) -> dict[str, Any] | None:
    s = line.strip()
    if not s.startswith(b"{"):
        return None
    try:
        rec = json.loads(s)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return rec if isinstance(rec, dict) else None


def session_of(line: bytes) -> str | None:
    rec = parse(line)
    sid = rec.get("sessionId") if rec else None
    return sid if isinstance(sid, str) else None


def time_ms(rec: dict[str, Any]) -> float | None:
    t = rec.get("timestamp")
    if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t):
        return None
    return float(t)


def read_all(fd: int, size: int) -> bytes:
    chunks, got = [], 0
    while got < size:
        b = os.pread(fd, min(1 << 20, size - got), got)
        if not b:
            break
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


class Index:
    """The history lines of each session, read once per file version (read without the lock: the file is
    only ever appended to or replaced whole) — archiving 1,000 sessions reads a big history once, not
    1,000 times."""

    def __init__(self) -> None:
        self._by_root: dict[str, tuple[tuple[int, int, int], dict[str, list[bytes]]]] = {}

    def lines_of(self, root: str, session_id: str) -> list[bytes]:
        """The whole lines of one session; empty if there are none or the history cannot be read."""
        try:
            fd = os.open(os.path.join(root, NAME), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            return []
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_READ:
                return []
            ident = (st.st_ino, st.st_size, st.st_mtime_ns)
            got = self._by_root.get(root)
            if got is None or got[0] != ident:
                data = read_all(fd, st.st_size)
                by_sid: dict[str, list[bytes]] = {}
                for x in split_lines(data[: data.rfind(b"\n") + 1]):
                    sid = session_of(x)
                    if sid is not None:
                        by_sid.setdefault(sid, []).append(x)
                got = self._by_root[root] = (ident, by_sid)
        except OSError:
            return []
        finally:
            os.close(fd)
        return list(got[1].get(session_id, []))
