"""The audit log's files and records as they are on disk: names (live log, rotated files, head), reading
records (compressed or not), the record hash. Shared by the writer (log.py), verify.py and intents.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from claude_janitor.timefmt import iso_ms

GENESIS = "0" * 64
ROTATE_BYTES = 8 * 1024 * 1024  # default audit_rotate_size
KEEP_ROTATED = 8  # default audit_keep_files
WRITE_CHUNK = 1 << 16
RECOVERY = "audit-recovery"
ROTATE = "audit-rotate"
PRUNE = "audit-prune"
INTERRUPTED = "interrupted"
TAMPERED = "tampered"
# Actions whose intents a sweep lock holder writes, and reconcile settles after a crash.
RECONCILED = ("delete", "archive", "prune-archive", "restore", "delete-store")


def digest(rec: dict[str, Any]) -> str:
    body = {k: v for k, v in rec.items() if k != "hash"}
    canon = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canon.encode()).hexdigest()


def now_iso(t: float | None = None) -> str:
    """A record's "time": now (or ``t``) to the millisecond."""
    return iso_ms(time.time() if t is None else t)


def head_path_of(path: Path) -> Path:
    return path.with_name(path.name + ".head")


def rotated_files(path: Path) -> list[Path]:
    """The rotated files of the log at ``path``, oldest first (a plain file wins over its .zst twin)."""
    pat = re.compile(re.escape(path.name) + r"\.(\d{12})(\.zst)?")
    found: dict[int, Path] = {}
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    for n in names:
        m = pat.fullmatch(n)
        if m and (int(m.group(1)) not in found or not m.group(2)):
            found[int(m.group(1))] = path.parent / n
    return [found[k] for k in sorted(found)]


def open_records(p: Path) -> BinaryIO:
    if p.name.endswith(".zst"):
        import zstandard  # only for compressed rotated files: a delete-only sweep never gets here

        return zstandard.ZstdDecompressor().stream_reader(open(p, "rb"), closefd=True)
    return open(p, "rb")


def read_lines(p: Path) -> Iterator[bytes]:
    try:
        f = open_records(p)
    except FileNotFoundError:
        return
    with f:
        rest = b""
        while chunk := f.read(1 << 20):
            rest += chunk
            *whole, rest = rest.split(b"\n")
            yield from (w + b"\n" for w in whole)
        if rest:
            yield rest


def iter_records(path: Path) -> Iterator[dict[str, Any]]:
    """The records of one file (the live log by default)."""
    for line in read_lines(path):
        if line.strip():
            try:
                yield json.loads(line)
            except ValueError:
                yield {"_unparseable": True}


def iter_chain(path: Path) -> Iterator[dict[str, Any]]:
    """Every record still kept, oldest first: the rotated files, then the live log."""
    for p in [*rotated_files(path), path]:
        yield from iter_records(p)


def first_line(fd: int) -> bytes | None:
    head = os.pread(fd, 1 << 16, 0)
    i = head.find(b"\n")
    return head[:i] if i >= 0 else None


def tail_of(fd: int, size: int) -> tuple[bytes | None, int]:
    """(last whole line, end of the last whole line) of an open file."""
    buf, pos = b"", size
    while pos > 0:
        n = min(1 << 16, pos)
        pos -= n
        buf = os.pread(fd, n, pos) + buf
        end = buf.rfind(b"\n")
        if end < 0:
            continue
        start = buf.rfind(b"\n", 0, end)
        if start >= 0 or pos == 0:
            return buf[start + 1 : end], pos + end + 1
    return None, 0


def file_tail(p: Path) -> tuple[int, int, str] | None:
    """(first seq, last seq, last hash) of a whole file (a rotated one), or None if it holds no record."""
    first = last = None
    for rec in iter_records(p):
        if "_unparseable" in rec:
            continue
        if first is None:
            first = rec
        last = rec
    if first is None or last is None:
        return None
    return int(first.get("seq", 0)), int(last.get("seq", 0)), str(last.get("hash", GENESIS))


def read_mark(p: Path) -> dict[str, Any] | None | str:
    """The JSON object in ``p``; None if there is no such file; "broken" if it is not one."""
    try:
        with open(p, "rb") as f:
            data = json.loads(f.read(1 << 16))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return "broken"
    if not isinstance(data, dict) or not isinstance(data.get("seq"), int) or not isinstance(data.get("hash"), str):
        return "broken"
    return data
