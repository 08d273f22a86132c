"""Append-only, hash-chained JSONL audit log. No transcript content ever goes in.

Each record carries ``seq``, ``prev`` (the previous record's hash) and ``hash`` = sha256 of the record's
canonical JSON without ``hash``. The chain runs across files: when the live log reaches ``rotate_bytes`` it
is renamed ``<log>.<first seq, 12 digits>`` (older rotated files optionally compressed to ``.zst``) and the
chain continues in a fresh live log; beyond ``keep`` rotated files the oldest go, each with an
``audit-prune`` record naming its range and last hash, so what remains still verifies.

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
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from claude_janitor import testhooks
from claude_janitor.fs.atomicfile import fsync_dir, mkdirs_private, write_atomic

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


def _digest(rec: dict[str, Any]) -> str:
    body = {k: v for k, v in rec.items() if k != "hash"}
    canon = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canon.encode()).hexdigest()


def _now_iso(t: float | None = None) -> str:
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1000):03d}Z"


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


def _open_records(p: Path) -> BinaryIO:
    if p.name.endswith(".zst"):
        import zstandard  # only for compressed rotated files: a delete-only sweep never gets here

        return zstandard.ZstdDecompressor().stream_reader(open(p, "rb"), closefd=True)
    return open(p, "rb")


def _lines(p: Path) -> Iterator[bytes]:
    try:
        f = _open_records(p)
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
    for line in _lines(path):
        if line.strip():
            try:
                yield json.loads(line)
            except ValueError:
                yield {"_unparseable": True}


def iter_chain(path: Path) -> Iterator[dict[str, Any]]:
    """Every record still kept, oldest first: the rotated files, then the live log."""
    for p in [*rotated_files(path), path]:
        yield from iter_records(p)


def _first_line(fd: int) -> bytes | None:
    head = os.pread(fd, 1 << 16, 0)
    i = head.find(b"\n")
    return head[:i] if i >= 0 else None


def _tail_of(fd: int, size: int) -> tuple[bytes | None, int]:
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
            return buf[start + 1:end], pos + end + 1
    return None, 0


def _file_tail(p: Path) -> tuple[int, int, str] | None:
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


def _read_json(p: Path) -> dict[str, Any] | None | str:
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
            write_atomic(self.anchor, json.dumps({"log": str(self.path), "seq": seq, "hash": h}) + "\n",
                         hook="audit-anchor")
            anchored = True
        write_atomic(self.head_path, json.dumps({"seq": seq, "hash": h, "settled": settled,
                                                 "anchored": anchored}) + "\n", hook="audit-head")

    def _append_locked(self, records: list[dict[str, Any]], settled: int | None) -> list[dict[str, Any]]:
        head = _read_json(self.head_path)
        rotated = rotated_files(self.path)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            size = os.fstat(fd).st_size
            last_line, end = _tail_of(fd, size)
            notes: list[dict[str, Any]] = []
            seq, prev = 0, GENESIS
            if last_line is not None:
                try:
                    last = json.loads(last_line)
                    seq, prev = int(last["seq"]), str(last["hash"])
                except (ValueError, KeyError, TypeError):
                    notes.append(self._note(TAMPERED, "the log's last line is not a record"))
            elif rotated:
                t = _file_tail(rotated[-1])
                if t is not None:
                    seq, prev = t[1], t[2]
            if end < size:  # an append killed mid-write (or a torn tail): set the partial record aside
                torn = os.pread(fd, size - end, end)
                os.ftruncate(fd, end)
                os.fsync(fd)
                notes.append(self._note(INTERRUPTED, f"an append was cut off mid-record: {len(torn)} bytes set "
                                        "aside", dropped_bytes=len(torn),
                                        dropped_sha256=hashlib.sha256(torn).hexdigest()))
                size = end
            notes += self._check_mark(head, "head", seq, prev)
            if self.anchor is not None:
                anc = _read_json(self.anchor)
                if anc is not None:
                    notes += self._check_mark(anc, "anchor", seq, prev)
                elif isinstance(head, dict) and head.get("anchored"):
                    notes.append(self._note(TAMPERED, f"the anchor {self.anchor} was missing"))
            if head is None and seq == 0 and size == 0 and not notes:
                self._write_marks(0, GENESIS, 0)  # before the first record: a missing head is then news
            old_settled = head.get("settled", 0) if isinstance(head, dict) else 0
            pruned: list[Path] = []
            first_line = _first_line(fd) if self.rotate_bytes and size >= self.rotate_bytes else None
            if first_line is not None:
                try:
                    first = int(json.loads(first_line)["seq"])
                except (ValueError, KeyError, TypeError):
                    first = seq
                name = self.path.with_name(f"{self.path.name}.{first:012d}")
                if not os.path.lexists(name):
                    os.close(fd)
                    fd = -1
                    os.rename(self.path, name)
                    testhooks.point("audit-rotated")
                    fsync_dir(self.path.parent)
                    fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                                 0o600)
                    rotated.append(name)
                    notes.append({"action": ROTATE, "file": name.name, "first": first, "last": seq,
                                  "last_hash": prev})
                    if self.compress:
                        rotated = self._compress(rotated)
                    notes += self._prune_notes(rotated, pruned)
            out = []
            lines = []
            for r in notes + records:
                seq += 1
                rec = {"seq": seq, "time": r.pop("time", None) or _now_iso(), **r, "prev": prev}
                rec["hash"] = _digest(rec)
                prev = rec["hash"]
                out.append(rec)
                lines.append(json.dumps(rec, sort_keys=True, ensure_ascii=True))
            if lines:
                data = memoryview(("\n".join(lines) + "\n").encode())
                while data:  # in pieces, so the crash tests can kill it between two (a torn record)
                    data = data[os.write(fd, data[:WRITE_CHUNK]):]
                    testhooks.point("audit-write")
                os.fsync(fd)
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

    @staticmethod
    def _note(problem: str, detail: str, **extra: Any) -> dict[str, Any]:
        return {"action": RECOVERY, "problem": problem, "detail": detail, **extra}

    def _check_mark(self, mark: dict[str, Any] | None | str, what: str, seq: int, prev: str
                    ) -> list[dict[str, Any]]:
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
                return [self._note(INTERRUPTED, f"the {what} said #{ms} but the log ends at #{seq}: the last "
                                   "append was interrupted before its head was updated")]
            return [self._note(TAMPERED, f"the {what} said #{ms} with a hash the log's record #{ms} does not "
                               "have (the log was edited)")]
        return [self._note(TAMPERED, f"the {what} said #{ms} but the log ends at #{seq}: records were cut "
                           "off the end, or the log was replaced")]

    def _hash_at(self, seq: int) -> str | None:
        if seq == 0:
            return GENESIS
        for rec in iter_chain(self.path):  # rare: only after an interrupted append
            if rec.get("seq") == seq:
                return str(rec.get("hash"))
        return None

    def _compress(self, rotated: list[Path]) -> list[Path]:
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

    def _prune_notes(self, rotated: list[Path], pruned: list[Path]) -> list[dict[str, Any]]:
        """Records for the oldest rotated files beyond ``keep`` (removed once the records are durable)."""
        if not self.keep or len(rotated) <= self.keep:
            return []
        notes = []
        for p in rotated[:len(rotated) - self.keep]:
            t = _file_tail(p)
            if t is None:
                continue
            notes.append({"action": PRUNE, "file": p.name, "first": t[0], "last": t[1], "last_hash": t[2]})
            pruned.append(p)
            twin = p.with_name(p.name[:-4]) if p.name.endswith(".zst") else p.with_name(p.name + ".zst")
            if twin.exists():
                pruned.append(twin)
        return notes

    def verify(self) -> tuple[bool, str, int]:
        return verify(self.path, anchor=self.anchor)

    def settled(self) -> int:
        head = _read_json(self.head_path)
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
            mine = [r for r in todo if keep_roots is None or r.get("action") == "prune-archive"
                    or r.get("root") in keep_roots]
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


def _target(r: dict[str, Any]) -> tuple[Any, ...]:
    """What an intent and its result are about (an archive's result also names the archive it made)."""
    by_archive = r.get("action") in ("prune-archive", "restore")
    return (r.get("action"), r.get("root"), r.get("session_id"), r.get("store"),
            r.get("archive") if by_archive else None)


def open_intents(records: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """(intents with no later result for the same action and target, the last seq seen)."""
    pending: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    last = 0
    for r in records:
        if isinstance(r.get("seq"), int):
            last = max(last, r["seq"])
        if r.get("action") not in RECONCILED:
            continue
        key = _target(r)
        if r.get("phase") == "intent":
            pending.setdefault(key, []).append(r)
        elif r.get("phase") == "result" and pending.get(key):
            pending[key].pop(0)
    todo = [r for rs in pending.values() for r in rs]
    return sorted(todo, key=lambda r: r["seq"]), last


def outcome_record(intent: dict[str, Any], exists: Callable[[str], bool]) -> dict[str, Any]:
    """The honest result for an intent whose sweep died: what is on disk now."""
    if intent.get("action") == "delete-store":  # its intent counts files, it does not list them
        rec: dict[str, Any] = {k: intent[k] for k in ("action", "store", "root", "place") if k in intent}
        rec.update({"phase": "result", "result": INTERRUPTED, "found": "unknown", "intent_seq": intent["seq"],
                    "note": "the run that recorded this intent ended (killed or crashed) before its result; "
                            "the intent does not list the files, so how many went is not known"})
        return rec
    if intent.get("action") == "prune-archive":
        paths = [str(intent.get("archive"))]
    else:
        paths = [os.path.join(str(intent.get("root")), p) for p in intent.get("paths") or []]
    there = [p for p in paths if exists(p)]
    found = "present" if paths and len(there) == len(paths) else "gone" if not there else "partly"
    rec = {k: intent[k] for k in ("action", "session_id", "root", "project", "paths", "archive") if k in intent}
    rec = dict(rec)
    rec.update({"phase": "result", "result": INTERRUPTED, "found": found, "intent_seq": intent["seq"],
                "note": "the run that recorded this intent ended (killed or crashed) before its result; "
                        f"found {found} on disk afterwards"})
    if found == "partly":
        rec["left"] = there
    return rec


def verify(path: Path, anchor: Path | None = None) -> tuple[bool, str, int]:
    """(ok, message, records) for the log at ``path`` (with its rotated files), checked against its head
    and, if given, the anchor (a second head in another dir)."""
    head_path = head_path_of(path)
    head = _read_json(head_path)
    anc = _read_json(anchor) if anchor is not None else None
    files = [*rotated_files(path), path]
    have_log = path.exists() or len(files) > 1
    if not have_log:
        for what, mark in (("head file", head), ("anchor", anc)):
            if isinstance(mark, dict) and mark.get("seq", 0) > 0:
                return False, f"{path}: the log is missing but its {what} says #{mark['seq']} (log deleted)", 0
        if head is not None and head != "broken" or anc is None:
            return True, f"{path}: no audit log yet (nothing recorded)", 0
    prev, n, first = GENESIS, 0, None
    notes: list[str] = []
    pruned: dict[int, str] = {}  # last seq of a pruned range -> its last hash
    hashes: dict[int, str] = {0: GENESIS}
    want = {m["seq"] for m in (head, anc) if isinstance(m, dict)}
    torn = 0
    for i, p in enumerate(files):
        live = i == len(files) - 1
        try:
            lines = list(_lines(p))
        except OSError as e:
            return False, f"{p}: unreadable ({e})", n
        for lineno, line in enumerate(lines, 1):
            if not line.endswith(b"\n"):
                if live and lineno == len(lines):
                    torn = len(line)
                    break
                return False, f"{p}:{lineno}: the record is cut off (truncated file)", n
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                return False, f"{p}:{lineno}: not valid JSON (edited or corrupted)", n
            if not isinstance(rec, dict):
                return False, f"{p}:{lineno}: not a record (edited or corrupted)", n
            if first is None:
                first = rec
                n = int(rec["seq"]) - 1 if isinstance(rec.get("seq"), int) else 0
                prev = str(rec.get("prev")) if n else GENESIS
            if rec.get("seq") != n + 1:
                return False, f"{p}:{lineno}: expected record #{n + 1} (reordered, removed or inserted)", n
            if rec.get("prev") != prev:
                return False, f"{p}:{lineno}: chain broken: does not follow record #{n} (reordered or removed)", n
            if rec.get("hash") != _digest(rec):
                return False, f"{p}:{lineno}: hash mismatch: record #{n + 1} was edited", n
            prev = rec["hash"]
            n += 1
            if n in want:
                hashes[n] = prev
            if rec.get("action") == PRUNE and isinstance(rec.get("last"), int):
                pruned[rec["last"]] = str(rec.get("last_hash"))
            if rec.get("action") == RECOVERY:
                if rec.get("problem") == TAMPERED:
                    return False, (f"{p}:{lineno}: record #{n}: the janitor found this log tampered with "
                                   f"before this record: {rec.get('detail')}"), n
                notes.append(f"#{n}: recovered after a crash ({rec.get('detail')})")
    if first is not None and first["seq"] != 1:
        start = first["seq"] - 1
        if pruned.get(start) != first.get("prev"):
            return False, (f"{files[0]}: the oldest record kept is #{first['seq']}, but no audit-prune record "
                           f"says records up to #{start} were rotated out (older files removed)"), n
        notes.append(f"records #1–#{start} were rotated out (audit-prune)")
    if head is None:
        if n:
            return False, f"{head_path}: head file missing; cannot tell whether records were cut off the end", n
    elif head == "broken":
        return False, f"{head_path}: head file unreadable", n
    for what, where, mark in (("head", head_path, head), ("anchor", anchor, anc)):
        if not isinstance(mark, dict):
            continue
        if what == "anchor" and mark.get("log") not in (None, str(path)):
            continue  # the anchor of another log (a --file given by hand)
        if mark["seq"] > n:
            return False, (f"{path}: log ends at record #{n} but the {what} ({where}) says #{mark['seq']}: "
                           "records were cut off the end, the log was replaced, or the " + what + " was edited"), n
        if mark["seq"] not in hashes and mark["seq"] >= (first["seq"] if first else 1):
            hashes[mark["seq"]] = ""
        if hashes.get(mark["seq"], mark["hash"]) != mark["hash"]:
            return False, (f"{path}: record #{mark['seq']} is not the one the {what} ({where}) recorded: the log "
                           "was rewritten (edited and re-chained)"), n
        if mark["seq"] < n and what == "head":
            notes.append(f"the last append (records #{mark['seq'] + 1}–#{n}) was interrupted before its head "
                         "was updated; the next append records that")
    if anchor is not None and anc is None and isinstance(head, dict) and head.get("anchored"):
        return False, f"{anchor}: the anchor is missing (deleted) though the head says it was written", n
    if anc == "broken":
        return False, f"{anchor}: anchor unreadable", n
    if torn:
        notes.append(f"an append was interrupted mid-record ({torn} bytes after record #{n}); "
                     "the next append sets them aside")
    msg = f"{path}: {n} records, chain intact"
    if len(files) > 1:
        msg += f" across {len(files)} files"
    if anchor is not None and isinstance(anc, dict):
        msg += f", matches the anchor ({anchor})"
    return True, msg + "".join(f"\n  note: {x}" for x in notes), n
