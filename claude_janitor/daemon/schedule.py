"""When the daemon sweeps: the full-sweep schedule from the config, the scheduler its jobs run on, and the
back-off after a busy lock or a failed sweep.

Jobs run on APScheduler 3 with one worker thread, so two sweeps never overlap in this process:
  full   the periodic full sweep (``sweep_interval``, default 1d, or ``sweep_cron``); also once at start
         and after a config reload ("full-now"), and again after a failure ("full-retry");
  wake   a one-off wake-up at the earliest moment an indexed session may expire;
  gone   a moment after transcripts disappear, to judge who removed them;
  rewatch  now and then while a root cannot be watched.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from claude_janitor.config import janitor as config
from claude_janitor.daemon.clock import Clock
from claude_janitor.durations import DurationError, human_duration, parse_duration
from claude_janitor.errors import ConfigError
from claude_janitor.model import Policy

if TYPE_CHECKING:
    from claude_janitor.sweep.plan import Env

DEFAULT_INTERVAL = 86400.0
RETRY_BUSY = (5.0, 300.0)  # first and longest wait before retrying when a one-shot sweep holds the lock
RETRY_FAILED = (30.0, 3600.0)  # same, after a sweep failed


@dataclass(frozen=True)
class Schedule:
    interval: float | None = DEFAULT_INTERVAL
    cron: str | None = None

    def describe(self) -> str:
        return f"cron {self.cron!r}" if self.cron else f"every {human_duration(self.interval)}"

    def trigger(self) -> Any:
        if self.cron:
            from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]

            return CronTrigger.from_crontab(self.cron)
        from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]

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
            raise ConfigError(
                f'{where}: sweep_cron: not a crontab expression ({e}); use five fields like "30 3 * * *"'
            ) from None
        return pol, Schedule(None, cron)
    if interval is not None:
        try:
            secs = parse_duration(interval, allow_forever=False)
        except DurationError as e:
            raise ConfigError(f"{where}: sweep_interval: {e}") from None
        return pol, Schedule(secs)
    return pol, Schedule()


class Backoff:
    """How long to leave the lock alone after a one-shot sweep held it, or after a sweep failed: doubling
    from the first wait up to the longest. ``not_before``: no wake-up before this (clock time)."""

    def __init__(self) -> None:
        self.busy = 0  # busy lock found this many times in a row
        self.failures = 0  # sweeps failed in a row
        self.not_before = 0.0

    def lock_busy(self, now: float) -> float:
        """The lock was busy: how long to wait (``not_before`` moves there)."""
        self.busy += 1
        delay = min(RETRY_BUSY[0] * 2.0 ** (self.busy - 1), RETRY_BUSY[1])
        self.not_before = now + delay
        return delay

    def got_lock(self) -> None:
        self.busy = 0
        self.not_before = 0.0

    def succeeded(self) -> None:
        self.failures = 0

    def failed(self) -> None:
        self.failures += 1

    def failing(self, now: float) -> bool:
        """After a sweep: True if sweeps are failing (``not_before`` then moves past the wait that follows)."""
        if not self.failures:
            return False
        self.not_before = now + min(RETRY_FAILED[0] * 2.0 ** (self.failures - 1), RETRY_FAILED[1])
        return True


class Jobs:
    """The daemon's scheduler: one worker thread; times are the daemon's clock's (``Clock.real`` turns them
    into the scheduler's). Adding a job once the daemon stops, or before it started, does nothing."""

    def __init__(self, clock: Clock, stopping: threading.Event) -> None:
        self.clock = clock
        self.stopping = stopping
        self.scheduler: Any = None

    @property
    def started(self) -> bool:
        return self.scheduler is not None

    def start(self, full: Callable[[], None], schedule: Schedule, listener: Callable[[Any], None]) -> None:
        from apscheduler.events import (  # type: ignore[import-untyped]
            EVENT_JOB_ERROR,
            EVENT_JOB_EXECUTED,
            EVENT_JOB_MAX_INSTANCES,
        )
        from apscheduler.executors.pool import ThreadPoolExecutor  # type: ignore[import-untyped]
        from apscheduler.schedulers.background import BackgroundScheduler  # type: ignore[import-untyped]

        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self.scheduler.add_job(full, schedule.trigger(), id="full", name="full sweep")
        self.scheduler.add_listener(listener, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MAX_INSTANCES)

    def run(self) -> None:
        self.scheduler.start()

    def add_once(self, fn: Callable[[], None], job_id: str, at: float, name: str) -> None:
        """Run ``fn`` once at clock time ``at`` (replacing the job ``job_id`` if it is there)."""
        if self.scheduler is None or self.stopping.is_set():
            return
        when = datetime.fromtimestamp(self.clock.real(at), UTC)
        with contextlib.suppress(Exception):  # the scheduler may be shutting down
            self.scheduler.add_job(fn, "date", run_date=when, id=job_id, name=name, replace_existing=True)

    def remove(self, job_id: str) -> None:
        if self.scheduler is not None:
            with contextlib.suppress(Exception):
                self.scheduler.remove_job(job_id)

    def reschedule(self, job_id: str, trigger: Any) -> None:
        self.scheduler.reschedule_job(job_id, trigger=trigger)

    def time_of(self, job_id: str) -> float | None:
        """When the job runs next (system time), None if it is not scheduled."""
        if self.scheduler is None:
            return None
        try:
            job = self.scheduler.get_job(job_id)
        except Exception:  # noqa: BLE001 - scheduler shut down
            return None
        nrt = getattr(job, "next_run_time", None) if job else None
        return float(nrt.timestamp()) if nrt else None

    def healthy(self) -> bool:
        """The scheduler's thread is alive (a wedged or dead daemon stops pinging the watchdog)."""
        thread = getattr(self.scheduler, "_thread", None)
        return thread is None or bool(thread.is_alive())

    def shutdown(self) -> None:
        """Stop the scheduler and wait for the job in hand.

        Not shutdown(wait=True): APScheduler holds its job-store lock while it waits, and the running job
        (writing the state, putting the wake-up back) needs that lock: a deadlock. The worker is waited for
        once the lock is free again."""
        if self.scheduler is None:
            return
        self.scheduler.shutdown(wait=False)
        for ex in getattr(self.scheduler, "_executors", {}).values():
            pool = getattr(ex, "_pool", None)
            if pool is not None:
                pool.shutdown(wait=True)
