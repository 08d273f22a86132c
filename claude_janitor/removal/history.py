"""Claude Code's prompt history (``history.jsonl``): opt-in pruning, and putting archived lines back.

Claude Code appends one JSON line per prompt (``{display, pastedContents, timestamp (ms), project,
sessionId}``) under the proper-lockfile lock folder ``history.jsonl.lock`` (a mkdir lock, stale once its
mtime is 10 s old; the holder refreshes it), and never trims the file for ordinary users. The janitor
rewrites it the way Claude Code's own (HIPAA) prune does:

1. read the file without the lock and decide (pure: ``plan_lines``); nothing to drop, nothing written;
2. take the lock folder (waiting for a live holder, taking over one stale for more than 10 s, refreshing
   it every 2 s while held);
3. re-open the file: same inode, and the part already read unchanged (sha256); what was appended since is
   kept as it is;
4. write ``history.jsonl.tmp.<8hex>`` beside it with the original's mode, fsync, check the file did not
   grow meanwhile, rename it over the original, fsync the dir; release the lock.

Any doubt (a symlink, another inode, the read part changed, the lock lost or not obtained) keeps the file as
it is and says why. Lines are dropped only when they are whole JSON objects with the right ``sessionId``
(a session the janitor deleted) or with a numeric ``timestamp`` older than the window; for an archived
session only the very lines stored in its archive are dropped. Malformed lines are kept.

This module decides and rewrites; the lock folder is history_lock.py's, reading and parsing the lines (and
the per-session line index archiving uses) history_lines.py's.
"""

from __future__ import annotations

import errno
import hashlib
import math
import os
import secrets
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from claude_janitor import testhooks
from claude_janitor.fs.atomicfile import write_atomic_at
from claude_janitor.fs.tree import DIR_FLAGS
from claude_janitor.removal.history_lines import MAX_READ, NAME, Index, parse, read_all, split_lines, time_ms
from claude_janitor.removal.history_lock import LOCK, LOCK_WAIT, HistoryBusy, Lock


class HistoryChanged(Exception):
    """The file is not the one read (replaced, rewritten, or grew while being rewritten): nothing changed."""


@dataclass
class HistoryResult:
    """What pruning (or putting lines back) did to one Claude dir's history.jsonl."""

    root: str
    result: str = "nothing to do"  # ok | dry-run | nothing to do | kept: <why> | failed: <why>
    lines: int = 0  # lines read
    dropped: int = 0  # by session (deleted or archived) and by age
    dropped_sessions: int = 0
    dropped_age: int = 0
    kept_archived: int = 0  # lines of an archived session not found in its archive: kept
    added: int = 0  # lines put back (restore)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# ---- deciding (pure) -------------------------------------------------------------------------------------


@dataclass
class Drop:
    """What to drop: every line of ``deleted`` sessions; of ``archived`` sessions, only the exact lines their
    archives hold; and lines older than ``cutoff_ms``."""

    deleted: set[str] = field(default_factory=set)
    archived: dict[str, set[bytes]] = field(default_factory=dict)
    cutoff_ms: float | None = None

    def __bool__(self) -> bool:
        return bool(self.deleted or self.archived or self.cutoff_ms is not None)


def plan_lines(lines: list[bytes], drop: Drop, res: HistoryResult) -> list[bytes] | None:
    """The lines to keep (None: nothing to drop). Pure; counts into ``res``."""
    keep: list[bytes] = []
    res.lines = len(lines)
    for line in lines:
        rec = parse(line)
        if rec is None:
            keep.append(line)
            continue
        sid = rec.get("sessionId")
        if isinstance(sid, str) and sid in drop.deleted:
            res.dropped_sessions += 1
            continue
        if isinstance(sid, str) and sid in drop.archived:
            if _norm(line) in drop.archived[sid]:
                res.dropped_sessions += 1
                continue
            res.kept_archived += 1
        t = time_ms(rec)
        if drop.cutoff_ms is not None and t is not None and t < drop.cutoff_ms:
            res.dropped_age += 1
            continue
        keep.append(line)
    res.dropped = res.dropped_sessions + res.dropped_age
    return keep if res.dropped else None


def _norm(line: bytes) -> bytes:
    return line.rstrip(b"\r\n")


def merge_back(lines: list[bytes], restored: Iterable[bytes], res: HistoryResult) -> list[bytes] | None:
    """``lines`` with the ``restored`` lines not already there put back in timestamp order (existing lines
    keep their order; a restored line goes before the first later line). None: nothing to add. Pure."""
    have = {_norm(x) for x in lines}
    add = []
    for r in restored:
        n = _norm(r)
        if n and n not in have:
            have.add(n)
            add.append(n + b"\n")
    if not add:
        return None
    res.added = len(add)

    def t(line: bytes) -> float:
        rec = parse(line)
        v = time_ms(rec) if rec else None
        return math.inf if v is None else v

    add.sort(key=t)
    out: list[bytes] = []
    i = 0
    for line in lines:
        lt = t(line)
        while i < len(add) and lt != math.inf and t(add[i]) < lt:
            out.append(add[i])
            i += 1
        out.append(line)
    if out and not out[-1].endswith(b"\n"):
        out[-1] += b"\n"
    out += add[i:]
    return out


# ---- rewriting ------------------------------------------------------------------------------------------------


def _open(dir_fd: int) -> tuple[int, os.stat_result]:
    fd = os.open(NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise HistoryChanged(f"{NAME} is not a regular file")
    return fd, st


def rewrite(
    root: str,
    transform: Callable[[list[bytes]], list[bytes] | None],
    *,
    dry_run: bool = False,
    lock_wait: float = LOCK_WAIT,
) -> bool:
    """Replace ``root``/history.jsonl by ``transform(lines)`` (None: leave it), as described in the module
    docstring. Lines appended after the first read are kept after the transformed ones. True if rewritten
    (or, in a dry run, if it would be). Raises HistoryBusy/HistoryChanged (nothing changed) or OSError."""
    dfd = os.open(root, DIR_FLAGS)
    try:
        try:
            fd, st = _open(dfd)
        except FileNotFoundError:
            return False
        try:
            if st.st_size > MAX_READ:
                raise HistoryChanged(f"{NAME} is over {MAX_READ >> 20} MiB; left alone")
            data = read_all(fd, st.st_size)
        finally:
            os.close(fd)
        # Whole lines only: a line being appended right now (or one never finished) is left to the tail,
        # which is re-read under the lock and kept as it is.
        data = data[: data.rfind(b"\n") + 1]
        new = transform(split_lines(data))
        if new is None or dry_run:
            return new is not None
        testhooks.point("history-read")
        lock = Lock(dfd)
        lock.acquire(lock_wait)
        try:
            testhooks.point("history-locked")
            _replace(dfd, st, data, new, lock)
        finally:
            lock.release()
        return True
    finally:
        os.close(dfd)


def _replace(dfd: int, st: os.stat_result, data: bytes, new: list[bytes], lock: Lock) -> None:
    fd, now = _open(dfd)
    try:
        if now.st_ino != st.st_ino or now.st_dev != st.st_dev:
            raise HistoryChanged(f"{NAME} was replaced since it was read")
        if now.st_size < len(data) or hashlib.sha256(read_all(fd, len(data))).digest() != hashlib.sha256(data).digest():
            raise HistoryChanged(f"{NAME} was rewritten since it was read")
        tail = os.pread(fd, now.st_size - len(data), len(data)) if now.st_size > len(data) else b""
    finally:
        os.close(fd)

    def unchanged() -> None:
        testhooks.point("history-written")
        last = os.stat(NAME, dir_fd=dfd, follow_symlinks=False)
        if (last.st_ino, last.st_size, last.st_mtime_ns) != (now.st_ino, now.st_size, now.st_mtime_ns):
            raise HistoryChanged(f"{NAME} was written to while being rewritten")
        if lock.lost or not lock.held():
            raise HistoryBusy(f"{LOCK} was lost while rewriting")

    write_atomic_at(
        dfd,
        NAME,
        b"".join(new) + tail,
        mode=stat.S_IMODE(now.st_mode),
        tmp_name=f"{NAME}.tmp.{secrets.token_hex(4)}",
        owner=(now.st_uid, now.st_gid) if os.geteuid() == 0 else None,
        before_rename=unchanged,
    )


# ---- the sweep's and restore's entry points ------------------------------------------------------------------


def prune(root: str, drop: Drop, *, dry_run: bool) -> HistoryResult:
    """Drop the lines ``drop`` names from one Claude dir's history; never raises (the result says why not)."""
    res = HistoryResult(root)
    if not drop:
        return res

    def transform(lines: list[bytes]) -> list[bytes] | None:
        for k in ("lines", "dropped", "dropped_sessions", "dropped_age", "kept_archived"):
            setattr(res, k, 0)
        return plan_lines(lines, drop, res)

    try:
        done = rewrite(root, transform, dry_run=dry_run)
    except (HistoryBusy, HistoryChanged) as e:
        res.result = f"kept: {e}; nothing changed (the next sweep tries again)"
        return res
    except OSError as e:
        if e.errno == errno.ELOOP:
            res.result = f"kept: {NAME} is a symlink, not followed; nothing changed"
        else:
            res.result = f"failed: {e.strerror or e}; nothing changed"
        return res
    res.result = ("dry-run" if dry_run else "ok") if done else "nothing to do"
    return res


def put_back(root: str, lines: list[bytes]) -> HistoryResult:
    """Restore: merge a session's archived lines back into history.jsonl (those not already there), in
    timestamp order, under the lock. A missing history.jsonl is created (0600, as Claude Code does)."""
    res = HistoryResult(root)
    if not lines:
        return res
    dfd = os.open(root, DIR_FLAGS)
    try:
        try:
            os.close(
                os.open(NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
            )
        except FileExistsError:
            pass
    finally:
        os.close(dfd)
    try:
        done = rewrite(root, lambda cur: merge_back(cur, lines, res))
    except (HistoryBusy, HistoryChanged) as e:
        res.result = f"failed: {e}; the lines were not put back (restore again to retry)"
        return res
    res.result = "ok" if done else "nothing to do"
    return res


def after_sweep(
    decisions: list[Any], outcomes: list[Any], pol: Any, now: float, *, dry_run: bool, audit: Any = None
) -> list[HistoryResult]:
    """[history]: once the sessions are acted on, drop from each Claude dir's history.jsonl the lines of the
    sessions this run removed (deleted: all their lines; archived: the lines their archive holds) and, with
    ``retention``, the lines older than it. One intent and one result audit record per Claude dir changed
    (counts only). ``decisions``: the plan's (every Claude dir of the run is looked at for ``retention``)."""
    hp = pol.history
    if not hp.enabled:
        return []
    drops: dict[str, Drop] = {}
    index = Index()
    for d in decisions:
        drops.setdefault(d.session.root, Drop())
    for o in outcomes if hp.removed_sessions else []:
        s = o.decision.session
        if o.result not in ("ok", "dry-run"):
            continue
        drop = drops.setdefault(s.root, Drop())
        if o.archive:
            from claude_janitor.archive.format import ArchiveInvalid
            from claude_janitor.archive.reader import read_history

            try:
                drop.archived[s.session_id] = {_norm(x) for x in read_history(Path(o.archive))}
            except (ArchiveInvalid, OSError):
                continue  # lines not known to be in the archive: kept
        elif o.decision.action.value == "archive":  # a dry run: what would be archived would go
            drop.archived[s.session_id] = {_norm(x) for x in index.lines_of(s.root, s.session_id)}
        else:
            drop.deleted.add(s.session_id)
    out = []
    for root, drop in sorted(drops.items()):
        if hp.retention is not None:
            drop.cutoff_ms = (now - hp.retention) * 1000.0
        if not drop:
            continue
        base = {
            "action": "prune-history",
            "root": root,
            "session_ids": sorted(drop.deleted | set(drop.archived)),
            "reason": "[history] "
            + ", ".join(
                x
                for x in (
                    "removed_sessions" if hp.removed_sessions else "",
                    f"retention {hp.retention:g}s" if hp.retention is not None else "",
                )
                if x
            ),
        }
        if audit is not None and not dry_run:
            audit.append([{**base, "phase": "intent", "result": "pending"}])
        res = prune(root, drop, dry_run=dry_run)
        if audit is not None and not dry_run:
            audit.append(
                [
                    {
                        **base,
                        "phase": "result",
                        "result": res.result.split(":")[0],
                        "detail": res.result,
                        "lines": res.lines,
                        "dropped": res.dropped,
                        "dropped_sessions": res.dropped_sessions,
                        "dropped_age": res.dropped_age,
                        "kept_archived": res.kept_archived,
                    }
                ]
            )
        out.append(res)
    return out
