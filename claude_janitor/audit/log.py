"""Append-only, hash-chained JSONL audit log. No transcript content ever goes in.

Each record carries ``seq``, ``prev`` (the previous record's hash) and ``hash`` = sha256 of the record's
canonical JSON without ``hash``. The chain runs across files: when the live log reaches ``rotate_bytes`` it
is renamed ``<log>.<first seq, 12 digits>`` (older rotated files optionally compressed to ``.zst``) and the
chain continues in a fresh live log; beyond ``keep`` rotated files the oldest go, each with an
``audit-prune`` record naming its range and last hash, so what remains still verifies (rotation.py).

Two files hold the last (seq, hash) the writer made durable: ``<log>.head`` next to the log and the
*anchor* in another dir (the data dir, see paths.py). Both are written after the records (log fsync'd
first), so after a crash they may lag the log by the one append that was interrupted, never lead it;
``verify`` requires that the log holds each one's record with that hash (records cut off the end, the log
deleted, or a record edited with the chain recomputed but not both anchors, are detected). The next append
takes the chain from the log itself, never from a head, and records what it found
(``audit-recovery``): ``interrupted`` (a head lagging, a record cut off mid-write: set aside, its bytes
hashed into the record) or ``tampered`` (a head ahead of the log or not matching it; verify keeps failing
on such a record). Appends are serialised by a lock file next to the log (rotation renames the log).

``reconcile`` (at the start of every sweep, under the sweep lock) appends an ``interrupted`` result for each
``intent`` that never got one, saying what is on disk: gone, present or partly.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from claude_janitor import testhooks
from claude_janitor.audit.intents import open_intents, outcome_record
from claude_janitor.audit.records import (
    GENESIS,
    INTERRUPTED,
    KEEP_ROTATED,
    RECOVERY,
    ROTATE_BYTES,
    TAMPERED,
    WRITE_CHUNK,
    digest,
    file_tail,
    head_path_of,
    iter_chain,
    now_iso,
    read_mark,
    rotated_files,
    tail_of,
)
from claude_janitor.audit.rotation import rotate, rotation_target
from claude_janitor.audit.verify import verify
from claude_janitor.fs.atomicfile import fsync_dir, mkdirs_private, write_atomic

OPEN_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW  # the live log


@dataclass
class AuditLog:
    path: Path
    sinks: tuple[str, ...] = ()
    anchor: Path | None = None  # a second copy of the head, in another dir
    rotate_bytes: int = ROTATE_BYTES  # 0: never rotate
    keep: int = KEEP_ROTATED  # rotated files kept; 0: keep all
    compress: bool = False  # compress rotated files (but the newest) with zstandard

    @property
    def head_path(self) -> Path:
        return head_path_of(self.path)

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if not self.path.parent.is_dir():
            mkdirs_private(self.path.parent)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def append(self, records: list[dict[str, Any]], *, settled: int | None = None) -> list[dict[str, Any]]:
        """Append records as one batch (locked, fsync'd), chaining each to the log's last record.

        Returns the records written: any ``audit-recovery``/``audit-rotate``/``audit-prune`` records this
        append had to make first, then the caller's. ``settled``: every intent up to this seq has its result
        (reconcile's bookmark, kept in the head)."""
        if not records and settled is None:
            return []
        with self._locked():
            out = self._append_locked([dict(r) for r in records], settled)
        if self.sinks and out:
            from claude_janitor.audit.sinks import forward

            forward(self.sinks, out)
        return out

    def _write_marks(self, seq: int, h: str, settled: int) -> None:
        """The anchor, then the head (which says the anchor exists, so a deleted anchor is noticed)."""
        anchored = False
        if self.anchor is not None:
            write_atomic(
                self.anchor, json.dumps({"log": str(self.path), "seq": seq, "hash": h}) + "\n", hook="audit-anchor"
            )
            anchored = True
        write_atomic(
            self.head_path,
            json.dumps({"seq": seq, "hash": h, "settled": settled, "anchored": anchored}) + "\n",
            hook="audit-head",
        )

    def _append_locked(self, records: list[dict[str, Any]], settled: int | None) -> list[dict[str, Any]]:
        head = read_mark(self.head_path)
        rotated = rotated_files(self.path)
        fd = os.open(self.path, OPEN_FLAGS, 0o600)
        try:
            seq, prev, notes, size = self._chain_end(fd, rotated)
            notes += self._mark_notes(head, seq, prev)
            if head is None and seq == 0 and size == 0 and not notes:
                self._write_marks(0, GENESIS, 0)  # before the first record: a missing head is then news
            old_settled = head.get("settled", 0) if isinstance(head, dict) else 0
            pruned: list[Path] = []
            rotation = rotation_target(self.path, fd, seq) if self.rotate_bytes and size >= self.rotate_bytes else None
            if rotation is not None:
                os.close(fd)
                fd = -1
                notes += rotate(
                    self.path, *rotation, seq, prev, rotated, pruned, compress=self.compress, keep=self.keep
                )
                fd = os.open(self.path, OPEN_FLAGS, 0o600)
            out, seq, prev = self._write_records(fd, notes + records, seq, prev)
            testhooks.point("audit-written")
            new_settled = settled if settled is not None else old_settled
            self._write_marks(seq, prev, min(int(new_settled or 0), seq))
            for p in pruned:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(p)
            if pruned:
                testhooks.point("audit-pruned")
                fsync_dir(self.path.parent)
            return out
        finally:
            if fd >= 0:
                os.close(fd)

    def _chain_end(self, fd: int, rotated: list[Path]) -> tuple[int, str, list[dict[str, Any]], int]:
        """(last seq, last hash, recovery notes, size) of the log open at ``fd``; a record cut off mid-write is
        set aside (truncated, its bytes hashed into a note)."""
        size = os.fstat(fd).st_size
        last_line, end = tail_of(fd, size)
        notes: list[dict[str, Any]] = []
        seq, prev = 0, GENESIS
        if last_line is not None:
            try:
                last = json.loads(last_line)
                seq, prev = int(last["seq"]), str(last["hash"])
            except (ValueError, KeyError, TypeError):
                notes.append(self._note(TAMPERED, "the log's last line is not a record"))
        elif rotated:
            t = file_tail(rotated[-1])
            if t is not None:
                seq, prev = t[1], t[2]
        if end < size:  # an append killed mid-write (or a torn tail): set the partial record aside
            torn = os.pread(fd, size - end, end)
            os.ftruncate(fd, end)
            os.fsync(fd)
            notes.append(
                self._note(
                    INTERRUPTED,
                    f"an append was cut off mid-record: {len(torn)} bytes set aside",
                    dropped_bytes=len(torn),
                    dropped_sha256=hashlib.sha256(torn).hexdigest(),
                )
            )
            size = end
        return seq, prev, notes, size

    def _mark_notes(self, head: dict[str, Any] | None | str, seq: int, prev: str) -> list[dict[str, Any]]:
        """What the head and the anchor say against the log's end (recovery notes; none when they agree)."""
        notes = self._check_mark(head, "head", seq, prev)
        if self.anchor is not None:
            anc = read_mark(self.anchor)
            if anc is not None:
                notes += self._check_mark(anc, "anchor", seq, prev)
            elif isinstance(head, dict) and head.get("anchored"):
                notes.append(self._note(TAMPERED, f"the anchor {self.anchor} was missing"))
        return notes

    @staticmethod
    def _write_records(
        fd: int, records: list[dict[str, Any]], seq: int, prev: str
    ) -> tuple[list[dict[str, Any]], int, str]:
        """Chain ``records`` after (seq, prev), write them and fsync: (the records as written, last seq, hash)."""
        out = []
        lines = []
        for r in records:
            seq += 1
            rec = {"seq": seq, "time": r.pop("time", None) or now_iso(), **r, "prev": prev}
            rec["hash"] = digest(rec)
            prev = rec["hash"]
            out.append(rec)
            lines.append(json.dumps(rec, sort_keys=True, ensure_ascii=True))
        if lines:
            data = memoryview(("\n".join(lines) + "\n").encode())
            while data:  # in pieces, so the crash tests can kill it between two (a torn record)
                data = data[os.write(fd, data[:WRITE_CHUNK]) :]
                testhooks.point("audit-write")
            os.fsync(fd)
        return out, seq, prev

    @staticmethod
    def _note(problem: str, detail: str, **extra: Any) -> dict[str, Any]:
        return {"action": RECOVERY, "problem": problem, "detail": detail, **extra}

    def _check_mark(self, mark: dict[str, Any] | None | str, what: str, seq: int, prev: str) -> list[dict[str, Any]]:
        """Compare a head (or the anchor) with where the log really ends (seq, prev)."""
        if mark is None:
            if seq == 0:
                return []
            return [self._note(TAMPERED, f"the {what} file was missing while the log held {seq} records")]
        if isinstance(mark, str):
            return [self._note(TAMPERED, f"the {what} file was unreadable")]
        if what == "anchor" and mark.get("log") not in (None, str(self.path)):
            return [self._note(TAMPERED, f"the anchor names another log ({mark.get('log')})")]
        ms, mh = mark["seq"], mark["hash"]
        if ms == seq and mh == prev:
            return []
        if ms < seq:
            if self._hash_at(ms) == mh:
                return [
                    self._note(
                        INTERRUPTED,
                        f"the {what} said #{ms} but the log ends at #{seq}: the last "
                        "append was interrupted before its head was updated",
                    )
                ]
            return [
                self._note(
                    TAMPERED,
                    f"the {what} said #{ms} with a hash the log's record #{ms} does not have (the log was edited)",
                )
            ]
        return [
            self._note(
                TAMPERED,
                f"the {what} said #{ms} but the log ends at #{seq}: records were cut "
                "off the end, or the log was replaced",
            )
        ]

    def _hash_at(self, seq: int) -> str | None:
        if seq == 0:
            return GENESIS
        for rec in iter_chain(self.path):  # rare: only after an interrupted append
            if rec.get("seq") == seq:
                return str(rec.get("hash"))
        return None

    def verify(self) -> tuple[bool, str, int]:
        return verify(self.path, anchor=self.anchor)

    def settled(self) -> int:
        head = read_mark(self.head_path)
        return int(head.get("settled", 0) or 0) if isinstance(head, dict) else 0

    def reconcile(self, exists: Callable[[str], bool], roots: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Give every intent without a result one, from what is on disk now (see ``open_intents``).

        ``exists(path)``: does this absolute path exist (not following links)? ``roots``: only intents for
        these Claude dirs (others may belong to a sweep of another dir still running); None: all."""
        with self._locked():
            start = self.settled()
            recs = (r for r in iter_chain(self.path) if isinstance(r.get("seq"), int) and r["seq"] > start)
            todo, last = open_intents(recs)
            keep_roots = None if roots is None else set(roots)
            mine = [
                r
                for r in todo
                if keep_roots is None or r.get("action") == "prune-archive" or r.get("root") in keep_roots
            ]
            others = [r["seq"] for r in todo if r not in mine]
            settled = (min(others) - 1) if others else max(last, start)
            out = [outcome_record(r, exists) for r in mine]
            if not out and settled == start:
                return []
            written = self._append_locked(out, settled)
        if self.sinks and written:
            from claude_janitor.audit.sinks import forward

            forward(self.sinks, written)
        return [r for r in written if r.get("phase") == "result"]
