"""Is another process using a session right now?

A session Claude Code has registered as running (``sessions/<pid>.json`` with a live pid: see
livesessions.py; Claude Code itself keeps nothing open), or whose transcript another process holds open for
writing or has locked (Linux: /proc; elsewhere not detected), belongs to a live session: it is never
deleted or archived, whatever its age.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from claude_janitor.cache import livesessions
from claude_janitor.cache.ids import canonical_id
from claude_janitor.model import Session


@dataclass
class InUse:
    """Files open for writing or locked by other processes: by (dev, ino), and by the top-level piece
    (relative to its root) that the open file lies inside."""

    inodes: dict[tuple[int, int], str] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    registries: dict[str, livesessions.Registry] = field(default_factory=dict)  # root → Claude Code's

    def pieces(self, roots: list[str]) -> dict[tuple[str, str], str]:
        """(root, piece rel) → reason, for every open path inside one of ``roots``."""
        out: dict[tuple[str, str], str] = {}
        real = [(r, os.path.realpath(r).rstrip("/") + "/") for r in roots]  # /proc shows resolved paths
        for path, reason in self.paths.items():
            for r, prefix in real:
                if not path.startswith(prefix):
                    continue
                parts = path[len(prefix) :].split("/")
                depth = 3 if parts[0] == "projects" else 2
                for d in range(1, min(depth, len(parts)) + 1):
                    out[(r, "/".join(parts[:d]))] = reason
        return out

    def why(self, session: Session, by_piece: dict[tuple[str, str], str], *, recheck: bool = False) -> str | None:
        """Why ``session`` is in use, or None. ``recheck``: right before acting, look at Claude Code's
        registry again if it changed since it was read (one stat otherwise)."""
        reg = self.registries.get(session.root)
        if reg is not None:
            live = (
                livesessions.still_live(reg, session.session_id)
                if recheck
                else reg.live.get(canonical_id(session.session_id))
            )
            if live is not None:
                return live.reason
        if not by_piece:  # nothing open under the roots (the usual case): only locks, known by inode
            for is_dir, dev, ino in session.pieces.inodes() if self.inodes else ():
                if not is_dir and (hit := self.inodes.get((dev, ino))):
                    return hit
            return None
        for p in session.pieces:
            hit = by_piece.get((session.root, p.rel))
            if hit is None and not p.is_dir:
                hit = self.inodes.get((p.dev, p.ino))
            if hit:
                return hit
        return None


def mark_in_use(sessions: list[Session], roots: list[str], inuse: InUse | None = None) -> InUse:
    """Set ``session.in_use`` for every session another process is using (``inuse``: a snapshot of
    ``roots`` already read, e.g. by scan_in_use_ahead; else one is read now)."""
    inuse = scan_in_use(roots) if inuse is None else inuse
    by_piece = inuse.pieces(roots)
    for s in sessions:
        s.in_use = inuse.why(s, by_piece)
    return inuse


def _dev_from_majmin(text: str) -> int | None:
    try:
        major, minor = (int(x, 16) for x in text.split(":"))
    except ValueError:
        return None
    return os.makedev(major, minor)


def scan_in_use(roots: list[str] | None = None) -> InUse:
    """Files other processes have open for writing (from /proc/*/fd; only those under ``roots`` when
    given) or locked (/proc/locks), by inode and, for those open under ``roots``, by path.

    A lock is known by inode only; its holder has the file open (a lock goes with its last open file),
    so the path of a locked file — at any depth of a session — comes from the fd of whoever has it open,
    read-only fds included."""
    prefixes = tuple(os.path.realpath(r).rstrip("/") + "/" for r in roots) if roots is not None else ("/",)
    out = InUse()
    for r in roots or ():
        out.registries[r] = livesessions.read(r)
    if not os.path.isdir("/proc/self/fd"):
        return out
    me = os.getpid()
    locked = _locks(me)
    out.inodes.update(locked)
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return out
    for pid in pids:
        if pid != me:
            _open_files(pid, prefixes, locked, out)
    return out


def scan_in_use_ahead(roots: list[str]) -> Callable[[], tuple[float, InUse]]:
    """scan_in_use(roots), begun now on a thread of its own; the callable returned waits for it and gives
    (the monotonic time it began, the snapshot). For the daemon's wake-ups: reading /proc/locks waits for
    the kernel (a grace period of its RCU, 7-20 ms on a VM, whatever the number of sessions), which then
    overlaps the re-read of the due sessions instead of following it."""
    began = time.monotonic()
    box: list[InUse | BaseException] = []

    def run() -> None:
        try:
            box.append(scan_in_use(roots))
        except BaseException as e:  # handed to the caller, raised there
            box.append(e)

    t = threading.Thread(target=run, name="janitor-in-use", daemon=True)
    t.start()

    def wait() -> tuple[float, InUse]:
        t.join()
        got = box[0]
        if isinstance(got, BaseException):
            raise got
        return began, got

    return wait


def _locks(me: int) -> dict[tuple[int, int], str]:
    """(dev, inode) → who holds a lock on it, from /proc/locks (this process's own locks left out)."""
    locked: dict[tuple[int, int], str] = {}
    try:
        with open("/proc/locks") as f:
            for line in f:
                parts = line.split()
                # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF" (blocked waiters have "->")
                if "->" in parts or len(parts) < 6:
                    continue
                dev_s, _, ino_s = parts[5].rpartition(":")
                dev = _dev_from_majmin(dev_s)
                if dev is None or parts[4] == str(me):
                    continue
                locked[(dev, int(ino_s))] = f"locked ({parts[1]}) by process {parts[4]}"
    except (OSError, ValueError):
        pass
    return locked


def _open_files(pid: int, prefixes: tuple[str, ...], locked: dict[tuple[int, int], str], out: InUse) -> None:
    """Process ``pid``'s fds under ``prefixes``: open for writing, or (read-only) on a locked file."""
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return
    for fd in fds:
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
            if not target.startswith(prefixes):
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                flags_line = next((ln for ln in f if ln.startswith("flags:")), "")
            flags = int(flags_line.split()[1], 8) if flags_line else 0
            read_only = flags & os.O_ACCMODE == os.O_RDONLY
            if read_only and not locked:
                continue
            st = os.stat(f"{fd_dir}/{fd}")
        except (OSError, ValueError, IndexError):
            continue
        if read_only:
            reason = locked.get((st.st_dev, st.st_ino))
            if reason is None:
                continue
        else:
            reason = f"open for writing by process {pid}"
            out.inodes[(st.st_dev, st.st_ino)] = reason
        out.paths[target] = reason
