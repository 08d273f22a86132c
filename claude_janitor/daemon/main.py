"""`janitor daemon`: keep the cache swept without polling.

Jobs (schedule.py; one worker thread, so two sweeps never overlap in this process):
  full   the periodic full sweep: scan everything, decide, act, and rebuild the index from what is on disk
         (the source of truth); also once at start and after a config reload. It runs in a short-lived
         process of its own (child.py) so that the memory a big scan takes is given back when it ends; the
         daemon waits for it in its one worker thread (so no wake-up runs meanwhile), shares the sweep lock
         with it, forwards SIGTERM/SIGINT to it and reads back only a small JSON result.
  wake   a one-off wake-up at the earliest moment an indexed session may expire. It re-reads only the
         sessions that are due, decides them, acts through sweep.execute (which re-checks every piece on
         disk before acting) and moves itself to the next due time (work.py).
  gone   a moment after transcripts disappear: those the janitor did not remove itself (per the audit log,
         follower.py) are recorded as ``external-delete`` (gone.py).

A watcher (watch.py: inotify on projects/ and each project dir) keeps the index (index.py) current as
transcripts come, grow, move and go (events.py). When file events are unavailable or were lost (watch
limits, queue overflow), wake-ups fall back to full scans until a full scan has rebuilt the index.

Every sweep takes the same lock as `janitor sweep` (fs.locks.SweepLock); if a one-shot sweep holds it, the
daemon retries later rather than waiting in line (schedule.Backoff). SIGTERM/SIGINT stop after the session
in hand; SIGHUP reloads the config (loop.py). The daemon's state is in JanitorDirs.daemon_state for
`janitor status` (state.py). Under systemd (Type=notify) it reports READY=1/RELOADING=1/STOPPING=1/STATUS=
and answers WATCHDOG_USEC pings (notify.py). Every "now" is its clock's (clock.py).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from claude_janitor.daemon.child import ChildRunner
from claude_janitor.daemon.clock import REAL, Clock
from claude_janitor.daemon.events import WatchedFiles, apply_changes
from claude_janitor.daemon.follower import AuditFollower
from claude_janitor.daemon.gone import GONE_DELAY, GoneJudge
from claude_janitor.daemon.index import Entry, Index, Key
from claude_janitor.daemon.notify import WatchdogPinger, watchdog_interval
from claude_janitor.daemon.schedule import Backoff, Jobs, load_settings
from claude_janitor.daemon.state import StateFile
from claude_janitor.daemon.sweeper import REWATCH, WAKE_IN_PROCESS, Sweeper
from claude_janitor.daemon.watch import Change, make_watcher
from claude_janitor.errors import JanitorError
from claude_janitor.model import Action
from claude_janitor.render import metrics
from claude_janitor.timefmt import iso_offset

if TYPE_CHECKING:
    from claude_janitor.fs.locks import RootLock
    from claude_janitor.sweep.plan import Env

log = logging.getLogger("janitor.daemon")


class Daemon:
    """The daemon's state and its jobs; the sweeps themselves are sweeper.Sweeper's."""

    def __init__(self, env: Env, *, actors: dict[Action, Any] | None = None, observer_factory: Any = None,
                 debounce: float = 0.5, full_in_child: bool = True, clock: Clock = REAL,
                 root_lock: RootLock | None = None) -> None:  # fmt: skip
        """``full_in_child``: run full sweeps in a short-lived process of their own (`janitor daemon` does,
        so that the memory a big scan takes is given back; False runs them in this process).
        ``clock``: "now" for every decision (tests move it instead of waiting for real due times).
        ``root_lock``: this daemon's hold on each Claude dir (taken again before each sweep, for a Claude
        dir that appeared since, or was busy)."""
        self.clock = clock
        self.env = env
        self.dirs = env.dirs
        self.roots = [str(r) for r in env.roots]
        self.policy, self.schedule = load_settings(env)
        self.actors = actors  # None: sweep.execute's (archive, and zstandard, loaded only when a plan archives)
        self.full_in_child = full_in_child
        self.root_lock = root_lock
        self.stop_event = threading.Event()
        self.jobs = Jobs(clock, self.stop_event)
        self.backoff = Backoff()
        self.children = ChildRunner(env, self.stop_event)
        # A full sweep is running: the transcripts it removes are not noted one by one as they go (at 100k
        # sessions that would be 75k index rows in this long-lived process); it reports what else went.
        self.in_full = False
        self.index = Index(self.dirs.index_db, clock)
        self.follower = AuditFollower(self.dirs.audit_log, self.index, clock)
        self.judge = GoneJudge(env, self.index, self.follower, clock)
        self.files = WatchedFiles(self.dirs, env.config_path)
        self.watcher = make_watcher(self.roots, self.on_changes, self.on_overflow, debounce=debounce,
                                    observer_factory=observer_factory, files=self.files.paths, clock=clock)  # fmt: skip
        self.state = StateFile(self.dirs.daemon_state)
        # Why the index cannot be trusted right now (a full scan is needed); None when it can.
        self.untrusted: str | None = "not built yet"
        self._lock = threading.Lock()
        self._wake_at: float | None = None
        self._waking = False  # a wake-up is running in the worker thread: it reschedules itself once it ended
        self.sweeping: dict[str, Any] | None = None  # the sweep in progress (kind, since), for `janitor status`
        self.reload_error: dict[str, Any] | None = None  # the last refused reload, until one succeeds
        self.pinger: WatchdogPinger | None = None
        self.started = self.clock.time()
        self.last_sweep: dict[str, Any] | None = None
        self.last_sample: metrics.Sample | None = None  # what metrics_file last said (ux)
        self.last_full: float | None = None
        self.sweeper = Sweeper(self)

    @property
    def gone(self) -> dict[Key, tuple[Entry, float, str]]:
        """The disappeared sessions not judged yet."""
        return self.judge.gone

    # ---- lifecycle --------------------------------------------------------------------------------

    def start(self, *, initial_sweep: bool = True) -> None:
        problems = self.watcher.start()
        for root, why in problems.items():
            log.warning("not watching %s: %s", root, why)
        self.jobs.start(self.full_sweep, self.schedule, self._job_event)
        if initial_sweep:
            self.jobs.add_once(self.full_sweep, "full-now", self.clock.time(), "full sweep (start)")
        self.jobs.run()
        interval = watchdog_interval()
        if interval is not None:
            self.pinger = WatchdogPinger(interval, self.jobs.healthy, self.clock)
            self.pinger.start()
        log.info("daemon started: roots %s; full sweep %s", ", ".join(self.roots), self.schedule.describe())
        self.write_state()

    def stop(self) -> None:
        """Stop after the session in hand: nothing is left half done (a full sweep's process is told to stop
        too, and waited for)."""
        self.stop_event.set()
        child = self.children.signal(signal.SIGTERM)
        log.debug("stopping: the sweep in hand stops between sessions%s", f" (told process {child})" if child else "")
        self.jobs.shutdown()
        if self.pinger is not None:
            self.pinger.stop()
        self.watcher.stop()
        self.write_state(stopped=True)
        last = self.last_sample
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
            self.reload_error = {"at": iso_offset(self.clock.time()), "error": str(e)}
            self.write_state()
            return False
        self.reload_error = None
        self.policy = pol
        if sched != self.schedule:
            self.schedule = sched
            self.jobs.reschedule("full", sched.trigger())
        self.jobs.add_once(self.full_sweep, "full-now", self.clock.time(), "full sweep (reload)")
        log.info("config reloaded; full sweep %s", self.schedule.describe())
        self.write_state()
        return True

    # ---- state -----------------------------------------------------------------------------------------

    def write_state(self, *, stopped: bool = False) -> None:
        self.state.write(lambda: self._state(stopped))

    def _state(self, stopped: bool) -> dict[str, Any]:
        from claude_janitor import __version__

        nxt = [t for t in map(self.jobs.time_of, ("full", "full-now", "full-retry")) if t is not None]
        data: dict[str, Any] = {
            "pid": os.getpid(),
            "version": __version__,
            "started": iso_offset(self.started),
            "roots": self.roots,
            "schedule": self.schedule.describe(),
            "last_sweep": self.last_sweep,
            "last_full_sweep": iso_offset(self.last_full),
            "next_sweep": None if stopped else iso_offset(min(nxt) if nxt else None),
            # The earliest due time in the index (not the wake-up job's time, which is gone from the scheduler
            # while the job waits for the worker): in the past only while a sweep is in progress.
            "next_expiry": None if stopped else iso_offset(self._wake_at),
            "sweeping": None if stopped else self.sweeping,
            "reload_refused": self.reload_error,
            "watching": {r: self.watcher.problems.get(r, "ok") for r in self.roots},
            "index_trusted": self.untrusted is None,
            "index_sessions": self.index.count(),
        }
        if stopped:
            data["stopped"] = iso_offset(self.clock.time())
        return data

    # ---- scheduling --------------------------------------------------------------------------------------

    def reschedule_wake(self, *, force: bool = False) -> None:
        """Move the wake-up job to the earliest due time in the index (or remove it), and write the state.

        While a wake-up runs, the job is not touched: APScheduler would skip a new run of it that falls due
        before the running one has returned (max_instances=1), and that run would be lost. The wake-up
        reschedules itself once it has returned (``_job_event``), from what is due then."""
        with self._lock:
            due = self.index.next_due()
            if due is not None:
                due = max(due, self.backoff.not_before)
            changed = force or due != self._wake_at
            self._wake_at = due
            if changed and not self._waking and self.jobs.started and not self.stop_event.is_set():
                if due is None:
                    self.jobs.remove("wake")
                else:
                    self.jobs.add_once(self.wake, "wake", max(due, self.clock.time()), "expiry wake-up")
        self.write_state()

    def _job_event(self, event: Any) -> None:
        """APScheduler: a job ended (called in the worker thread once the run no longer counts as running),
        or a run was skipped because the job was still running. Either way the wake-up is put back at the
        earliest due time: no expiry is ever left without a wake-up."""
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES  # type: ignore[import-untyped]

        if event.code == EVENT_JOB_MAX_INSTANCES:
            log.debug("%s: a run was due while it was running; it runs again once it ends", event.job_id)
            return
        self.reschedule_wake(force=True)
        give_back_memory()

    def full_soon(self, delay: float, why: str) -> None:
        self.jobs.add_once(self.full_sweep, "full-now", self.clock.time() + delay, f"full sweep ({why})")

    # ---- file events -------------------------------------------------------------------------------------

    def on_overflow(self) -> None:
        self.untrusted = "file events were lost (inotify queue overflow)"
        self.full_soon(2.0, "events lost")

    def on_changes(self, changes: list[Change]) -> None:
        """Watcher batch → index. Runs in the watcher's flush thread."""
        now = self.clock.time()
        got = apply_changes(changes, self.index, self.policy, now, in_full=self.in_full)
        if "pins" in got.files:
            self.pins_changed()
        if "config" in got.files:
            self.config_changed()
        if self.jobs.started:
            for root in got.projects_back:
                log.info("%s/projects is there again: watching it, and rebuilding the index with a full sweep",
                         root)  # fmt: skip
                self.untrusted = self.untrusted or f"{root}/projects was recreated"
                self.full_soon(1.0, "projects/ is back")
        for root in got.projects_gone:
            self.untrusted = f"{root}/projects was removed"
            self.full_soon(5.0, "projects/ removed")
        if got.gone:
            self.note_gone(got.gone, "watch")
        self.reschedule_wake()
        if len(changes) > WAKE_IN_PROCESS:
            give_back_memory()  # a burst of new transcripts: what indexing them took goes back

    def pins_changed(self) -> None:
        """The pins file changed: the unpinned sessions are decided again now (a pinned session is only
        looked at again at the next full sweep: it may be due now)."""
        unpinned = self.files.unpinned()
        if unpinned:
            self.index.wake_sessions(unpinned, self.clock.time())

    def config_changed(self) -> None:
        """A config file was written, replaced or removed: reload it as SIGHUP does."""
        if self.files.config_changed():
            log.info("the config changed on disk: reloading")
            self.reload()

    def note_gone(self, entries: Iterable[Entry], how: str) -> None:
        """Sessions that disappeared: judged by the `gone` job a moment later."""
        if self.judge.note(entries, how):
            self.jobs.add_once(self.judge_gone, "gone", self.clock.time() + GONE_DELAY,
                               "judge disappeared sessions")  # fmt: skip

    def judge_gone(self) -> None:
        """The `gone` job (gone.GoneJudge); again later for those a sweep has not said anything of yet."""
        again = self.judge.judge()
        if again is not None:
            self.jobs.add_once(self.judge_gone, "gone", again, "judge disappeared sessions")
        self.reschedule_wake()

    def rewatch(self) -> None:
        """Some root could not be watched (projects/ missing, watch limits): try again now and then."""
        if self.stop_event.is_set():
            return
        self.watcher.ensure()
        if self.watcher.needs_retry:
            self.jobs.add_once(self.rewatch, "rewatch", self.clock.time() + REWATCH, "retry watching")
        elif not self.watcher.problems:
            log.info("all roots are watched again: rebuilding the index with a full sweep")
            self.full_soon(0.0, "watching again")

    # ---- jobs ---------------------------------------------------------------------------------------------

    def full_sweep(self) -> None:
        self.sweeper.sweep(full=True)

    def wake(self) -> None:
        self._waking = True
        try:
            self.sweeper.sweep(full=False)
        finally:
            self._waking = False


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
