"""Sessions whose transcript disappeared, judged a moment later: removed by a janitor sweep (per the audit
log), moved to another project, or removed by someone else: recorded as ``external-delete`` (e.g. Claude
Code's own cleanup), once per transcript."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from claude_janitor.daemon.clock import Clock
from claude_janitor.daemon.follower import AuditFollower
from claude_janitor.daemon.index import Entry, Index, Key
from claude_janitor.daemon.work import MIN_STEP
from claude_janitor.timefmt import iso_offset

if TYPE_CHECKING:
    from claude_janitor.sweep.plan import Env

log = logging.getLogger("janitor.daemon")

GONE_DELAY = 1.0  # let a burst of deletions settle before judging who made them
GONE_PATIENCE = 600.0  # how long to wait for a janitor sweep's result record before judging
PENDING_RETRY = 5.0  # a sweep means to remove it and has not said how that went: look again after this

EXTERNAL = "removed by another process, not by the janitor (e.g. Claude Code's own cleanup)"


class GoneJudge:
    """The disappeared sessions not judged yet, and the judging."""

    def __init__(self, env: Env, index: Index, follower: AuditFollower, clock: Clock) -> None:
        self.env = env
        self.index = index
        self.follower = follower
        self.clock = clock
        self.gone: dict[Key, tuple[Entry, float, str]] = {}  # disappeared: entry, first seen, how
        self._lock = threading.Lock()

    def note(self, entries: Iterable[Entry], how: str) -> bool:
        """Remember sessions that disappeared (``how``: who saw it); True if any is waiting to be judged."""
        now = self.clock.time()
        with self._lock:
            for e in entries:
                self.gone.setdefault(e.key, (e, now, how))
            return bool(self.gone)

    def judge(self) -> float | None:
        """Judge the sessions noted; when to judge again those left waiting (None: none are)."""
        from claude_janitor.sweep.execute import audit_log

        self.follower.poll()
        now = self.clock.time()
        with self._lock:
            items = list(self.gone.items())
        records: list[dict[str, Any]] = []
        done: list[Key] = []
        removed: list[Key] = []
        later = False
        for key, (e, since, how) in items:
            verdict = self._verdict(key, e, since, now)
            if verdict == "later":
                later = True
                continue
            done.append(key)
            if verdict == "janitor":
                removed.append(key)
            elif verdict == "external":
                records.append(_external(key, e, how))
        self.index.remove(removed)
        with self._lock:
            for k in done:
                self.gone.pop(k, None)
            pending = bool(self.gone)
        if records:
            audit_log(self.env).append(records)
            log.info("%d session(s) removed by another process: recorded as external-delete", len(records))
        if not pending:
            return None
        return now + (PENDING_RETRY if later else GONE_DELAY)

    def _verdict(self, key: Key, e: Entry, since: float, now: float) -> str:
        """ "back" (no transcript to judge, or it is there again), "later" (a sweep has not said yet),
        "janitor" (a sweep removed the whole session), "moved" or "said" (someone said what became of
        it), "external"."""
        root, project, sid = key
        if e.rel is None or os.path.lexists(os.path.join(root, e.rel)):
            if e.rel is None and (cur := self.index.get(key)) is not None and cur.rel is None:
                self.index.remove([key])  # leftovers without a transcript, gone too: nothing to say
            return "back"
        who = self.follower.state(root, sid)
        if who == "pending" and now - since < GONE_PATIENCE:
            return "later"
        if who == "janitor":
            return "janitor"
        moved = [x for x in self.index.find_sid(root, sid)
                 if x.project != project and x.rel and os.path.lexists(os.path.join(root, x.rel))]  # fmt: skip
        cur = self.index.get(key)
        if cur is not None and cur.rel == e.rel:
            # Whatever is left of the session (its folder, side files) is looked at again soon.
            self.index.put([Entry(root, project, sid, None, cur.last_activity, cur.bytes, now + MIN_STEP,
                                  False, cur.decided, cur.reason)])  # fmt: skip
        if moved:
            return "moved"
        return "said" if who is not None else "external"


def _external(key: Key, e: Entry, how: str) -> dict[str, Any]:
    root, project, sid = key
    return {
        "action": "external-delete", "phase": "observed", "session_id": sid, "root": root,
        "project": project, "paths": [e.rel], "bytes": e.bytes, "last_activity": iso_offset(e.last_activity),
        "reason": EXTERNAL, "detected_by": how, "result": "gone",
    }  # fmt: skip
