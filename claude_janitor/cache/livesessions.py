"""Claude Code's registry of running sessions: ``<config dir>/sessions/<pid>.json``.

Claude Code holds no open file and no lock on a transcript, not even mid-reply: the only sign that a
session is live is the record each running process keeps in ``sessions/<pid>.json`` (``pid``,
``sessionId``, ``procStart`` = field 22 of ``/proc/<pid>/stat``, ``kind``, ``status``, ``pidDomain`` …),
removed when it exits. A record counts as live the way Claude Code itself counts it: its pid is alive
(``kill(pid, 0)``) and its ``procStart`` is that process's start time — or it was written in another pid
namespace or machine (``pidDomain``), which cannot be checked from here. A dead pid, or a pid reused by
another process (start time differs), protects nothing.

Where there is no ``/proc`` (macOS), the start time cannot be compared with what Claude Code wrote; a
record whose pid is alive is then taken as live (the keeping side: a reused pid keeps a session one
sweep longer, never loses it).

Reads only; the cost is one listdir and one small read per running Claude Code process.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any

from claude_janitor.cache.ids import canonical_id
from claude_janitor.fs.procs import pid_alive

REGISTRY = "sessions"
MAX_RECORD = 64 * 1024  # a record is a few hundred bytes; anything bigger is not one
RECENT_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class LiveSession:
    pid: int
    session_id: str
    kind: str | None
    status: str | None
    why: str  # why it counts as live, for the report

    @property
    def reason(self) -> str:
        extra = ", ".join(x for x in (self.kind, self.status) if x)
        return f"Claude Code is running it, pid {self.pid}{f' ({extra})' if extra else ''}: {self.why}"


def proc_start(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), as Claude Code records it;
    None where there is no /proc or the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read(4096)
    except OSError:
        return None
    # comm (field 2) is in parentheses and may itself contain spaces and ')': split after the last ')'
    rest = data[data.rfind(b")") + 2 :].split()
    return rest[19].decode() if len(rest) > 19 else None  # fields 3.. → index 0..; field 22 = index 19


_HAS_PROC = os.path.isdir("/proc/self")
_domain: str | None = None


def _my_pid_domain() -> str | None:
    """The "linux:<machine-id>:pid:[<ns>]" Claude Code would write on this machine, in this pid namespace."""
    global _domain
    if _domain is None:
        try:
            with open("/etc/machine-id") as f:
                mid = f.read().strip()
            ns = os.readlink("/proc/self/ns/pid")
        except OSError:
            _domain = ""
        else:
            _domain = f"linux:{mid}:{ns}"
    return _domain or None


PID_LIMIT = 1 << 31  # pids are C ints (Linux pid_max is at most 4194304)


def _read_record(dfd: int, name: str) -> dict[str, Any] | None:
    from claude_janitor.fs.saferead import InputError, read_input

    try:  # non-blocking, a regular file, bounded, no symlink followed (saferead)
        data = read_input(name, what="session record", limit=MAX_RECORD, follow=False, dir_fd=dfd)
    except (InputError, OSError):
        return None
    if data is None:
        return None
    try:
        rec = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return rec if isinstance(rec, dict) else None


def judge(rec: dict[str, Any], name: str) -> LiveSession | None:
    """The live session a registry record stands for, or None (stale, or not a record)."""
    pid, sid = rec.get("pid"), rec.get("sessionId")
    if (
        isinstance(pid, bool)
        or not isinstance(pid, int)
        or not 0 < pid < PID_LIMIT
        or not isinstance(sid, str)
        or not sid
    ):
        return None  # (a pid beyond any kernel's range would overflow kill())
    if name != f"{pid}.json":
        return None  # Claude Code names each record after its own pid
    kind = rec.get("kind") if isinstance(rec.get("kind"), str) else None
    status = rec.get("status") if isinstance(rec.get("status"), str) else None
    domain = rec.get("pidDomain")
    mine = _my_pid_domain()
    if isinstance(domain, str) and domain and mine and domain != mine:
        return LiveSession(
            pid,
            sid,
            kind,
            status,
            f"registered in {REGISTRY}/{name} by another machine or pid "
            f"namespace ({domain}), which cannot be checked from here",
        )
    if not pid_alive(pid):
        return None
    recorded = rec.get("procStart")
    if _HAS_PROC:
        now = proc_start(pid)
        if now is None:
            return None  # exited since kill()
        if recorded is not None and str(recorded) != now:
            return None  # the pid was reused by another process
        return LiveSession(pid, sid, kind, status, f"{REGISTRY}/{name}, process running")
    return LiveSession(
        pid, sid, kind, status, f"{REGISTRY}/{name}, process running (its start time cannot be checked here)"
    )


@dataclass
class Registry:
    """The live sessions registered under one Claude config dir, by session id, and what the registry
    dir looked like when read (so that a re-check costs one stat while nothing changed)."""

    root: str
    live: dict[str, LiveSession]
    stamp: tuple[int, int, int] | None  # (ino, mtime_ns, ctime_ns) of sessions/, None if absent
    read_ns: int = 0  # when it was read (time.time_ns)

    def changed(self) -> bool:
        """Could a process have started or ended since? The dir's times come from a coarse clock, so a dir
        changed within RECENT before the read is read again too."""
        now = _stamp(self.root)
        return now != self.stamp or (now is not None and now[1] >= self.read_ns - RECENT_NS)


def _stamp(root: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(os.path.join(root, REGISTRY), follow_symlinks=False)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns)


def read(root: str) -> Registry:
    """Every live session registered under ``root``. Unreadable, malformed or stale records are skipped."""
    read_ns = time.time_ns()
    stamp = _stamp(root)
    live: dict[str, LiveSession] = {}
    if stamp is None:
        return Registry(root, live, None, read_ns)
    try:
        dfd = os.open(os.path.join(root, REGISTRY), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return Registry(root, live, stamp, read_ns)
    try:
        names = os.listdir(dfd)
        for name in names:
            if not name.endswith(".json") or not name[:-5].isdigit():
                continue
            rec = _read_record(dfd, name)
            got = judge(rec, name) if rec is not None else None
            if got is not None and canonical_id(got.session_id) not in live:
                live[canonical_id(got.session_id)] = got
    except OSError:
        pass
    finally:
        os.close(dfd)
    return Registry(root, live, stamp, read_ns)


def still_live(reg: Registry, session_id: str) -> LiveSession | None:
    """Re-check one session right before acting on it: the registry is read again only if its dir
    changed since ``reg`` was read (a Claude Code process started or ended); else one stat."""
    if reg.changed():
        fresh = read(reg.root)
        reg.live, reg.stamp, reg.read_ns = fresh.live, fresh.stamp, fresh.read_ns
    return reg.live.get(canonical_id(session_id))
