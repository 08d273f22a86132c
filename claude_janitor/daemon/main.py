"""`janitor daemon`: keep the cache swept without polling.

Jobs (APScheduler 3, one worker thread, so two sweeps never overlap in this process):
  full   the periodic full sweep: scan everything, decide, act, and rebuild the index from what is on disk
         (the source of truth). Every ``sweep_interval`` (default 1d) or on ``sweep_cron``; also once at
         start and after a config reload. It runs in a short-lived process of its own (`janitor
         _daemon-full-sweep`, child_main → full_sweep_work) so that the memory a big scan takes (~60 MB for
         10k sessions) is given back when it ends; the daemon waits for it in its one worker thread (so no
         wake-up runs meanwhile), shares the sweep lock with it, forwards SIGTERM/SIGINT to it and reads
         back only a small JSON result. The child stops between sessions if the daemon dies
         (PR_SET_PDEATHSIG, and a check that its parent is still the daemon).
  wake   a one-off wake-up at the earliest moment an indexed session may expire. It re-reads only the
         sessions that are due, decides them, acts through sweep.execute (which re-checks every piece on
         disk before acting) and moves itself to the next due time.
  gone   a moment after transcripts disappear: those the janitor did not remove itself (per the audit log)
         are recorded as ``external-delete`` (e.g. Claude Code's own cleanup).

A watcher (watch.py: inotify on projects/ and each project dir) keeps the index (index.py) current as
transcripts come, grow, move and go.
When file events are unavailable or were lost (watch limits, queue overflow), wake-ups fall back to full
scans until a full scan has rebuilt the index.

Every sweep takes the same lock as `janitor sweep` (fs/locks.SweepLock); if a one-shot sweep holds it, the
daemon retries later rather than waiting in line. SIGTERM/SIGINT stop after the session in hand; SIGHUP
reloads the config. The daemon's state (pid, last/next sweep, next wake-up) is in JanitorDirs.daemon_state
for `janitor status`. Under systemd (Type=notify) it reports READY=1/RELOADING=1/STOPPING=1/STATUS= and
answers WATCHDOG_USEC pings.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import fcntl
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from claude_janitor import policy
from claude_janitor.cache.scan import rescan
from claude_janitor.config import janitor as config
from claude_janitor.config.paths import JanitorDirs, managed_policy_path
from claude_janitor.daemon.index import Entry, Index, Key, count_sessions
from claude_janitor.daemon.watch import Change, make_watcher, transcript_parts
from claude_janitor.durations import DurationError, human_duration, parse_duration
from claude_janitor.errors import ConfigError, ExitStatus, JanitorError, LockBusy
from claude_janitor.fs.procs import die_with_parent, pid_alive
from claude_janitor.model import Action, Decision, Outcome, Plan, Policy, Session
from claude_janitor.render import metrics

if TYPE_CHECKING:
    from claude_janitor.sweep.run import Env

log = logging.getLogger("janitor.daemon")

DEFAULT_INTERVAL = 86400.0
RETRY_BUSY = (5.0, 300.0)  # first and longest wait before retrying when a one-shot sweep holds the lock
RETRY_FAILED = (30.0, 3600.0)  # same, after a sweep failed
GONE_DELAY = 1.0  # let a burst of deletions settle before judging who made them
GONE_PATIENCE = 600.0  # how long to wait for a janitor sweep's result record before judging
WAKE_IN_PROCESS = 256  # a wake-up with more sessions due than this runs in a process of its own
MIN_STEP = 1.0  # a kept session is looked at again no sooner than this (no busy loop at the boundary)
RECHECK_CHANGED = 60.0  # a session changed or in use while acting: look again after this
RECHECK_FAILED = 3600.0
AUDIT_PATIENCE_PRUNE = 3600.0
REWATCH = 600.0  # while a root cannot be watched, try again this often (a stat or two)


# ---- systemd notification ----------------------------------------------------------------------------

def sd_notify(message: str) -> bool:
    """Send ``message`` (e.g. "READY=1") to the service manager at $NOTIFY_SOCKET; False if there is none.

    Never blocks: a notification the manager has no room for is dropped (a stalled reader must not stall
    the daemon; the next STATUS= or WATCHDOG=1 follows soon)."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr or addr[0] not in "/@":
        return False
    target = "\0" + addr[1:] if addr[0] == "@" else addr
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(target)
            s.send(message.encode(), socket.MSG_DONTWAIT)
        return True
    except OSError as e:
        log.debug("sd_notify(%r) failed: %s", message, e)
        return False


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings: half of systemd's $WATCHDOG_USEC when it is meant for this process
    (None without a watchdog)."""
    wd = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID")
    if not wd.isdigit() or int(wd) <= 0 or (pid is not None and pid != str(os.getpid())):
        return None
    return int(wd) / 2e6


class WatchdogPinger:
    """Sends WATCHDOG=1 every ``interval`` seconds from a thread of its own, so that pings keep flowing
    whatever the daemon is doing (a full sweep, a long archive, a busy index), as long as ``healthy()``
    says the daemon is still working. Stops pinging (so that systemd restarts it) when it is not."""

    def __init__(self, interval: float, healthy: Callable[[], bool]) -> None:
        self.interval = interval
        self.healthy = healthy
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="janitor-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        warned = False
        while True:
            if self.healthy():
                sd_notify("WATCHDOG=1")
            elif not warned:
                warned = True
                log.error("the scheduler's thread is gone: no more watchdog pings (systemd restarts the daemon)")
            if self._stop.wait(self.interval):
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


# ---- the daemon's instance lock and state file -----------------------------------------------------

def daemon_lock_path(dirs: JanitorDirs) -> Path:
    return dirs.state / "daemon.lock"


class DaemonLock:
    """One daemon per state dir: an flock held for the daemon's life (its pid written inside)."""

    def __init__(self, dirs: JanitorDirs) -> None:
        self.path = daemon_lock_path(dirs)
        self.fd = -1

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise LockBusy(f"a janitor daemon is already running (pid {pid or '?'}; lock {self.path})") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def running_pid(dirs: JanitorDirs) -> int | None:
    """The pid of the daemon holding this state dir's daemon lock, or None if no daemon holds it."""
    path = daemon_lock_path(dirs)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                pid = int(os.pread(fd, 32, 0).decode().strip())
            except ValueError:
                return -1
            return pid if pid_alive(pid) else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)




def read_state(dirs: JanitorDirs) -> dict[str, Any]:
    from claude_janitor.fs.saferead import STATE_MAX, InputError, read_input

    try:  # the janitor's own file in its private dir: bounded, non-blocking, a symlink is not followed
        raw = read_input(dirs.daemon_state, what="daemon state", limit=STATE_MAX, follow=False)
        data = json.loads(raw) if raw is not None else {}
    except (InputError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    from claude_janitor.fs.atomicfile import write_atomic

    write_atomic(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def status(dirs: JanitorDirs) -> dict[str, Any]:
    """What `janitor status` shows: is a daemon running, its last and next sweep, the index size."""
    st = read_state(dirs)
    pid = running_pid(dirs)
    out: dict[str, Any] = {
        "running": pid is not None,
        "pid": pid if pid and pid > 0 else None,
        "state_file": str(dirs.daemon_state),
        "index": str(dirs.index_db),
        "index_sessions": count_sessions(dirs.index_db),
    }
    for k in ("started", "stopped", "roots", "schedule", "last_sweep", "last_full_sweep", "next_sweep",
              "next_expiry", "sweeping", "reload_refused", "watching", "index_trusted", "version"):
        if k in st:
            out[k] = st[k]
    if pid is None:
        for k in ("next_sweep", "next_expiry", "sweeping"):
            out.pop(k, None)
    elif st.get("pid") == pid and isinstance(st.get("index_sessions"), int):
        # The running daemon's own count, written with its next expiry: one consistent snapshot (the
        # index file may already hold a session whose wake-up the state does not show yet).
        out["index_sessions"] = st["index_sessions"]
    return out


# ---- config --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Schedule:
    interval: float | None = DEFAULT_INTERVAL
    cron: str | None = None

    def describe(self) -> str:
        return f"cron {self.cron!r}" if self.cron else f"every {human_duration(self.interval)}"

    def trigger(self) -> Any:
        if self.cron:
            from apscheduler.triggers.cron import CronTrigger

            return CronTrigger.from_crontab(self.cron)
        from apscheduler.triggers.interval import IntervalTrigger

        return IntervalTrigger(seconds=self.interval or DEFAULT_INTERVAL, timezone=UTC)


def load_settings(env: Env) -> tuple[Policy, Schedule]:
    """The janitor config as the daemon uses it: the policy and the full-sweep schedule. ConfigError if bad."""
    pol = config.load_policy(env.config_path)  # as `janitor sweep` loads it
    user, managed = config.load_raw(env.config_path)
    # A managed policy that sets the schedule sets all of it (a fleet's cron is not mixed with a user's interval).
    raw = managed if {"sweep_interval", "sweep_cron"} & managed.data.keys() else user
    interval, cron = raw.data.get("sweep_interval"), raw.data.get("sweep_cron")
    where = str(raw.path) if raw.path else "config"
    if interval is not None and cron is not None:
        raise ConfigError(f"{where}: set sweep_interval or sweep_cron, not both")
    if cron is not None:
        try:
            from apscheduler.triggers.cron import CronTrigger

            CronTrigger.from_crontab(cron)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"{where}: sweep_cron: not a crontab expression ({e}); "
                              'use five fields like "30 3 * * *"') from None
        return pol, Schedule(None, cron)
    if interval is not None:
        try:
            secs = parse_duration(interval, allow_forever=False)
        except DurationError as e:
            raise ConfigError(f"{where}: sweep_interval: {e}") from None
        return pol, Schedule(secs)
    return pol, Schedule()


def shortest_expiry(pol: Policy) -> float | None:
    """A lower bound of how long after its last activity any session can expire under ``pol``
    (None: never). Used to schedule the first look at a session seen only by the watcher."""
    windows: list[float | None] = []
    # Without a janitor retention the window is Claude Code's cleanupPeriodDays, a whole number ≥ 1 day.
    windows.append(pol.retention.seconds if pol.retention is not None else 86400.0)
    windows += [r.retention for r in pol.rules if r.retention_set]
    finite = [w for w in windows if w is not None]
    if not finite:
        return None
    return max(min(finite), pol.grace)


def uses_keep_last(pol: Policy) -> bool:
    return bool(pol.keep_last) or any(r.keep_last for r in pol.rules)


def plan_for(env: Env, sessions: list[Session], now: float, pol: Policy) -> Plan:
    """Decide a subset of sessions (already read from disk) the way a full sweep decides them."""
    from claude_janitor.fs.safefs import validate_root
    from claude_janitor.sweep import run as sweep

    roots = [validate_root(r) for r in env.roots]
    # A broken Claude Code settings file keeps the sessions whose window depends on it (as in a full sweep).
    return sweep.plan_for(sessions, pol, now, roots, env.dirs)


# ---- who removed it? ----------------------------------------------------------------------------------

class AuditFollower:
    """Follows the audit log (from a position kept in the index) to learn which sessions janitor sweeps
    (this daemon or a one-shot) removed: a session that disappears without one is an external delete."""

    ACTIONS = {"delete", "archive"}

    def __init__(self, path: Path, index: Index) -> None:
        self.path = path
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
            f = open(self.path, "rb")
        except FileNotFoundError:
            self.ino, self.pos = 0, 0
            return None
        with f:
            st = os.fstat(f.fileno())
            older = b""
            if st.st_ino != self.ino or st.st_size < self.pos:
                older = self._rest_of_rotated()
                self.ino, self.pos = st.st_ino, 0  # a new or rewritten log: read it from the start
            f.seek(self.pos)
            data = f.read()
        self._skip = len(older)  # not part of the live log's position
        return older + data[:data.rfind(b"\n") + 1]  # only whole records

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
            return data[:data.rfind(b"\n") + 1]
        return b""

    def poll(self) -> None:
        data = self._read()
        if data is None:
            return
        now = time.monotonic()
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
        """"janitor" (removed by a sweep), "pending" (a sweep means to; no result yet) or None."""
        got = self.acts.get((root, sid))
        if got is None or got[0] == "not-janitor":
            return None
        return got[0]


class _Stopping(Exception):
    pass


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


# ---- one full sweep: the work itself (in the child process `janitor _daemon-full-sweep`) --------------

def act(plan: Plan, pol: Policy, env: Env, total: int, actors: dict[Action, Any] | None,
        should_stop: Callable[[], bool], index: Index | None = None, *, parallel: bool = True) -> list[Outcome]:
    """Guard, then sweep.execute (which re-checks each piece before acting; stops between sessions).

    ``index``: for a wake-up's subset of sessions, the index the guard judges the whole population from."""
    from claude_janitor.sweep.run import execute

    if not plan.to_act and not any(sd.remove for sd in plan.stores):
        return []
    msg = policy.guard(plan, pol, total)
    if msg and index is not None:
        # The mass-removal guard must judge the whole population, not just the sessions due now (more
        # kept sessions never make it trip, so this is only needed when it trips on the subset).
        # The sessions acted on are all timed and unpinned, so beyond the plan only whether one more timed
        # session exists matters ("all sessions at once"); the caps use ``total``.
        picked = {d.session.key for d in plan.decisions}
        e = index.timed_other(picked)
        # (counted as removable by age, policy.removable_by_age: the index does not say why a row is kept)
        extra = [] if e is None else [Decision(
            Session(e.session_id, e.root, e.project, last_record_time=e.last_activity), Action.KEEP, "indexed",
            expires_at=plan.now)]
        msg = policy.guard(Plan(now=plan.now, decisions=plan.decisions + extra), pol, total)
    if msg:
        log.error("not acting: %s (run `janitor sweep --force` by hand if this is intended)", msg)
        return []
    return execute(plan, pol, env, dry_run=False, actors=actors, should_stop=should_stop, parallel=parallel)


def entries_for(plan: Plan, outcomes: list[Outcome], now: float, pol: Policy) -> list[Entry]:
    """Index rows for the sessions of a plan that are still there, each with when to look again."""
    by_key = {o.decision.session.key: o for o in outcomes}
    low = shortest_expiry(pol)
    out: list[Entry] = []
    for d in plan.decisions:
        s = d.session
        o = by_key.get(s.key)
        if o is not None and o.result in ("ok", "vanished"):
            continue
        due: float | None = None
        kl = False
        if o is not None:
            due = now + (RECHECK_FAILED if o.result == "failed" else RECHECK_CHANGED)
            if o.result == "cancelled":
                due = now
        elif d.action is not Action.KEEP:
            due = None  # held back by the guard: left to the next full sweep
        elif d.expires_at is not None:
            due = d.expires_at
        elif d.by_keep_last:
            kl = True
        elif getattr(s, "in_use", None):
            due = now + RECHECK_CHANGED
        elif s.last_activity is not None and s.last_activity > now and low is not None:
            due = s.last_activity + low  # clock skew: look again once it is no longer in the future
        if due is not None:
            due = max(due, now + MIN_STEP)
        tr = s.transcript
        out.append(Entry(s.root, s.project, s.session_id, tr.rel if tr else None, s.last_activity, s.bytes,
                         due, kl, now, d.reason))
    return out


def incremental_work(env: Env, pol: Policy, now: float, index: Index, rows: list[Entry], *,
                     should_stop: Callable[[], bool], actors: dict[Action, Any] | None = None,
                     parallel: bool = True) -> tuple[list[Outcome], list[Entry]]:
    """A wake-up's work on the due ``rows``: read those sessions again (their whole projects under
    keep_last), decide, act, and update their index rows. Returns the outcomes and the indexed sessions
    found gone (for the daemon to judge). ``parallel=False``: act in this thread (the daemon's own process
    keeps no pool of removal threads)."""
    wanted: dict[str, set[tuple[str, str]]] = {}
    for e in rows:
        wanted.setdefault(e.root, set()).add((e.project, e.session_id))
    if uses_keep_last(pol):  # a session's rank depends on its whole project
        for root, project in {(e.root, e.project) for e in rows if e.project}:
            wanted[root] |= index.project_keys(root, project)
            wanted[root] |= _project_transcripts(root, project)
    sessions: list[Session] = []
    gone: list[Entry] = []
    for root, keys in wanted.items():
        for (project, sid), s in rescan(root, sorted(keys)).items():
            if should_stop():
                raise _Stopping()
            if s is None:
                e = index.get((root, project, sid))
                if e is not None:
                    gone.append(e)
            else:
                sessions.append(s)
    log.debug("incremental sweep: %d due, %d read", len(rows), len(sessions))
    plan = plan_for(env, sessions, now, pol)
    outcomes = act(plan, pol, env, max(index.count(), len(sessions)), actors, should_stop, index,
                   parallel=parallel)
    index.put(entries_for(plan, outcomes, now, pol))
    index.remove(_removed(outcomes))
    return outcomes, gone


def audit_since(path: Path, start: str | None) -> tuple[str, list[tuple[str, str]]]:
    """Where the audit log ends now ("ino:pos", whole records only) and the sessions restored by the
    records between ``start`` ("ino:pos") and there. Reads line by line: no record but a restore is parsed."""
    restored: list[tuple[str, str]] = []
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return "0:0", restored
    with f:
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
            if b'"restore"' in line:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict) and rec.get("action") == "restore":
                    restored.append((str(rec.get("root")), str(rec.get("session_id"))))
    return f"{ino}:{pos}", restored


def full_sweep_work(env: Env, pol: Policy, now: float, index: Index, *, should_stop: Callable[[], bool],
                    actors: dict[Action, Any] | None = None, audit_from: str | None = None) -> dict[str, Any]:
    """One full sweep as the daemon runs it: scan everything, decide, act, and rebuild the index from what
    is on disk. Returns a small JSON-able summary: the outcome counts, the sessions that disappeared
    without this sweep removing them (for the daemon to judge), and where the audit log stands after it.
    Raises _Stopping if asked to stop before acting."""
    from claude_janitor.sweep.run import build_plan, maintain_archives

    def check(_n: int = 0) -> None:
        if should_stop():
            raise _Stopping()

    before = {e.key: e for e in index.all()}
    plan, used, _ = build_plan(env, now, progress=check, pol=copy.deepcopy(pol))
    check()
    for w in plan.warnings:
        log.warning("%s", w)
    for err in (maintain_archives(env, used, now, dry_run=False) or {}).get("errors", []):
        log.warning("archives: %s", err)
    from claude_janitor.sweep.run import maintain_trash  # (ux) the trash is purged by full sweeps too

    for err in (maintain_trash(env, used, now, dry_run=False) or {}).get("errors", []):
        log.warning("trash: %s", err)
    outcomes = act(plan, used, env, len(plan.decisions), actors, should_stop)
    entries = entries_for(plan, outcomes, now, pol)
    roots = [str(r) for r in env.roots]
    for r in roots:
        index.replace_root(r, [e for e in entries if e.root == r], since=now)
    index.remove(_removed(outcomes))
    # Transcripts the index knew that are not there any more (the session may have left a folder), and the
    # sessions that vanished between the scan and the act: removed by someone else, judged by the daemon.
    scanned = {d.session.key: d.session for d in plan.decisions}
    vanished = {o.decision.session.key: o.decision.session for o in outcomes if o.result == "vanished"}
    ours = {o.decision.session.key for o in outcomes if o.result == "ok"}
    gone = [e for k, e in before.items() if e.rel and k not in ours
            and (k not in scanned or scanned[k].transcript is None or k in vanished)]
    for k, s in vanished.items():
        if k not in before and s.transcript is not None:
            gone.append(Entry(s.root, s.project, s.session_id, s.transcript.rel, s.last_activity, s.bytes))
    # The daemon's watcher does not report transcripts that go while a full sweep runs: those of the sessions
    # kept here that went since they were scanned are reported now (one lstat each).
    listed = {e.key for e in gone}
    gone += [e for e in entries if e.rel and e.key not in listed and not os.path.lexists(os.path.join(e.root, e.rel))]
    pos, restored = audit_since(env.dirs.audit_log, audit_from)
    vacuumed = index.vacuum_if_sparse()
    out: dict[str, Any] = _count(outcomes)
    from claude_janitor.render import metrics  # (ux: what the metrics file reports of a full sweep)

    sample = metrics.from_run(plan, outcomes, started=now, finished=time.time(), kind="full",
                              guard=policy.guard(plan, used, len(plan.decisions)) if plan.to_act else None)
    out.update({
        "metrics": metrics.to_json(sample),
        "sessions": len(plan.decisions), "indexed": len(entries),
        "cancelled": sum(o.result == "cancelled" for o in outcomes),
        "gone": [[e.root, e.project, e.session_id, e.rel, e.last_activity, e.bytes] for e in gone],
        "audit_pos": pos, "restored": [list(k) for k in restored], "index_vacuumed": vacuumed,
    })
    return out


# ---- the full sweep's process ---------------------------------------------------------------------------

CHILD_COMMAND = "_daemon-full-sweep"  # hidden `janitor` command: the daemon's full sweep in a process of its own


def child_main(roots: list[str], config_path: str | None, default_root: bool, now: float, parent_pid: int,
               lock_fds: list[int], audit_from: str | None, verbose: bool) -> int:
    """`janitor _daemon-full-sweep`: one full sweep for the daemon, which reads its JSON result on stdout.

    The daemon's policy comes pickled on stdin (the one it loaded, kept until SIGHUP); without it (or from
    another version of the janitor) the config is loaded as the daemon would. SIGTERM/SIGINT, the daemon's
    death (PR_SET_PDEATHSIG) or a new parent (the daemon died before that was set) stop the sweep between
    sessions. Exit 0 with a result (also when stopped), 2/… for a JanitorError, 3 if the sweep lock is
    held by another sweep; anything else is a crash."""
    stop = threading.Event()

    def on_signal(_sig: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the daemon reloads; its sweep goes on with what it has
    # The daemon blocks these in every thread (it takes them with sigwait) and the mask survives exec.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    die_with_parent(signal.SIGTERM)
    setup_logging(verbose)

    def should_stop() -> bool:
        return stop.is_set() or os.getppid() != parent_pid

    def emit(result: dict[str, Any]) -> None:
        import resource

        result["pid"] = os.getpid()
        result["max_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        try:
            sys.stdout.write(json.dumps(result) + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            # The daemon is gone (killed): nobody reads the result. Exit quietly, also at interpreter exit
            # (whose own flush of stdout would fail again).
            log.debug("the daemon is gone; its full sweep's result is dropped")
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

    from claude_janitor.config.paths import janitor_dirs
    from claude_janitor.fs.locks import SweepLocks, hold_inherited
    from claude_janitor.sweep.run import Env, recover, recover_interrupted

    env = Env(roots=[Path(r) for r in roots], dirs=janitor_dirs(), config_path=config_path,
              default_root=default_root)
    pol, due = _payload(sys.stdin.buffer.read())
    if should_stop():
        emit({"stopped": "start"})
        return ExitStatus.OK
    lock = None
    try:
        if not lock_fds:
            lock = SweepLocks(env.dirs.lock_file, roots, wait=0.0)
            lock.__enter__()
            for note in recover_interrupted(env):  # removals a crash left half way (staging.recover)
                log.warning("%s", note)
            recover(env)  # run by itself, not by a daemon (which settles the audit log before a sweep)
        else:
            hold_inherited(lock_fds)
        if pol is None:
            pol = load_settings(env)[0]
        index = Index(env.dirs.index_db)
        try:
            if due is None:
                emit(full_sweep_work(env, pol, now, index, should_stop=should_stop, audit_from=audit_from))
            else:  # a big wake-up: the due sessions only
                rows = [e for k in due if (e := index.get((str(k[0]), str(k[1]), str(k[2])))) is not None]
                outcomes, gone = incremental_work(env, pol, now, index, rows, should_stop=should_stop)
                pos, restored = audit_since(env.dirs.audit_log, audit_from)
                res = _incremental_result(outcomes, now, time.time())
                res.update({"gone": [[e.root, e.project, e.session_id, e.rel, e.last_activity, e.bytes]
                                     for e in gone], "audit_pos": pos, "restored": [list(k) for k in restored]})
                emit(res)
        finally:
            index.close()
        return ExitStatus.OK
    except _Stopping:
        emit({"stopped": "scan"})
        return ExitStatus.OK
    except LockBusy as e:
        emit({"error": str(e), "busy": True})
        return e.exit_code
    except JanitorError as e:
        emit({"error": str(e)})
        return e.exit_code
    except Exception as e:  # noqa: BLE001 - reported to the daemon, with the traceback in the log
        log.exception("full sweep failed")
        emit({"error": f"unexpected {type(e).__name__}: {e}", "crash": True})
        return ExitStatus.ACTIONS_FAILED
    finally:
        if lock is not None:
            lock.__exit__(None, None, None)


def _payload(data: bytes) -> tuple[Policy | None, list[Any] | None]:
    """What the daemon sent: its policy, if this version of the janitor can use it (else None: load the
    config), and the sessions due for a wake-up (None: a full sweep)."""
    if not data:
        return None, None
    import pickle

    from claude_janitor import __version__

    try:
        got = pickle.loads(data)  # noqa: S301 - from our own parent, over a pipe
        due = got.get("due")
        due = list(due) if isinstance(due, list | tuple) else None
        if got.get("version") == __version__ and isinstance(got.get("policy"), Policy):
            return got["policy"], due
    except Exception as e:  # noqa: BLE001 - e.g. the janitor was upgraded under a running daemon
        log.warning("cannot use the daemon's policy (%s): loading the config", e)
        return None, None
    log.warning("the daemon runs another version of the janitor: loading the config")
    return None, due


class ChildFailed(JanitorError):
    """The full sweep's process crashed, was killed, or said nothing usable."""


# ---- the daemon ------------------------------------------------------------------------------------

class Daemon:
    def __init__(self, env: Env, *, actors: dict[Action, Any] | None = None,
                 observer_factory: Any = None, debounce: float = 0.5, full_in_child: bool = True,
                 clock: Callable[[], float] = time.time) -> None:
        """``full_in_child``: run full sweeps in a short-lived process of their own (`janitor daemon` does,
        so that the memory a big scan takes is given back; False runs them in this process).
        ``clock``: "now" for every decision (tests move it instead of waiting for real due times)."""
        self.clock = clock
        self.env = env
        self.dirs = env.dirs
        self.roots = [str(r) for r in env.roots]
        self.policy, self.schedule = load_settings(env)
        self.actors = actors  # None: sweep.execute's (archive, and zstandard, loaded only when a plan archives)
        self.full_in_child = full_in_child
        self.child: Any = None  # the running full sweep's process (subprocess.Popen)
        self._child_lock = threading.Lock()
        self._sweep_lock: Any = None  # the SweepLock held by the sweep in progress
        self.root_lock: Any = None  # fs/locks.RootLock: this daemon's hold on each Claude dir
        # A full sweep is running: the transcripts it removes are not noted one by one as they go (at 100k
        # sessions that would be 75k index rows in this long-lived process); it reports what else went.
        self.in_full = False
        self.index = Index(self.dirs.index_db)
        self.follower = AuditFollower(self.dirs.audit_log, self.index)
        self.stop_event = threading.Event()
        self.watched_files = {str(self.dirs.pins_file): "pins",
                              str(Path(env.config_path) if env.config_path else self.dirs.config_file): "config",
                              str(managed_policy_path()): "config"}
        self._config_seen = self._config_stamp()
        self._pins = self._read_pins(quiet=True) or set()
        self.watcher = make_watcher(self.roots, self.on_changes, self.on_overflow, debounce=debounce,
                                    observer_factory=observer_factory, files=self.watched_files)
        self.scheduler: Any = None
        # Why the index cannot be trusted right now (a full scan is needed); None when it can.
        self.untrusted: str | None = "not built yet"
        self.gone: dict[Key, tuple[Entry, float, str]] = {}  # disappeared: entry, first seen, how
        self._lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._wake_at: float | None = None
        self._waking = False  # a wake-up is running in the worker thread: it reschedules itself once it ended
        self.sweeping: dict[str, Any] | None = None  # the sweep in progress (kind, since), for `janitor status`
        self.reload_error: dict[str, Any] | None = None  # the last refused reload, until one succeeds
        self.pinger: WatchdogPinger | None = None
        self._status_sent = ""
        self._failures = 0
        self._busy_retries = 0
        self._not_before = 0.0  # no wake-up before this (backing off after a busy lock or a failure)
        self.started = self.clock()
        self.last_sweep: dict[str, Any] | None = None
        self._last_sample: metrics.Sample | None = None  # what metrics_file last said (ux)
        self.last_full: float | None = None

    # ---- lifecycle --------------------------------------------------------------------------------

    def start(self, *, initial_sweep: bool = True) -> None:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        problems = self.watcher.start()
        for root, why in problems.items():
            log.warning("not watching %s: %s", root, why)
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None})
        self.scheduler.add_job(self.full_sweep, self.schedule.trigger(), id="full", name="full sweep")
        if initial_sweep:
            self.scheduler.add_job(self.full_sweep, "date", run_date=datetime.now(UTC), id="full-now",
                                   name="full sweep (start)")
        from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MAX_INSTANCES

        self.scheduler.add_listener(self._job_event, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MAX_INSTANCES)
        self.scheduler.start()
        interval = watchdog_interval()
        if interval is not None:
            self.pinger = WatchdogPinger(interval, self._healthy)
            self.pinger.start()
        log.info("daemon started: roots %s; full sweep %s", ", ".join(self.roots), self.schedule.describe())
        self.write_state()

    def stop(self) -> None:
        """Stop after the session in hand: nothing is left half done (a full sweep's process is told to stop
        too, and waited for)."""
        self.stop_event.set()
        self._signal_child(signal.SIGTERM)
        if self.scheduler is not None:
            # Not shutdown(wait=True): APScheduler holds its job-store lock while it waits, and the running
            # job (writing the state, putting the wake-up back) needs that lock: a deadlock. Wait for the
            # worker once the lock is free again.
            self.scheduler.shutdown(wait=False)
            for ex in getattr(self.scheduler, "_executors", {}).values():
                pool = getattr(ex, "_pool", None)
                if pool is not None:
                    pool.shutdown(wait=True)
        if self.pinger is not None:
            self.pinger.stop()
        self.watcher.stop()
        self.write_state(stopped=True)
        last = self._last_sample
        if last is not None and self.policy.metrics_file:  # daemon_up 0: the last sweep's numbers stay
            last.daemon_up = False
            why = metrics.write(self.policy.metrics_file, last)
            if why:
                log.warning("%s", why)
        self.index.close()
        log.info("daemon stopped")

    def reload(self) -> bool:
        """SIGHUP: re-read the config; on success re-plan everything with a full sweep."""
        try:
            pol, sched = load_settings(self.env)
        except JanitorError as e:
            log.error("config not reloaded, keeping the previous one: %s", e)
            self.reload_error = {"at": _iso(self.clock()), "error": str(e)}
            self.write_state()
            return False
        self.reload_error = None
        self.policy = pol
        if sched != self.schedule:
            self.schedule = sched
            self.scheduler.reschedule_job("full", trigger=sched.trigger())
        self.scheduler.add_job(self.full_sweep, "date", run_date=datetime.now(UTC), id="full-now",
                               name="full sweep (reload)", replace_existing=True)
        log.info("config reloaded; full sweep %s", self.schedule.describe())
        self.write_state()
        return True

    # ---- state ---------------------------------------------------------------------------------------

    def _job_time(self, job_id: str) -> float | None:
        if self.scheduler is None:
            return None
        try:
            job = self.scheduler.get_job(job_id)
        except Exception:  # noqa: BLE001 - scheduler shut down
            return None
        nrt = getattr(job, "next_run_time", None) if job else None
        return nrt.timestamp() if nrt else None

    def write_state(self, *, stopped: bool = False) -> None:
        with self._state_lock:
            self._write_state(stopped)

    def _write_state(self, stopped: bool) -> None:
        from claude_janitor import __version__

        nxt = [t for t in (self._job_time("full"), self._job_time("full-now"), self._job_time("full-retry"))
               if t is not None]
        data: dict[str, Any] = {
            "pid": os.getpid(),
            "version": __version__,
            "started": _iso(self.started),
            "roots": self.roots,
            "schedule": self.schedule.describe(),
            "last_sweep": self.last_sweep,
            "last_full_sweep": _iso(self.last_full),
            "next_sweep": None if stopped else _iso(min(nxt) if nxt else None),
            # The earliest due time in the index (not the wake-up job's time, which is gone from the scheduler
            # while the job waits for the worker): in the past only while a sweep is in progress.
            "next_expiry": None if stopped else _iso(self._wake_at),
            "sweeping": None if stopped else self.sweeping,
            "reload_refused": self.reload_error,
            "watching": {r: self.watcher.problems.get(r, "ok") for r in self.roots},
            "index_trusted": self.untrusted is None,
            "index_sessions": self.index.count(),
        }
        if stopped:
            data["stopped"] = _iso(self.clock())
        try:
            write_json_atomic(self.dirs.daemon_state, data)
        except OSError as e:
            log.warning("cannot write %s: %s", self.dirs.daemon_state, e)
        if not stopped:
            bits = [f"next sweep {data['next_sweep'] or '-'}", f"next expiry {data['next_expiry'] or '-'}",
                    f"{data['index_sessions']} sessions indexed"]
            if self.sweeping:
                bits.insert(0, f"{self.sweeping['kind']} sweep in progress since {self.sweeping['since']}")
            text = "STATUS=" + "; ".join(bits)
            if text != self._status_sent:
                self._status_sent = text
                sd_notify(text)

    # ---- scheduling ------------------------------------------------------------------------------------

    def _add_once(self, fn: Any, job_id: str, at: float, name: str) -> None:
        if self.scheduler is None or self.stop_event.is_set():
            return
        with contextlib.suppress(Exception):  # the scheduler may be shutting down
            self.scheduler.add_job(fn, "date", run_date=datetime.fromtimestamp(at, UTC), id=job_id, name=name,
                                   replace_existing=True)

    def reschedule_wake(self, *, force: bool = False) -> None:
        """Move the wake-up job to the earliest due time in the index (or remove it), and write the state.

        While a wake-up runs, the job is not touched: APScheduler would skip a new run of it that falls due
        before the running one has returned (max_instances=1), and that run would be lost. The wake-up
        reschedules itself once it has returned (``_job_event``), from what is due then."""
        with self._lock:
            due = self.index.next_due()
            if due is not None:
                due = max(due, self._not_before)
            changed = force or due != self._wake_at
            self._wake_at = due
            if changed and not self._waking and self.scheduler is not None and not self.stop_event.is_set():
                if due is None:
                    with contextlib.suppress(Exception):
                        self.scheduler.remove_job("wake")
                else:
                    self._add_once(self.wake, "wake", max(due, time.time()), "expiry wake-up")
        self.write_state()

    def _job_event(self, event: Any) -> None:
        """APScheduler: a job ended (called in the worker thread once the run no longer counts as running),
        or a run was skipped because the job was still running. Either way the wake-up is put back at the
        earliest due time: no expiry is ever left without a wake-up."""
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES

        if event.code == EVENT_JOB_MAX_INSTANCES:
            log.debug("%s: a run was due while it was running; it runs again once it ends", event.job_id)
            return
        self.reschedule_wake(force=True)
        give_back_memory()

    def _healthy(self) -> bool:
        """For the watchdog: the scheduler's thread is alive (a wedged or dead daemon stops pinging)."""
        thread = getattr(self.scheduler, "_thread", None)
        return thread is None or thread.is_alive()

    # ---- file events -------------------------------------------------------------------------------------

    def on_overflow(self) -> None:
        self.untrusted = "file events were lost (inotify queue overflow)"
        self._add_once(self.full_sweep, "full-now", self.clock() + 2.0, "full sweep (events lost)")

    def on_changes(self, changes: list[Change]) -> None:
        """Watcher batch → index. Runs in the watcher's flush thread."""
        now = self.clock()
        pol = self.policy
        low = shortest_expiry(pol)
        keep_last = uses_keep_last(pol)
        gone: list[Entry] = []
        dir_gone: list[Change] = []
        files = {ch.root for ch in changes if ch.kind == "file"}
        if "pins" in files:
            self.pins_changed()
        if "config" in files:
            self.config_changed()
        for ch in changes:
            if ch.kind == "dir-new" and self.scheduler is not None:
                log.info("%s/projects is there again: watching it, and rebuilding the index with a full sweep",
                         ch.root)
                self.untrusted = self.untrusted or f"{ch.root}/projects was recreated"
                self._add_once(self.full_sweep, "full-now", now + 1.0, "full sweep (projects/ is back)")
        for ch in sorted(changes, key=lambda c: c.kind != "write"):  # writes first: a move is not a delete
            if ch.kind in ("file", "dir-new"):
                continue
            if ch.kind == "dir-gone":
                dir_gone.append(ch)
                continue
            parts = transcript_parts(ch.rel)
            if parts is None:
                continue
            project, sid = parts
            try:
                st = os.lstat(os.path.join(ch.root, ch.rel))
            except OSError:
                st = None
            if st is None and self.in_full:
                continue  # gone during a full sweep: removed by it, or reported by it (full_sweep_work)
            if st is not None:  # written, or gone and already back
                if not _is_reg(st):
                    continue
                new = self.index.seen(ch.root, project, sid, ch.rel, st.st_mtime,
                                      None if low is None else st.st_mtime + low, now)
                if new:
                    log.debug("new session %s in %s", sid, project)
                    if keep_last:
                        self.index.wake_keep_last(ch.root, project, now + MIN_STEP)
            else:
                e = self.index.get((ch.root, project, sid))
                if e is not None:
                    gone.append(e)
        for ch in dir_gone:
            parts = ch.rel.split("/")
            rows = (self.index.in_project(ch.root, parts[1]) if len(parts) == 2
                    else [e for e in self.index.in_root(ch.root) if e.project])
            gone += [e for e in rows if not (e.rel and os.path.lexists(os.path.join(e.root, e.rel)))]
            if parts == ["projects"]:  # its watch is gone with it: rebuild (and re-watch) from a full scan
                self.untrusted = f"{ch.root}/projects was removed"
                self._add_once(self.full_sweep, "full-now", now + 5.0, "full sweep (projects/ removed)")
        if gone:
            self.note_gone(gone, "watch")
        self.reschedule_wake()
        if len(changes) > WAKE_IN_PROCESS:
            give_back_memory()  # a burst of new transcripts: what indexing them took goes back

    # ---- pins and config files -------------------------------------------------------------------

    def _read_pins(self, *, quiet: bool = False) -> set[str] | None:
        from claude_janitor.cache.pins import load_pins

        try:
            return load_pins(self.dirs.pins_file)
        except JanitorError as e:
            if not quiet:
                log.error("pins not re-read: %s (each sweep refuses to act until it is fixed)", e)
            return None

    def pins_changed(self) -> None:
        """The pins file changed (`janitor pin` / `unpin`): say so, and have the unpinned sessions decided
        again now (a pinned session is only looked at again at the next full sweep: it may be due now)."""
        new = self._read_pins()
        if new is None:
            return
        old, self._pins = self._pins, new
        pinned, unpinned = sorted(new - old), sorted(old - new)
        if not pinned and not unpinned:
            return

        def ids(xs: list[str]) -> str:
            return ", ".join(xs[:5]) + (f" and {len(xs) - 5} more" if len(xs) > 5 else "")

        log.info("pins changed:%s%s", f" pinned {ids(pinned)};" if pinned else "",
                 f" unpinned {ids(unpinned)} (decided again now)" if unpinned else "")
        if unpinned:
            self.index.wake_sessions(unpinned, self.clock())

    def _config_stamp(self) -> tuple[tuple[int, int, int] | None, ...]:
        out: list[tuple[int, int, int] | None] = []
        for path, tag in self.watched_files.items():
            if tag == "config":
                try:
                    st = os.stat(path)
                    out.append((st.st_ino, st.st_size, st.st_mtime_ns))
                except OSError:
                    out.append(None)
        return tuple(out)

    def config_changed(self) -> None:
        """A config file was written, replaced or removed: reload it as SIGHUP does."""
        stamp = self._config_stamp()
        if stamp == self._config_seen:
            return
        self._config_seen = stamp
        log.info("the config changed on disk: reloading")
        self.reload()

    def note_gone(self, entries: Iterable[Entry], how: str) -> None:
        """Sessions that disappeared: judged by the `gone` job a moment later."""
        now = self.clock()
        with self._lock:
            for e in entries:
                self.gone.setdefault(e.key, (e, now, how))
            if not self.gone:
                return
        self._add_once(self.judge_gone, "gone", now + GONE_DELAY, "judge disappeared sessions")

    # ---- jobs ---------------------------------------------------------------------------------------------

    def full_sweep(self) -> None:
        self._sweep(full=True)

    def wake(self) -> None:
        self._waking = True
        try:
            self._sweep(full=False)
        finally:
            self._waking = False

    def _recover(self) -> None:
        """What a killed sweep (this daemon's, a one-shot's) left unsaid in the audit log: said now."""
        from claude_janitor.sweep.run import recover, recover_interrupted

        try:  # removals a crashed sweep left half way first (staging.recover), then the log from the disk
            for note in recover_interrupted(self.env):
                log.warning("%s", note)
            done = recover(self.env)
        except OSError as e:
            log.error("cannot settle the audit log's unfinished intents: %s", e)
            return
        if done:
            log.info("audit log: %d intent(s) left by a killed run now have their result (what is on disk)",
                     len(done))

    def _sweep(self, *, full: bool) -> None:
        if self.stop_event.is_set():
            return
        from claude_janitor.fs.locks import SweepLock

        lock = SweepLock(self.dirs.lock_file, wait=0.0)
        try:
            if self.root_lock is not None:
                self.root_lock.acquire()  # a Claude dir that appeared since the start, or was busy then
            lock.__enter__()
        except LockBusy as e:
            self._busy_retries += 1
            delay = min(RETRY_BUSY[0] * 2 ** (self._busy_retries - 1), RETRY_BUSY[1])
            log.info("another sweep holds the lock (%s); trying again in %s", e, human_duration(delay))
            self._not_before = self.clock() + delay
            if full:
                self._add_once(self.full_sweep, "full-retry", self._not_before, "full sweep (retry)")
            self.reschedule_wake(force=True)
            return
        self._busy_retries = 0
        self._not_before = 0.0
        self._sweep_lock = lock
        self._recover()
        kind = "full" if full or self.untrusted else "incremental"
        started = self.clock()
        sample: dict[str, Any] | None = None
        summary: dict[str, Any] = {"kind": kind, "started": _iso(started)}
        self.sweeping = {"kind": kind, "since": _iso(started)}
        self.write_state()
        try:
            if kind == "full":
                if not full:
                    log.info("index not trusted (%s): full sweep instead", self.untrusted)
                res = self._full(started)
                summary.update({k: res[k] for k in ("acted", "failed", "skipped", "process", "max_rss_kb")
                                if k in res})
                sample = res.get("metrics")
            else:
                res = self._incremental(started)
                summary.update({k: res[k] for k in ("acted", "failed", "skipped", "process", "max_rss_kb")
                                if k in res})
                sample = res.get("metrics")
            self._failures = 0
        except _Stopping:
            summary["error"] = "stopped"
        except JanitorError as e:
            self._failures += 1
            summary["error"] = str(e)
            log.error("%s sweep failed: %s", kind, e)
            if isinstance(e, ChildFailed):
                # It may have acted on some sessions before it died: the index is rebuilt by the retry.
                self.untrusted = "the last full sweep failed"
        except Exception as e:  # noqa: BLE001 - the daemon outlives a failing sweep
            self._failures += 1
            summary["error"] = f"unexpected {type(e).__name__}: {e}"
            log.exception("%s sweep failed", kind)
            self.untrusted = self.untrusted or "the last sweep failed"
        finally:
            self._sweep_lock = None
            lock.__exit__(None, None, None)
        if self._failures:
            self._not_before = self.clock() + min(RETRY_FAILED[0] * 2 ** (self._failures - 1), RETRY_FAILED[1])
            if kind == "full" and self.untrusted:
                self._add_once(self.full_sweep, "full-retry", self._not_before, "full sweep (retry)")
        summary["finished"] = _iso(self.clock())
        self._metrics(sample, summary, started)
        self.sweeping = None
        if summary.get("acted") or kind == "full" or summary.get("error"):
            self.last_sweep = summary
            if summary.get("acted") or summary.get("error"):
                log.info("%s sweep: %s", kind, ", ".join(f"{k} {v}" for k, v in summary.items()
                                                         if k not in ("kind", "started", "finished")))
        if self.gone:
            self._add_once(self.judge_gone, "gone", self.clock() + GONE_DELAY, "judge disappeared sessions")
        self.reschedule_wake(force=True)

    def _metrics(self, sample: dict[str, Any] | None, summary: dict[str, Any], started: float) -> None:
        """metrics_file after a sweep (ux): a full sweep's numbers, an incremental one's outcomes, or the
        error; daemon_up says whether the daemon runs. An incremental wake-up that did nothing leaves the
        file as the last sweep wrote it."""
        if not self.policy.metrics_file:
            return
        if sample is None and not summary.get("error") and summary.get("kind") != "full":
            return
        s = metrics.from_json(sample) if sample else metrics.from_run(
            None, [], started=started, finished=self.clock(), guard=None, error=summary.get("error"),
            kind=summary.get("kind", "full"))
        if sample and summary.get("error"):
            s.success, s.failures = False, s.failures + 1
        s.finished = self.clock()
        s.duration = max(0.0, s.finished - started)
        s.daemon_up = True
        from claude_janitor.removal.trash import trash_dir, usage

        tdir = trash_dir(self.dirs)
        s.trash_bytes = usage(tdir)[1] if tdir.is_dir() else None
        self._last_sample = s
        why = metrics.write(self.policy.metrics_file, s)
        if why:
            log.warning("%s", why)

    def rewatch(self) -> None:
        """Some root could not be watched (projects/ missing, watch limits): try again now and then."""
        if self.stop_event.is_set():
            return
        self.watcher.ensure()
        if self.watcher.needs_retry:
            self._add_once(self.rewatch, "rewatch", self.clock() + REWATCH, "retry watching")
        elif not self.watcher.problems:
            log.info("all roots are watched again: rebuilding the index with a full sweep")
            self._add_once(self.full_sweep, "full-now", self.clock(), "full sweep (watching again)")

    def _check_stop(self, _n: int = 0) -> None:
        if self.stop_event.is_set():
            raise _Stopping()

    def _full(self, now: float) -> dict[str, Any]:
        """A full sweep (in a process of its own unless ``full_in_child`` is off); then this process takes
        from its result only what it needs: counts, where the audit log stands, what disappeared."""
        self.follower.poll()
        self.follower.restored.clear()  # a full sweep treats restored sessions like any other
        self.watcher.ensure()
        if self.watcher.needs_retry:  # watch limits, no inotify: no event tells when to try again
            self._add_once(self.rewatch, "rewatch", self.clock() + REWATCH, "retry watching")
        was_untrusted = self.untrusted
        self.untrusted = None if self.watcher.healthy else "not all roots are watched"
        start = f"{self.follower.ino}:{self.follower.pos}"
        if self.full_in_child:
            res = self._in_child(now, start)
        else:
            self.in_full = True
            try:
                res = full_sweep_work(self.env, self.policy, now, self.index, should_stop=self.stop_event.is_set,
                                      actors=self.actors, audit_from=start)
            finally:
                self.in_full = False
        self._took(res, "full scan")
        self.last_full = now
        if was_untrusted and self.untrusted is None:
            log.info("index rebuilt from a full scan: %d sessions", self.index.count())
        return res

    def _took(self, res: dict[str, Any], how: str) -> dict[str, Any]:
        """Take from a sweep's result (run in a process of its own) what this process needs: where the audit
        log stands, what disappeared without the sweep removing it; its error, raised."""
        if res.get("stopped") in ("start", "scan"):
            raise _Stopping()
        if res.get("error"):
            if res.get("busy"):
                raise LockBusy(res["error"])
            raise (ChildFailed if res.get("crash") else JanitorError)(res["error"])
        self.follower.adopt(res["audit_pos"], [tuple(k) for k in res.get("restored", ())])
        gone = [Entry(*g) for g in res.get("gone", ())]
        if gone:
            self.note_gone(gone, how)
        return res

    def _in_child(self, now: float, audit_from: str, due: list[Key] | None = None) -> dict[str, Any]:
        """Run `janitor _daemon-full-sweep` (a full sweep; with ``due``, a wake-up of those sessions) and
        wait for it; its JSON result (a crash raises ChildFailed). Meanwhile the watcher leaves what goes to
        the child (``in_full``), which reports it."""
        self.in_full = True
        try:
            return self._run_child(now, audit_from, due)
        finally:
            self.in_full = False

    def _run_child(self, now: float, audit_from: str, due: list[Key] | None) -> dict[str, Any]:
        import pickle
        import subprocess

        from claude_janitor import __version__

        cmd = [sys.executable, "-m", "claude_janitor", CHILD_COMMAND, "--now", repr(now),
               "--parent-pid", str(os.getpid()), "--audit-from", audit_from]
        for r in self.roots:
            cmd += ["--claude-dir", r]
        if self.env.config_path:
            cmd += ["--config", str(self.env.config_path)]
        if self.env.default_root:
            cmd.append("--default-root")
        if log.isEnabledFor(logging.DEBUG):
            cmd.append("-v")
        fds: tuple[int, ...] = ()
        if self._sweep_lock is not None and self._sweep_lock.fd >= 0:
            # The child holds the sweep lock and the Claude dirs' locks with us (and on its own if we die).
            fds = (self._sweep_lock.fd, *(self.root_lock.fds if self.root_lock is not None else ()))
            for fd in fds:
                cmd += ["--lock-fd", str(fd)]
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
        payload = pickle.dumps({"version": __version__, "policy": self.policy, "due": due})
        # Started (and waited for) from the scheduler's worker thread: PR_SET_PDEATHSIG fires when the thread
        # that started the child ends, and this one lives as long as the daemon (it is blocked here meanwhile).
        with self._child_lock:
            if self.stop_event.is_set():
                raise _Stopping()
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, pass_fds=fds)
            self.child = proc
        log.debug("%s: process %d", "wake-up" if due else "full sweep", proc.pid)
        sd_notify(f"STATUS={'wake-up' if due else 'full sweep'} in progress (process {proc.pid})")
        try:
            out, _ = proc.communicate(payload)
        finally:
            with self._child_lock:
                self.child = None
                if proc.poll() is None:  # communicate() was interrupted: never leave it behind unwaited
                    proc.terminate()
                    proc.wait()
        rc = proc.returncode
        res: dict[str, Any] | None = None
        lines = out.decode(errors="replace").strip().splitlines()
        if lines:
            with contextlib.suppress(ValueError):
                got = json.loads(lines[-1])
                res = got if isinstance(got, dict) else None
        if res is None or (rc != 0 and not res.get("error")):
            how = f"exit status {rc}"
            if rc < 0:
                with contextlib.suppress(ValueError):
                    how = f"killed by {signal.Signals(-rc).name}"
            raise ChildFailed(f"the full sweep's process {proc.pid} failed ({how})")
        res["process"] = proc.pid
        return res

    def _signal_child(self, sig: int) -> None:
        with self._child_lock:
            if self.child is not None and self.child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.child.send_signal(sig)

    def _incremental(self, now: float) -> dict[str, Any]:
        """A wake-up: act on the sessions due now (in this process, or in a process of its own for a big
        batch); the outcome counts."""
        rows = self.index.due(now + 0.5)
        if not rows:
            return _count([])
        self.follower.poll()
        held = [e for e in rows if (e.root, e.session_id) in self.follower.restored]
        if held:
            # Restored sessions keep their old times: they are left alone until the next full sweep, as
            # they would be until the next `janitor sweep` without the daemon (resume or pin them first).
            self.index.put([dataclasses.replace(e, due=None) for e in held])
            rows = [e for e in rows if e not in held]
            if not rows:
                return _count([])
        if len(rows) > WAKE_IN_PROCESS and self.full_in_child:
            # A big batch goes to a process of its own, as a full sweep does: the memory (and the removal
            # workers) it takes are given back when it ends, and this long-lived process stays small.
            res = self._in_child(now, f"{self.follower.ino}:{self.follower.pos}", due=[e.key for e in rows])
            return self._took(res, "re-read")
        outcomes, gone = incremental_work(self.env, copy.deepcopy(self.policy), now, self.index, rows,
                                          should_stop=self.stop_event.is_set, actors=self.actors,
                                          parallel=False)
        if gone:
            self.note_gone(gone, "re-read")
        return _incremental_result(outcomes, now, self.clock())

    def judge_gone(self) -> None:
        """Transcripts that disappeared: removed by a janitor sweep (per the audit log), moved to another
        project, or removed by someone else (recorded as ``external-delete``, once per transcript)."""
        from claude_janitor.sweep.run import audit_log

        self.follower.poll()
        now = self.clock()
        records: list[dict[str, Any]] = []
        done: list[Key] = []
        removed: list[Key] = []
        with self._lock:
            items = list(self.gone.items())
        later = False
        for key, (e, since, how) in items:
            root, project, sid = key
            if e.rel is None or os.path.lexists(os.path.join(root, e.rel)):
                done.append(key)  # no transcript to judge, or it is back (moved back, restored)
                if e.rel is None and (cur := self.index.get(key)) is not None and cur.rel is None:
                    self.index.remove([key])  # leftovers without a transcript, gone too: nothing to say
                continue
            who = self.follower.state(root, sid)
            if who == "pending" and now - since < GONE_PATIENCE:
                later = True  # a sweep means to remove it and has not said how that went yet
                continue
            done.append(key)
            if who == "janitor":
                removed.append(key)  # a sweep removed the whole session
                continue
            moved = [x for x in self.index.find_sid(root, sid) if x.project != project
                     and x.rel and os.path.lexists(os.path.join(root, x.rel))]
            cur = self.index.get(key)
            if cur is not None and cur.rel == e.rel:
                # Whatever is left of the session (its folder, side files) is looked at again soon.
                self.index.put([Entry(root, project, sid, None, cur.last_activity, cur.bytes, now + MIN_STEP,
                                      False, cur.decided, cur.reason)])
            if moved or who is not None:
                continue
            records.append({
                "action": "external-delete", "phase": "observed", "session_id": sid, "root": root,
                "project": project, "paths": [e.rel], "bytes": e.bytes,
                "last_activity": _iso(e.last_activity),
                "reason": "removed by another process, not by the janitor (e.g. Claude Code's own cleanup)",
                "detected_by": how, "result": "gone"})
        self.index.remove(removed)
        with self._lock:
            for k in done:
                self.gone.pop(k, None)
            pending = bool(self.gone)
        if records:
            audit_log(self.env).append(records)
            log.info("%d session(s) removed by another process: recorded as external-delete", len(records))
        if pending:
            self._add_once(self.judge_gone, "gone", now + (5.0 if later else GONE_DELAY),
                           "judge disappeared sessions")
        self.reschedule_wake()


def give_back_memory() -> None:
    """Return the C heap's free memory to the system (glibc malloc_trim): a long-lived process that once
    handled a burst keeps it otherwise. Cheap (a few ms); a no-op where there is no glibc."""
    global _trim
    if _trim is None:
        try:
            import ctypes

            _trim = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):
            _trim = False
    if _trim:
        _trim(0)


_trim: Any = None


def _is_reg(st: os.stat_result) -> bool:
    import stat

    return stat.S_ISREG(st.st_mode)


def _incremental_result(outcomes: list[Outcome], started: float, finished: float) -> dict[str, Any]:
    """A wake-up's counts, and what metrics_file says of it (ux) when it acted on anything."""
    res: dict[str, Any] = _count(outcomes)
    if outcomes:
        res["metrics"] = metrics.to_json(metrics.from_run(None, outcomes, started=started, finished=finished,
                                                          guard=None, kind="incremental"))
    return res


def _removed(outcomes: list[Outcome]) -> list[Key]:
    return [o.decision.session.key for o in outcomes if o.result in ("ok", "vanished")]


def _count(outcomes: list[Outcome]) -> dict[str, int]:
    out = {"acted": 0, "failed": 0, "skipped": 0}
    for o in outcomes:
        if o.result in ("ok", "vanished"):
            out["acted"] += 1
        elif o.result == "failed":
            out["failed"] += 1
        else:
            out["skipped"] += 1
    return out


def _project_transcripts(root: str, project: str) -> set[tuple[str, str]]:
    out = set()
    try:
        with os.scandir(os.path.join(root, "projects", project)) as it:
            for e in it:
                if e.name.endswith(".jsonl") and len(e.name) > 6:
                    out.add((project, e.name[:-6]))
    except OSError:
        pass
    return out


# ---- the foreground process ----------------------------------------------------------------------------

class _JournalFormatter(logging.Formatter):
    """Under systemd: "<prio>message" (journald reads the priority); elsewhere a timestamped line."""

    PRIO = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}

    def __init__(self, journal: bool) -> None:
        super().__init__("%(message)s" if journal else "%(asctime)s janitor[%(process)d] %(levelname)s %(message)s")
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return f"<{self.PRIO.get(record.levelno, 6)}>{text}" if self.journal else text


LOG_MAX_BYTES = 1024 * 1024  # --log-file: rotated at this size
LOG_KEEP = 3  # --log-file: this many rotated files are kept (daemon.log.1 … .3): at most ~4 MiB in all


class RotatingStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """The daemon's log in a file of its own (launchd has no journal: ``--log-file``): the file is this
    process's stdout and stderr (so a traceback or a warning lands there too), and it is rotated once it
    reaches ``max_bytes``: PATH → PATH.1 → … → PATH.<keep>, the oldest dropped, a new PATH opened in place."""

    def __init__(self, path: str, max_bytes: int = LOG_MAX_BYTES, keep: int = LOG_KEEP) -> None:
        self.path, self.max_bytes, self.keep = path, max_bytes, keep
        self._reopen()
        super().__init__(sys.stderr)

    def _reopen(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        sys.stdout.flush()
        sys.stderr.flush()
        for target in (1, 2):
            os.dup2(fd, target)  # inheritable copies: the full-sweep process writes there too
        os.close(fd)

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        try:
            if os.fstat(2).st_size >= self.max_bytes:
                self.rotate()
        except OSError:
            pass  # a log that cannot be rotated must not stop the daemon: it grows instead

    def rotate(self) -> None:
        for n in range(self.keep, 0, -1):
            src = self.path if n == 1 else f"{self.path}.{n - 1}"
            with contextlib.suppress(FileNotFoundError):
                os.replace(src, f"{self.path}.{n}")
        self._reopen()


def setup_logging(verbose: bool, log_file: str | None = None, log_max_bytes: int = LOG_MAX_BYTES) -> None:
    handler = RotatingStderr(log_file, log_max_bytes) if log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JournalFormatter(bool(os.environ.get("JOURNAL_STREAM"))))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("apscheduler").setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("watchdog").setLevel(logging.WARNING)
    # watchdog re-adds a watch when a dir is renamed quickly (e.g. a restore's temp dir); harmless.
    warnings.filterwarnings("ignore", message="Callback with id", category=RuntimeWarning)


SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


def run(env: Env, *, verbose: bool = False, log_file: str | None = None,
        log_max_bytes: int = LOG_MAX_BYTES) -> int:
    """`janitor daemon`: run in the foreground until SIGTERM/SIGINT. Returns the exit code."""
    setup_logging(verbose, log_file, log_max_bytes)
    from claude_janitor.fs.locks import RootLock

    lock = DaemonLock(env.dirs)
    lock.acquire()
    roots_lock = RootLock(env.roots)
    try:
        roots_lock.acquire()  # one daemon per Claude dir, whatever its state dir
    except LockBusy as e:
        if "daemon" in str(e):
            lock.release()
            raise LockBusy(f"{e}: not starting a second daemon on it") from None
        log.info("%s: sweeping it once that sweep is over", e)  # a one-shot sweep: taken before our first
    # Signals are taken synchronously by the main thread (sigwait); every thread started from here on
    # inherits the blocked mask, so no handler ever runs in the middle of a sweep.
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        d = Daemon(env)
        d.root_lock = roots_lock
        d.start()
        sd_notify("READY=1")
        while True:
            sig = signal.sigwait(SIGNALS)
            if sig == signal.SIGHUP:
                log.info("SIGHUP: reloading the config")
                sd_notify(f"RELOADING=1\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")
                d.reload()
                sd_notify("READY=1")
                continue
            log.info("%s: stopping after the session in hand", signal.Signals(sig).name)
            sd_notify("STOPPING=1")
            d.stop()
            return ExitStatus.OK
    finally:
        roots_lock.release()
        lock.release()
