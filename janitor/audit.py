"""Append-only, hash-chained JSONL audit log. No transcript content ever goes in.

Each record carries ``seq``, ``prev`` (the previous record's hash) and ``hash`` = sha256 of the record's
canonical JSON without ``hash``. A sidecar ``<log>.head`` holds the last seq and hash, so cutting records
off the end is detected too. ``verify`` reports the first broken record.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GENESIS = "0" * 64


def _digest(rec: dict[str, Any]) -> str:
    body = {k: v for k, v in rec.items() if k != "hash"}
    canon = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canon.encode()).hexdigest()


def _now_iso(t: float | None = None) -> str:
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1000):03d}Z"


@dataclass
class AuditLog:
    path: Path
    sinks: tuple[str, ...] = ()

    @property
    def head_path(self) -> Path:
        return self.path.with_name(self.path.name + ".head")

    def append(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Append records atomically as one batch (flock'd, fsync'd), chaining each to the last."""
        if not records:
            return []
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            seq, prev = self._head()
            out = []
            lines = []
            for r in records:
                seq += 1
                rec = {"seq": seq, "time": r.pop("time", None) or _now_iso(), **r, "prev": prev}
                rec["hash"] = _digest(rec)
                prev = rec["hash"]
                out.append(rec)
                lines.append(json.dumps(rec, sort_keys=True, ensure_ascii=True))
            os.write(fd, ("\n".join(lines) + "\n").encode())
            os.fsync(fd)
            tmp = self.head_path.with_name(self.head_path.name + ".tmp")
            tmp.write_text(json.dumps({"seq": seq, "hash": prev}) + "\n")
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.head_path)
        finally:
            os.close(fd)
        if self.sinks:
            from .sinks import forward

            forward(self.sinks, out)
        return out

    def _head(self) -> tuple[int, str]:
        try:
            head = json.loads(self.head_path.read_text())
            return int(head["seq"]), str(head["hash"])
        except FileNotFoundError:
            pass
        except (ValueError, KeyError, TypeError):
            pass
        # No (or a broken) head: continue from the log's own last record.
        last = None
        for rec in iter_records(self.path):
            last = rec
        if last is None:
            return 0, GENESIS
        return int(last.get("seq", 0)), str(last.get("hash", GENESIS))

    def verify(self) -> tuple[bool, str, int]:
        return verify(self.path)


def iter_records(path: Path) -> Iterator[dict[str, Any]]:
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        for line in f:
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError:
                    yield {"_unparseable": True}


def verify(path: Path) -> tuple[bool, str, int]:
    """(ok, message, records) for the log at ``path``."""
    if not path.exists():
        if path.with_name(path.name + ".head").exists():
            return False, f"{path}: the log is missing but its head file exists (log deleted)", 0
        return True, f"{path}: no audit log yet (nothing recorded)", 0
    prev = GENESIS
    n = 0
    with open(path, "rb") as f:
        data = f.read()
    if data and not data.endswith(b"\n"):
        return False, f"{path}: the last record is cut off (truncated log)", n
    for lineno, line in enumerate(data.split(b"\n")[:-1], 1):
        try:
            rec = json.loads(line)
        except ValueError:
            return False, f"{path}:{lineno}: not valid JSON (edited or corrupted)", n
        if not isinstance(rec, dict) or rec.get("seq") != n + 1:
            return False, f"{path}:{lineno}: expected record #{n + 1} (reordered, removed or inserted)", n
        if rec.get("prev") != prev:
            return False, f"{path}:{lineno}: chain broken: does not follow record #{n} (reordered or removed)", n
        if rec.get("hash") != _digest(rec):
            return False, f"{path}:{lineno}: hash mismatch: record #{n + 1} was edited", n
        prev = rec["hash"]
        n += 1
    head_path = path.with_name(path.name + ".head")
    try:
        head = json.loads(head_path.read_text())
    except FileNotFoundError:
        return False, f"{head_path}: head file missing; cannot tell whether records were cut off the end", n
    except ValueError:
        return False, f"{head_path}: head file unreadable", n
    if head.get("seq") != n or head.get("hash") != prev:
        return False, (f"{path}: log ends at record #{n} but the head says #{head.get('seq')}: "
                       "records were cut off the end (truncated) or the head was edited"), n
    return True, f"{path}: {n} records, chain intact", n
