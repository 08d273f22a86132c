"""One sweep job of the daemon (a full sweep, or a wake-up): take the sweep lock (or back off), settle what
a killed sweep left unsaid, run the sweep (in the full-sweep process or in this one), take from its result
what the daemon needs, and say how it went (last_sweep, the log, metrics_file)."""

from __future__ import annotations

import copy
import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from claude_janitor.daemon.child import ChildFailed
from claude_janitor.daemon.gone import GONE_DELAY
from claude_janitor.daemon.index import Entry, Key
from claude_janitor.daemon.work import Stopping, counts, full_sweep_work, incremental_result, incremental_work
from claude_janitor.durations import human_duration
from claude_janitor.errors import JanitorError, LockBusy
from claude_janitor.render import metrics
from claude_janitor.timefmt import iso_offset

if TYPE_CHECKING:
    from claude_janitor.daemon.main import Daemon
    from claude_janitor.fs.locks import SweepLock

log = logging.getLogger("janitor.daemon")

WAKE_IN_PROCESS = 256  # a wake-up with more sessions due than this runs in a process of its own
REWATCH = 600.0  # while a root cannot be watched, try again this often (a stat or two)
SUMMARY = ("acted", "failed", "skipped", "process", "max_rss_kb")  # what last_sweep keeps of a result


class Sweeper:
    """Runs the daemon's sweeps, one at a time (from the scheduler's one worker thread)."""

    def __init__(self, daemon: Daemon) -> None:
        self.d = daemon
        self.lock: SweepLock | None = None  # the sweep lock held by the sweep in progress

    def sweep(self, *, full: bool) -> None:
        d = self.d
        if d.stop_event.is_set():
            return
        lock = self._take_lock(full)
        if lock is None:
            return
        self.lock = lock
        try:
            self._recover()
            kind = "full" if full or d.untrusted else "incremental"
            started = d.clock.time()
            summary: dict[str, Any] = {"kind": kind, "started": iso_offset(started)}
            d.sweeping = {"kind": kind, "since": iso_offset(started)}
            d.write_state()
            sample = self._run(kind, full, started, summary)
        finally:
            self.lock = None
            lock.__exit__(None, None, None)
        self._done(kind, summary, sample, started)

    def _take_lock(self, full: bool) -> SweepLock | None:
        """The sweep lock (and the Claude dirs' locks); None if a one-shot sweep holds it (tried again later)."""
        from claude_janitor.fs.locks import SweepLock

        d = self.d
        lock = SweepLock(d.dirs.lock_file, wait=0.0)
        try:
            if d.root_lock is not None:
                d.root_lock.acquire()  # a Claude dir that appeared since the start, or was busy then
            lock.__enter__()
        except LockBusy as e:
            delay = d.backoff.lock_busy(d.clock.time())
            log.info("another sweep holds the lock (%s); trying again in %s", e, human_duration(delay))
            if full:
                d.jobs.add_once(d.full_sweep, "full-retry", d.backoff.not_before, "full sweep (retry)")
            d.reschedule_wake(force=True)
            return None
        d.backoff.got_lock()
        return lock

    def _recover(self) -> None:
        """What a killed sweep (this daemon's, a one-shot's) left unsaid in the audit log: said now."""
        from claude_janitor.sweep.run import recover, recover_interrupted

        try:  # removals a crashed sweep left half way first (recovery.recover), then the log from the disk
            for note in recover_interrupted(self.d.env):
                log.warning("%s", note)
            done = recover(self.d.env)
        except OSError as e:
            log.error("cannot settle the audit log's unfinished intents: %s", e)
            return
        if done:
            log.info("audit log: %d intent(s) left by a killed run now have their result (what is on disk)",
                     len(done))  # fmt: skip

    def _run(self, kind: str, full: bool, started: float, summary: dict[str, Any]) -> dict[str, Any] | None:
        """Run the sweep; its counts (or its error) go into ``summary``; its metrics sample, if any."""
        d = self.d
        try:
            if kind == "full":
                if not full:
                    log.info("index not trusted (%s): full sweep instead", d.untrusted)
                res = self.full(started)
            else:
                res = self.incremental(started)
            summary.update({k: res[k] for k in SUMMARY if k in res})
            d.backoff.succeeded()
            sample: dict[str, Any] | None = res.get("metrics")
            return sample
        except Stopping:
            summary["error"] = "stopped"  # neither a failure nor a success: the count of failures stays
        except JanitorError as e:
            d.backoff.failed()
            summary["error"] = str(e)
            log.error("%s sweep failed: %s", kind, e)
            if isinstance(e, ChildFailed):
                # It may have acted on some sessions before it died: the index is rebuilt by the retry.
                d.untrusted = "the last full sweep failed"
        except Exception as e:  # noqa: BLE001 - the daemon outlives a failing sweep
            d.backoff.failed()
            summary["error"] = f"unexpected {type(e).__name__}: {e}"
            log.exception("%s sweep failed", kind)
            d.untrusted = d.untrusted or "the last sweep failed"
        return None

    def _done(self, kind: str, summary: dict[str, Any], sample: dict[str, Any] | None, started: float) -> None:
        """After a sweep (the lock released): back off after failures, say how it went, judge what went,
        and put the wake-up back."""
        d = self.d
        if d.backoff.failing(d.clock.time()) and kind == "full" and d.untrusted:
            d.jobs.add_once(d.full_sweep, "full-retry", d.backoff.not_before, "full sweep (retry)")
        summary["finished"] = iso_offset(d.clock.time())
        self._metrics(sample, summary, started)
        d.sweeping = None
        if summary.get("acted") or kind == "full" or summary.get("error"):
            d.last_sweep = summary
            if summary.get("acted") or summary.get("error"):
                said = ", ".join(f"{k} {v}" for k, v in summary.items() if k not in ("kind", "started", "finished"))
                log.info("%s sweep: %s", kind, said)
        if d.gone:
            d.jobs.add_once(d.judge_gone, "gone", d.clock.time() + GONE_DELAY, "judge disappeared sessions")
        d.reschedule_wake(force=True)

    def _metrics(self, sample: dict[str, Any] | None, summary: dict[str, Any], started: float) -> None:
        """metrics_file after a sweep (ux): a full sweep's numbers, an incremental one's outcomes, or the
        error; daemon_up says whether the daemon runs. An incremental wake-up that did nothing leaves the
        file as the last sweep wrote it."""
        d = self.d
        if not d.policy.metrics_file:
            return
        if sample is None and not summary.get("error") and summary.get("kind") != "full":
            return
        s = metrics.from_json(sample) if sample else metrics.from_run(
            None, [], started=started, finished=d.clock.time(), guard=None, error=summary.get("error"),
            kind=summary.get("kind", "full"))  # fmt: skip
        if sample and summary.get("error"):
            s.success, s.failures = False, s.failures + 1
        s.finished = d.clock.time()
        s.duration = max(0.0, s.finished - started)
        s.daemon_up = True
        from claude_janitor.removal.trash import trash_dir, usage

        tdir = trash_dir(d.dirs)
        s.trash_bytes = usage(tdir)[1] if tdir.is_dir() else None
        d.last_sample = s
        why = metrics.write(d.policy.metrics_file, s)
        if why:
            log.warning("%s", why)

    # ---- the two kinds -------------------------------------------------------------------------------

    def full(self, now: float) -> dict[str, Any]:
        """A full sweep (in a process of its own unless ``full_in_child`` is off); then this process takes
        from its result only what it needs: counts, where the audit log stands, what disappeared."""
        d = self.d
        d.follower.poll()
        d.follower.restored.clear()  # a full sweep treats restored sessions like any other
        d.watcher.ensure()
        if d.watcher.needs_retry:  # watch limits, no inotify: no event tells when to try again
            d.jobs.add_once(d.rewatch, "rewatch", d.clock.time() + REWATCH, "retry watching")
        was_untrusted = d.untrusted
        d.untrusted = None if d.watcher.healthy else "not all roots are watched"
        start = f"{d.follower.ino}:{d.follower.pos}"
        d.in_full = True
        try:
            if d.full_in_child:
                res = self._in_child(now, start)
            else:
                res = full_sweep_work(d.env, d.policy, now, d.index, should_stop=d.stop_event.is_set,
                                      actors=d.actors, audit_from=start, clock=d.clock)  # fmt: skip
        finally:
            d.in_full = False
        self._took(res, "full scan")
        d.last_full = now
        if was_untrusted and d.untrusted is None:
            log.info("index rebuilt from a full scan: %d sessions", d.index.count())
        return res

    def incremental(self, now: float) -> dict[str, Any]:
        """A wake-up: act on the sessions due now (in this process, or in a process of its own for a big
        batch); the outcome counts."""
        d = self.d
        rows = d.index.due(now + 0.5)
        if not rows:
            return counts([])
        d.follower.poll()
        held = [e for e in rows if (e.root, e.session_id) in d.follower.restored]
        if held:
            # Restored sessions keep their old times: they are left alone until the next full sweep, as
            # they would be until the next `janitor sweep` without the daemon (resume or pin them first).
            d.index.put([dataclasses.replace(e, due=None) for e in held])
            rows = [e for e in rows if e not in held]
            if not rows:
                return counts([])
        if len(rows) > WAKE_IN_PROCESS and d.full_in_child:
            # A big batch goes to a process of its own, as a full sweep does: the memory (and the removal
            # workers) it takes are given back when it ends, and this long-lived process stays small.
            d.in_full = True
            try:
                res = self._in_child(now, f"{d.follower.ino}:{d.follower.pos}", due=[e.key for e in rows])
            finally:
                d.in_full = False
            return self._took(res, "re-read")
        outcomes, gone = incremental_work(d.env, copy.deepcopy(d.policy), now, d.index, rows,
                                          should_stop=d.stop_event.is_set, actors=d.actors,
                                          parallel=False)  # fmt: skip
        if gone:
            d.note_gone(gone, "re-read")
        return incremental_result(outcomes, now, d.clock.time())

    def _in_child(self, now: float, audit_from: str, due: list[Key] | None = None) -> dict[str, Any]:
        """Run `janitor _daemon-full-sweep` (a full sweep; with ``due``, a wake-up of those sessions) and
        wait for it. Meanwhile (``in_full``) the watcher leaves what goes to the child, which reports it."""
        d = self.d
        fds: tuple[int, ...] = ()
        if self.lock is not None and self.lock.fd >= 0:
            # The child holds the sweep lock and the Claude dirs' locks with us (and on its own if we die).
            fds = (self.lock.fd, *(d.root_lock.fds if d.root_lock is not None else ()))
        return d.children.run(d.policy, now, audit_from, due, fds)

    def _took(self, res: dict[str, Any], how: str) -> dict[str, Any]:
        """Take from a sweep's result (run in a process of its own) what this process needs: where the audit
        log stands, what disappeared without the sweep removing it; its error, raised."""
        if res.get("stopped") in ("start", "scan"):
            raise Stopping()
        if res.get("error"):
            if res.get("busy"):
                raise LockBusy(res["error"])
            raise (ChildFailed if res.get("crash") else JanitorError)(res["error"])
        self.d.follower.adopt(res["audit_pos"], [(str(k[0]), str(k[1])) for k in res.get("restored", ())])
        gone = [Entry(*g) for g in res.get("gone", ())]
        if gone:
            self.d.note_gone(gone, how)
        return res
