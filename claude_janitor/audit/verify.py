"""`janitor audit verify`: the chain, the rotation records, the head and the anchor, checked against each other.

What it can and cannot detect is in the README (audit section) and log.py's docstring.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from claude_janitor.audit.records import (
    GENESIS,
    PRUNE,
    RECOVERY,
    TAMPERED,
    digest,
    head_path_of,
    read_lines,
    read_mark,
    rotated_files,
)


class _Broken(Exception):
    """The log does not verify: the message, and how many records were good before it."""

    def __init__(self, message: str, n: int) -> None:
        super().__init__(message)
        self.message, self.n = message, n


@dataclass
class _Chain:
    """The chain as read so far, file by file and record by record."""

    want: set[int]  # seqs whose hash the head or anchor names
    prev: str = GENESIS
    n: int = 0
    first: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    pruned: dict[int, str] = field(default_factory=dict)  # last seq of a pruned range -> its last hash
    hashes: dict[int, str] = field(default_factory=lambda: {0: GENESIS})
    torn: int = 0

    def read_file(self, p: Path, live: bool) -> None:
        try:
            lines = list(read_lines(p))
        except OSError as e:
            raise _Broken(f"{p}: unreadable ({e})", self.n) from None
        for lineno, line in enumerate(lines, 1):
            if not line.endswith(b"\n"):
                if live and lineno == len(lines):
                    self.torn = len(line)
                    break
                raise _Broken(f"{p}:{lineno}: the record is cut off (truncated file)", self.n)
            if line.strip():
                self.record(f"{p}:{lineno}", line)

    def record(self, at: str, line: bytes) -> None:
        n = self.n
        try:
            rec = json.loads(line)
        except ValueError:
            raise _Broken(f"{at}: not valid JSON (edited or corrupted)", n) from None
        if not isinstance(rec, dict):
            raise _Broken(f"{at}: not a record (edited or corrupted)", n)
        if self.first is None:
            self.first = rec
            n = self.n = int(rec["seq"]) - 1 if isinstance(rec.get("seq"), int) else 0
            self.prev = str(rec.get("prev")) if n else GENESIS
        if rec.get("seq") != n + 1:
            raise _Broken(f"{at}: expected record #{n + 1} (reordered, removed or inserted)", n)
        if rec.get("prev") != self.prev:
            raise _Broken(f"{at}: chain broken: does not follow record #{n} (reordered or removed)", n)
        if rec.get("hash") != digest(rec):
            raise _Broken(f"{at}: hash mismatch: record #{n + 1} was edited", n)
        self.prev = rec["hash"]
        n = self.n = n + 1
        if n in self.want:
            self.hashes[n] = self.prev
        if rec.get("action") == PRUNE and isinstance(rec.get("last"), int):
            self.pruned[rec["last"]] = str(rec.get("last_hash"))
        if rec.get("action") == RECOVERY:
            if rec.get("problem") == TAMPERED:
                raise _Broken(
                    f"{at}: record #{n}: the janitor found this log tampered with before this record: "
                    f"{rec.get('detail')}",
                    n,
                )
            self.notes.append(f"#{n}: recovered after a crash ({rec.get('detail')})")

    def check_rotation(self, oldest_file: Path) -> None:
        """A log that does not start at #1 must say, in an audit-prune record, that the rest was rotated out."""
        first = self.first
        if first is None or first["seq"] == 1:
            return
        start = first["seq"] - 1
        if self.pruned.get(start) != first.get("prev"):
            raise _Broken(
                f"{oldest_file}: the oldest record kept is #{first['seq']}, but no audit-prune record "
                f"says records up to #{start} were rotated out (older files removed)",
                self.n,
            )
        self.notes.append(f"records #1–#{start} were rotated out (audit-prune)")


def _no_log(path: Path, head: Any, anc: Any) -> tuple[bool, str, int] | None:
    """The verdict when there is no log at all (None: the marks say it should exist, checked later)."""
    for what, mark in (("head file", head), ("anchor", anc)):
        if isinstance(mark, dict) and mark.get("seq", 0) > 0:
            return False, f"{path}: the log is missing but its {what} says #{mark['seq']} (log deleted)", 0
    if head is not None and head != "broken" or anc is None:
        return True, f"{path}: no audit log yet (nothing recorded)", 0
    return None


def _check_marks(path: Path, head_path: Path, head: Any, anchor: Path | None, anc: Any, c: _Chain) -> None:
    """The head and the anchor must each name a record the log holds, with that record's hash."""
    n = c.n
    if head is None:
        if n:
            raise _Broken(f"{head_path}: head file missing; cannot tell whether records were cut off the end", n)
    elif head == "broken":
        raise _Broken(f"{head_path}: head file unreadable", n)
    for what, where, mark in (("head", head_path, head), ("anchor", anchor, anc)):
        if not isinstance(mark, dict):
            continue
        if what == "anchor" and mark.get("log") not in (None, str(path)):
            continue  # the anchor of another log (a --file given by hand)
        if mark["seq"] > n:
            raise _Broken(
                f"{path}: log ends at record #{n} but the {what} ({where}) says #{mark['seq']}: "
                "records were cut off the end, the log was replaced, or the " + what + " was edited",
                n,
            )
        if mark["seq"] not in c.hashes and mark["seq"] >= (c.first["seq"] if c.first else 1):
            c.hashes[mark["seq"]] = ""
        if c.hashes.get(mark["seq"], mark["hash"]) != mark["hash"]:
            raise _Broken(
                f"{path}: record #{mark['seq']} is not the one the {what} ({where}) recorded: the log "
                "was rewritten (edited and re-chained)",
                n,
            )
        if mark["seq"] < n and what == "head":
            c.notes.append(
                f"the last append (records #{mark['seq'] + 1}–#{n}) was interrupted before its head "
                "was updated; the next append records that"
            )
    if anchor is not None and anc is None and isinstance(head, dict) and head.get("anchored"):
        raise _Broken(f"{anchor}: the anchor is missing (deleted) though the head says it was written", n)
    if anc == "broken":
        raise _Broken(f"{anchor}: anchor unreadable", n)


def verify(path: Path, anchor: Path | None = None) -> tuple[bool, str, int]:
    """(ok, message, records) for the log at ``path`` (with its rotated files), checked against its head
    and, if given, the anchor (a second head in another dir)."""
    head_path = head_path_of(path)
    head = read_mark(head_path)
    anc = read_mark(anchor) if anchor is not None else None
    files = [*rotated_files(path), path]
    if not (path.exists() or len(files) > 1):
        verdict = _no_log(path, head, anc)
        if verdict is not None:
            return verdict
    c = _Chain(want={m["seq"] for m in (head, anc) if isinstance(m, dict)})
    try:
        for i, p in enumerate(files):
            c.read_file(p, live=i == len(files) - 1)
        c.check_rotation(files[0])
        _check_marks(path, head_path, head, anchor, anc, c)
    except _Broken as e:
        return False, e.message, e.n
    if c.torn:
        c.notes.append(
            f"an append was interrupted mid-record ({c.torn} bytes after record #{c.n}); "
            "the next append sets them aside"
        )
    msg = f"{path}: {c.n} records, chain intact"
    if len(files) > 1:
        msg += f" across {len(files)} files"
    if anchor is not None and isinstance(anc, dict):
        msg += f", matches the anchor ({anchor})"
    return True, msg + "".join(f"\n  note: {x}" for x in c.notes), c.n
