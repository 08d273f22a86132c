"""Who removed it? Following the audit log to tell the janitor's removals from someone else's."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from claude_janitor.daemon.clock import REAL, Clock
from claude_janitor.daemon.index import Index

AUDIT_PATIENCE_PRUNE = 3600.0  # what a sweep did to a session is forgotten this long after it was read


class AuditFollower:
    """Follows the audit log (from a position kept in the index) to learn which sessions janitor sweeps
    (this daemon or a one-shot) removed: a session that disappears without one is an external delete."""

    ACTIONS = {"delete", "archive"}

    def __init__(self, path: Path, index: Index, clock: Clock = REAL) -> None:
        self.path = path
        self.clock = clock
        self.index = index
        self.acts: dict[tuple[str, str], tuple[str, float]] = {}  # (root, sid) -> (state, when read)
        self.restored: set[tuple[str, str]] = set()  # (root, sid) brought back by `janitor restore`
        self.ino, self.pos = 0, 0
        self._skip = 0
        saved = index.get_meta("audit_pos")
        if saved:
            try:
                ino, pos = saved.split(":")
                self.ino, self.pos = int(ino), int(pos)
            except ValueError:
                pass
        else:
            with contextlib.suppress(OSError):
                st = os.stat(path)
                self.ino, self.pos = st.st_ino, st.st_size  # nothing before our first start matters

    def _read(self) -> bytes | None:
        """The whole records appended since the last read (None if the log is gone)."""
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                older = b""
                if st.st_ino != self.ino or st.st_size < self.pos:
                    older = self._rest_of_rotated()
                    self.ino, self.pos = st.st_ino, 0  # a new or rewritten log: read it from the start
                f.seek(self.pos)
                data = f.read()
        except FileNotFoundError:  # (opening it: nothing in the block raises it)
            self.ino, self.pos = 0, 0
            return None
        self._skip = len(older)  # not part of the live log's position
        return older + data[: data.rfind(b"\n") + 1]  # only whole records

    def _rest_of_rotated(self) -> bytes:
        """The log was rotated since the last read: what was appended to it before that (the newest rotated
        file is the old inode, renamed; it stays uncompressed until the next rotation)."""
        from claude_janitor.audit.records import rotated_files

        for p in reversed(rotated_files(self.path)):
            try:
                with open(p, "rb") as f:
                    if os.fstat(f.fileno()).st_ino != self.ino:
                        continue
                    f.seek(self.pos)
                    data = f.read()
            except OSError:
                continue
            return data[: data.rfind(b"\n") + 1]
        return b""

    def poll(self) -> None:
        data = self._read()
        if data is None:
            return
        now = self.clock.monotonic()
        for line in data.splitlines():
            self._take(line, now)
        self._advance(len(data) - self._skip, now)

    def adopt(self, pos: str, restored: Iterable[tuple[str, str]] = ()) -> None:
        """After a full sweep (run in a process of its own): stand where that sweep left the log. Its own
        delete/archive records are not read back (150k lines for a 100k-session cache); the sweep reported
        the restore records among them. Sound because the sweep held the sweep lock: no other janitor sweep
        wrote delete/archive records meanwhile, and what the sweep removed it also removed from the index."""
        try:
            ino, at = pos.split(":")
            self.ino, self.pos = int(ino), int(at)
        except ValueError:
            return
        for key in restored:
            key = (str(key[0]), str(key[1]))
            self.restored.add(key)
            self.acts.pop(key, None)
        self.index.set_meta("audit_pos", f"{self.ino}:{self.pos}")

    def _take(self, line: bytes, now: float) -> None:
        try:
            rec = json.loads(line)
        except ValueError:
            return
        if not isinstance(rec, dict):
            return
        key = (str(rec.get("root")), str(rec.get("session_id")))
        if rec.get("action") == "restore":
            self.restored.add(key)
            self.acts.pop(key, None)  # whatever a sweep did to it before is history now
        if rec.get("action") not in self.ACTIONS:
            return
        if rec.get("phase") == "intent":
            self.acts[key] = ("pending", now)
        elif rec.get("phase") == "result":
            result = rec.get("result")
            # "interrupted" + "gone": the run that meant to remove it was killed; found gone afterwards
            mine = result == "ok" or (result == "interrupted" and rec.get("found") == "gone")
            self.acts[key] = ("janitor" if mine else "not-janitor", now)

    def _advance(self, n: int, now: float) -> None:
        self.pos += n
        self.index.set_meta("audit_pos", f"{self.ino}:{self.pos}")
        for k, (_, t) in list(self.acts.items()):
            if now - t > AUDIT_PATIENCE_PRUNE:
                del self.acts[k]

    def state(self, root: str, sid: str) -> str | None:
        """ "janitor" (removed by a sweep), "pending" (a sweep means to; no result yet) or None."""
        got = self.acts.get((root, sid))
        if got is None or got[0] == "not-janitor":
            return None
        return got[0]


def audit_since(path: Path, start: str | None) -> tuple[str, list[tuple[str, str]]]:
    """Where the audit log ends now ("ino:pos", whole records only) and the sessions restored by the
    records between ``start`` ("ino:pos") and there. Reads line by line: no record but a restore is parsed."""
    restored: list[tuple[str, str]] = []
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            ino, pos = st.st_ino, 0
            if start:
                with contextlib.suppress(ValueError):
                    a, b = (int(x) for x in start.split(":"))
                    if a == st.st_ino and b <= st.st_size:
                        pos = b
            f.seek(pos)
            for line in f:
                if not line.endswith(b"\n"):
                    break  # a record being written: not whole yet
                pos += len(line)
                if b'"restore"' in line and (key := _restored(line)) is not None:
                    restored.append(key)
    except FileNotFoundError:  # (opening it: nothing in the block raises it)
        return "0:0", restored
    return f"{ino}:{pos}", restored


def _restored(line: bytes) -> tuple[str, str] | None:
    """(root, session id) if ``line`` is a restore record."""
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    if isinstance(rec, dict) and rec.get("action") == "restore":
        return str(rec.get("root")), str(rec.get("session_id"))
    return None
