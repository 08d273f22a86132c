"""Rotating the audit log (log.py): when the live log is full it is renamed ``<log>.<first seq, 12 digits>``,
older rotated files are optionally compressed to ``.zst`` (all but the newest), and beyond ``keep`` rotated
files the oldest go, each named by an ``audit-prune`` record (its range and last hash) so what remains still
verifies. Called by AuditLog's append, under its lock; the records made here are chained by the caller.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from claude_janitor import testhooks
from claude_janitor.audit.records import PRUNE, ROTATE, file_tail, first_line
from claude_janitor.fs.atomicfile import fsync_dir, write_atomic


def rotation_target(path: Path, fd: int, seq: int) -> tuple[Path, int] | None:
    """(the name the full live log is renamed to, its first seq), or None if that name is taken."""
    first_rec = first_line(fd)
    if first_rec is None:
        return None
    try:
        first = int(json.loads(first_rec)["seq"])
    except (ValueError, KeyError, TypeError):
        first = seq
    name = path.with_name(f"{path.name}.{first:012d}")
    return None if os.path.lexists(name) else (name, first)


def rotate(
    path: Path,
    name: Path,
    first: int,
    seq: int,
    prev: str,
    rotated: list[Path],
    pruned: list[Path],
    *,
    compress: bool,
    keep: int,
) -> list[dict[str, Any]]:
    """Rename the (closed) live log ``path`` to ``name``: the rotate and prune notes. Files beyond ``keep``
    go into ``pruned`` (removed by the caller once the notes are durable)."""
    os.rename(path, name)
    testhooks.point("audit-rotated")
    fsync_dir(path.parent)
    rotated.append(name)
    notes: list[dict[str, Any]] = [
        {"action": ROTATE, "file": name.name, "first": first, "last": seq, "last_hash": prev}
    ]
    if compress:
        rotated = compress_rotated(rotated)
    return notes + prune_notes(rotated, pruned, keep)


def compress_rotated(rotated: list[Path]) -> list[Path]:
    """Compress every rotated file but the newest (which a daemon may still be reading)."""
    import zstandard  # lazily: only a configured, rotating append ever loads it

    out = []
    for p in rotated:
        if p is rotated[-1] or p.name.endswith(".zst"):
            out.append(p)
            continue
        z = p.with_name(p.name + ".zst")
        write_atomic(z, zstandard.ZstdCompressor(level=9).compress(p.read_bytes()), hook="audit-compress")
        os.unlink(p)
        fsync_dir(p.parent)
        out.append(z)
    return out


def prune_notes(rotated: list[Path], pruned: list[Path], keep: int) -> list[dict[str, Any]]:
    """Records for the oldest rotated files beyond ``keep`` (removed once the records are durable)."""
    if not keep or len(rotated) <= keep:
        return []
    notes = []
    for p in rotated[: len(rotated) - keep]:
        t = file_tail(p)
        if t is None:
            continue
        notes.append({"action": PRUNE, "file": p.name, "first": t[0], "last": t[1], "last_hash": t[2]})
        pruned.append(p)
        twin = p.with_name(p.name[:-4]) if p.name.endswith(".zst") else p.with_name(p.name + ".zst")
        if twin.exists():
            pruned.append(twin)
    return notes
