"""Orchestration: scan → plan → execute → record. Dry-run and real runs share this one path; the only
difference is that a dry run stops short of the mutation (and of the audit records of mutations)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from claude_janitor import policy, testhooks
from claude_janitor.audit.log import AuditLog
from claude_janitor.cache import activity
from claude_janitor.cache import scan as cache
from claude_janitor.cache.pins import load_pins
from claude_janitor.config import claude as claude_settings
from claude_janitor.config import janitor as config
from claude_janitor.config.paths import JanitorDirs, archive_dir_for
from claude_janitor.errors import ConfigError, ExitStatus, GuardTripped
from claude_janitor.fs.safefs import Root, validate_root
from claude_janitor.fs.tree import Changed, Unsafe
from claude_janitor.model import Action, Decision, Outcome, Plan, Policy, Result, Session
from claude_janitor.removal import staging, stores

BATCH = 256  # intents recorded (and fsync'd) per batch before acting on it


@dataclass
class Env:
    """Everything the core needs from the outside world, passed in (the CLI builds it)."""

    roots: list[Path]
    dirs: JanitorDirs
    config_path: str | None = None
    older_than: str | None = None
    action: str | None = None
    force: bool = False
    default_root: bool = False  # roots came from the default (~/.claude), not from the user


@dataclass
class RunResult:
    plan: Plan
    policy: Policy
    outcomes: list[Outcome] = field(default_factory=list)
    dry_run: bool = True
    files_seen: int = 0
    guard: str | None = None
    archives: dict[str, Any] | None = None  # archive maintenance: temp leftovers, pruned archives, errors
    trash: dict[str, Any] | None = None  # trash maintenance (trash.maintain): what was purged

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.result is Result.FAILED]

    @property
    def exit_code(self) -> ExitStatus:
        stores_failed = any(sd.failed for sd in self.plan.stores) or any(
            h.result.startswith("failed") for h in self.plan.history)
        failed = self.failed or stores_failed or (self.archives and self.archives.get("errors"))
        return ExitStatus.ACTIONS_FAILED if failed else ExitStatus.OK


ProgressFn = Callable[[int], None]


def build_plan(env: Env, now: float, *, progress: ProgressFn | None = None,
               pol: Policy | None = None) -> tuple[Plan, Policy, int]:
    """Read config and settings, scan the cache and decide. Reads only; raises ConfigError on bad input.

    ``pol``: an already loaded policy to use instead of reading the config (the daemon's, kept until SIGHUP).
    """
    pol = pol or config.load_policy(env.config_path, older_than=env.older_than, action=env.action)
    skipped: list[str] = []
    if env.default_root and not any(os.path.lexists(r) for r in env.roots):
        # Nobody asked for this dir: a machine without Claude Code has nothing to sweep.
        skipped = [f"no Claude Code cache at {r}: nothing to do (pass --claude-dir or set CLAUDE_CONFIG_DIR)"
                   for r in env.roots]
        env = dataclasses.replace(env, roots=[])
    roots = [validate_root(r) for r in env.roots]
    if pol.archive_dir or uses_archive(pol):
        _check_archive_dir(archive_dir_for(pol, env.dirs), roots)
    # A broken Claude Code settings file does not stop the run: plan_for keeps the sessions whose window
    # would come from it, and says so in the plan's warnings.
    res = cache.scan(roots, progress=progress)
    plan = plan_for(res.sessions, pol, now, roots, env.dirs)
    plan.stores, in_stores = stores.plan(roots, res.sessions, pol, now, pol.claude_root_windows,
                                         removing=[d.session for d in plan.to_act])
    # Entries of the session stores (debug/, todos/ …) that no session claims are store entries, not unknown.
    plan.unknown = [u for u in res.unknown if not _in_stores(u, in_stores)]
    plan.warnings += skipped + warnings_for(pol, roots)
    return plan, pol, res.files_seen


def _in_stores(unknown: str, in_stores: dict[str, set[str]]) -> bool:
    for root, rels in in_stores.items():
        if unknown.startswith(root + "/"):
            return unknown[len(root) + 1:].split(" (")[0].rstrip("/") in rels
    return False


def plan_for(sessions: list[Session], pol: Policy, now: float, roots: list[Path], dirs: JanitorDirs) -> Plan:
    """Decide sessions already read from disk: every session of a scan, or the few the daemon re-read
    because they may be due (pins, sessions in use and Claude Code's windows are applied the same way)."""
    cache.apply_pins(sessions, load_pins(dirs.pins_file))
    inuse = activity.mark_in_use(sessions, [str(r) for r in roots])
    taken = time.monotonic()
    problems = claude_settings.resolve_claude_windows(pol, roots, sessions)
    plan = policy.decide(sessions, pol, now)
    plan.warnings += problems
    plan.in_use = (taken, inuse)
    return plan


def _check_archive_dir(archive: Path, roots: list[Path]) -> None:
    real = Path(os.path.realpath(archive))
    for r in roots:
        rr = Path(os.path.realpath(r))
        if real == rr or rr in real.parents:
            raise ConfigError(f"archive_dir {archive} is inside the swept tree {r}; choose a place outside it")


def uses_archive(pol: Policy) -> bool:
    return pol.action is Action.ARCHIVE or any((r.action or pol.action) is Action.ARCHIVE for r in pol.rules)


def _days(secs: float) -> str:
    return f"{secs / 86400:g} days" if secs >= 86400 else f"{secs / 3600:g} hours"


def warnings_for(pol: Policy, roots: list[Path]) -> list[str]:
    """Cases where Claude Code's own sweep may delete sessions before the janitor archives them.

    Claude Code hard-deletes by file mtime once a session is older than cleanupPeriodDays, machine-wide,
    with the settings of whichever project it was started in: the shortest window known under a root is
    the one that counts. An archive window (never less than ``grace``) that is not shorter loses the race."""
    out: list[str] = []
    if not uses_archive(pol):
        return out
    for r in roots:
        known = [pol.claude_root_windows.get(str(r))]
        known += [w for (root, _), w in sorted(pol.claude_windows.items()) if root == str(r)]
        finite = [w for w in known if w is not None and w.seconds is not None]
        if not finite:
            continue
        cw = min(finite, key=lambda w: w.seconds or 0.0)
        assert cw.seconds is not None
        default = pol.retention.seconds if pol.retention else cw.seconds
        windows: list[tuple[str, float | None]] = []
        if pol.action is Action.ARCHIVE:
            windows.append(("the janitor's default retention"
                            + ("" if pol.retention else " (Claude Code's own window)"), default))
        for rule in pol.rules:
            if (rule.action or pol.action) is Action.ARCHIVE:
                windows.append((rule.label, rule.retention if rule.retention_set else default))
        for label, secs in windows:
            eff = None if secs is None else max(secs, pol.grace)
            if eff is not None and eff < cw.seconds:
                continue
            when = "never (retention forever)" if eff is None else f"only after {_days(eff)}"
            safe = max(cw.seconds * 0.8, cw.seconds - 3 * 86400, 3600.0)
            suggest = f"{safe / 86400:.0f}d" if safe >= 86400 else f"{safe / 3600:.0f}h"
            out.append(
                f"Claude Code deletes sessions in {r} once they are {_days(cw.seconds)} old ({cw.source}), "
                f"but {label} archives them {when}: Claude Code may delete sessions before they are "
                f"archived. Fix: set a shorter retention for the janitor (e.g. retention = \"{suggest}\" in "
                f"its config{', or in that rule' if label.startswith('rule') else ''}). Raising "
                f"cleanupPeriodDays instead would also keep pasted text, shell snapshots and the other stores "
                f"that long (Claude Code's and the janitor's default for them), unless [stores] sets their "
                f"windows.")
    return out


def _record(d: Decision, phase: str, result: str, error: str | None = None,
            extra: dict[str, Any] | None = None) -> dict[str, Any]:
    s = d.session
    rec: dict[str, Any] = {
        "action": d.action.value,
        "phase": phase,
        "session_id": s.session_id,
        "root": s.root,
        "project": s.project,
        "paths": [p.rel for p in s.pieces],
        "bytes": s.bytes,
        "reason": d.reason,
        "result": result,
    }
    if d.rule:
        rec["rule"] = d.rule
    if error:
        rec["error"] = error
    if extra:
        rec.update(extra)
    return rec


WORKERS = 4  # threads acting on sessions, where processes cannot be used (the daemon's own process)
PROCESSES = 8  # at most this many forked processes remove sessions: unlink/rmdir mostly wait on the disk
PROCESSES_PER_IDLE_CPU = 4  # … and this many per CPU the load leaves idle (removal_processes)
DEPTH = 2  # chunks a removal worker holds at a time (one in hand, one waiting)
MIN_WORKERS = 4  # removal processes even on a busy machine: each mostly waits on the disk
MIN_PROCESSES = 64  # fewer deletions than this are not worth forking for
CHUNK = 8  # sessions handed to a removal process at a time
_pool_obj: Any = None


def _pool() -> Any:
    global _pool_obj
    if _pool_obj is None:
        from concurrent.futures import ThreadPoolExecutor

        _pool_obj = ThreadPoolExecutor(WORKERS, thread_name_prefix="janitor-act")
    return _pool_obj


def _workers() -> int:
    # Fault-injection runs act on one session at a time, so that "the N-th session" is well defined.
    if os.environ.get("JANITOR_TEST_KILL_AT") or os.environ.get("JANITOR_TEST_PAUSE_AT"):
        return 1
    return WORKERS


CANCELLED = "stopped before acting (signal); nothing changed"


class _Removers:
    """Where deletions run off the main thread, in chunks of plan indices, collected as they complete.

    Forked processes (``_Procs``) when this process has no other thread (``janitor sweep``, the daemon's
    full-sweep child) on Linux and there are enough deletions: each unlink/rmdir waits on the disk (on ext4
    mounted with ``discard``, for a synchronous discard of the freed block), and processes overlap those
    waits without every call handing a GIL between threads. Otherwise the thread pool, a session at a time.
    Each worker holds at most DEPTH chunks; a chunk's outcomes are taken as soon as it is done, whatever
    the order (one slow session no longer idles the other workers: the caller puts them back in plan
    order). Once stopped, sessions not yet begun come back cancelled."""

    def __init__(self, todo: list[Decision], roots: dict[str, Root], actors: dict[Action, Actor], *,
                 inline: bool = False) -> None:
        from multiprocessing.sharedctypes import RawValue

        self.todo, self.roots, self.actors = todo, roots, actors
        self.flag = RawValue("b", 0)  # shared with forked workers: set once the run is told to stop
        self.procs: _Procs | None = None
        self.futures: dict[Any, list[int]] = {}  # thread pool: future → its plan indices
        self.ready: list[tuple[int, Outcome]] = []  # inline: acted on at once, not collected yet
        # Archives too, when the archive actor takes a chunk at once (archive.store.ArchiveActor.prepare:
        # written together, one sync pass, then each verified, published and its originals removed).
        self.archives = callable(getattr(actors.get(Action.ARCHIVE), "prepare", None))
        self.inline = inline  # fault injection (_workers() == 1): archives in chunks, in this thread
        removals = sum(self.takes(d) for d in todo)
        if not inline and removals >= MIN_PROCESSES and sys.platform.startswith("linux") \
                and threading.active_count() == 1:
            for d in todo:  # opened before the fork, so every worker has them
                _open_root(d, roots)
            try:
                self.procs = _Procs(todo, roots, self.flag, actors, removal_processes())
            except OSError:  # e.g. EAGAIN from fork: the threads do it
                self.procs = None
        self.size, self.chunk = (len(self.procs.workers), CHUNK) if self.procs else (1, CHUNK) if inline \
            else (WORKERS, 1)

    def takes(self, d: Decision) -> bool:
        """Is this decision acted on here (else in the calling thread, a session at a time)?"""
        if d.action is Action.ARCHIVE:
            return self.archives
        return d.action is Action.DELETE and not self.inline

    def room(self) -> bool:
        """Can a chunk be handed out now (else collect first)?"""
        if self.inline:
            return True
        if self.procs is not None and self.procs.live():
            return self.procs.room()
        return len(self.futures) < DEPTH * WORKERS

    def pending(self) -> int:
        return len(self.futures) + (self.procs.pending() if self.procs is not None else 0)

    def submit(self, ns: list[int]) -> None:
        if self.inline:
            self.ready += zip(ns, _act_chunk([self.todo[n] for n in ns], self.roots, self.actors, self.flag),
                              strict=True)
            return
        if self.procs is not None and self.procs.send(ns):
            return
        fut = _pool().submit(_act_chunk, [self.todo[n] for n in ns], self.roots, self.actors, self.flag)
        self.futures[fut] = ns

    def collect(self, block: bool) -> list[tuple[int, Outcome]]:
        """(plan index, outcome) of every chunk done by now; with ``block``, waits for at least one."""
        out, self.ready = self.ready, []
        if self.procs is not None:
            out += self.procs.collect(block and not self.futures and not out)
        if self.futures:
            from concurrent.futures import FIRST_COMPLETED, wait

            done, _ = wait(list(self.futures), timeout=None if block and not out else 0,
                           return_when=FIRST_COMPLETED)
            for fut in done:
                ns = self.futures.pop(fut)
                out += zip(ns, fut.result(), strict=True)
        return out

    def stop(self) -> None:
        self.flag.value = 1

    def close(self) -> None:
        """Wait for every chunk handed out (nothing is left being acted on in the background), then end
        the workers."""
        with contextlib.suppress(Exception):
            while self.pending():
                self.collect(True)
        if self.procs is not None:
            self.procs.close()


def _act_chunk(ds: list[Decision], roots: dict[str, Root], actors: dict[Action, Actor], flag: Any
               ) -> list[Outcome]:
    prepare = getattr(actors.get(Action.ARCHIVE), "prepare", None)
    if prepare is not None and not flag.value:  # the chunk's archives made together, before any original goes
        prepare([(roots[d.session.root], d) for d in ds if d.action is Action.ARCHIVE and d.session.root in roots],
                lambda: bool(flag.value))
    return [Outcome(d, Result.CANCELLED, CANCELLED) if flag.value else _act_one(d, roots, False, actors)
            for d in ds]


def removal_processes(cpus: int | None = None, running: int | None = None) -> int:
    """How many removal processes: enough to keep the disk's discards overlapped (they wait, they do not
    compute), fewer when other processes already keep the CPUs busy (then more workers only queue for
    them, and take CPU from the main process that feeds them). PROCESSES_PER_IDLE_CPU per CPU left idle by
    the processes running now (``running``: /proc/loadavg's runnable count, without this one; not the load
    average, which also counts processes waiting on the disk), between MIN_WORKERS and PROCESSES."""
    cpus = cpus or os.cpu_count() or 1
    if running is None:
        try:
            with open("/proc/loadavg") as f:
                running = int(f.read().split()[3].split("/")[0]) - 1
        except (OSError, ValueError, IndexError):
            running = 0
    idle = max(cpus - running, 0)
    return max(MIN_WORKERS, min(PROCESSES, PROCESSES_PER_IDLE_CPU * idle))


class _Procs:
    """Forked workers, each fed chunks of plan indices on a pipe and answering a JSON line of
    (result, error) per chunk on another, in the order it got them. Each inherits the plan and the open
    roots; SIGINT/SIGTERM only raise the stop flag (the session in hand is finished, the rest of the chunk
    cancelled); each is killed if the main process dies, as a thread would be. A worker that dies has its
    chunks reported failed (its session in hand may be partly removed) and gets no more."""

    def __init__(self, todo: list[Decision], roots: dict[str, Root], flag: Any, actors: dict[Action, Actor],
                 n: int) -> None:
        import gc

        self.todo = todo
        self.workers: list[_Worker] = []
        gc.freeze()  # the workers' collector then leaves the inherited plan alone (its pages stay shared)
        try:
            for _ in range(n):
                task_r, task_w = os.pipe()
                res_r, res_w = os.pipe()
                pid = os.fork()
                if pid == 0:  # pragma: no cover (the worker; it never returns)
                    for w in self.workers:
                        os.close(w.task)
                        os.close(w.results)
                    os.close(task_w)
                    os.close(res_r)
                    _remover_main(todo, roots, flag, task_r, res_w, actors)
                os.close(task_r)
                os.close(res_w)
                self.workers.append(_Worker(pid, task_w, res_r))
        except OSError:
            self.close()  # the workers already forked read end of input and exit
            raise
        finally:
            gc.unfreeze()

    def live(self) -> list[_Worker]:
        return [w for w in self.workers if w.task >= 0]

    def room(self) -> bool:
        return any(len(w.sent) < DEPTH for w in self.live())

    def pending(self) -> int:
        return sum(len(w.sent) for w in self.workers)

    def send(self, ns: list[int]) -> bool:
        """Give the chunk to the least busy live worker; False if none is left."""
        while True:
            live = self.live()
            if not live:
                return False
            w = min(live, key=lambda w: len(w.sent))
            try:
                os.write(w.task, (" ".join(map(str, ns)) + "\n").encode())
            except OSError:  # died: its outstanding chunks read EOF
                w.end()
                continue
            w.sent.append(ns)
            return True

    def collect(self, block: bool) -> list[tuple[int, Outcome]]:
        """The outcomes of each chunk a worker has answered by now (with ``block``, wait for one)."""
        import select

        out: list[tuple[int, Outcome]] = []
        while True:
            busy = [w for w in self.workers if w.sent]
            for w in busy:
                while w.sent and b"\n" in w.buf:
                    line, _, w.buf = w.buf.partition(b"\n")
                    ns = w.sent.popleft()
                    out += ((n, Outcome(self.todo[n], Result(r), e)) for n, (r, e) in zip(ns, json.loads(line),
                                                                                    strict=True))
            if out or not busy:
                return out
            ready, _, _ = select.select([w.results for w in busy], [], [], None if block else 0)
            if not ready:
                return out
            for w in busy:
                if w.results not in ready:
                    continue
                got = os.read(w.results, 1 << 16)
                if got:
                    w.buf += got
                    continue
                w.end()  # died: what it was given is reported failed (its session in hand may be partial)
                out += ((n, Outcome(self.todo[n], Result.FAILED, "the process removing it died; some of its "
                                    "pieces may be gone")) for ns in w.sent for n in ns)
                w.sent.clear()

    def close(self) -> None:
        """End of input for every worker; wait for each to exit."""
        for w in self.workers:
            w.end()
        for w in self.workers:
            os.close(w.results)
            try:
                os.waitpid(w.pid, 0)
            except ChildProcessError:
                pass
        self.workers = []


@dataclass
class _Worker:
    pid: int
    task: int  # write end of its task pipe (-1: closed, the worker gets no more)
    results: int  # read end of its result pipe: one JSON line per chunk, in the order they were sent
    sent: deque[list[int]] = field(default_factory=deque)  # chunks handed out, not answered yet, in order
    buf: bytes = b""  # what was read of its answers and not parsed yet

    def end(self) -> None:
        if self.task >= 0:
            os.close(self.task)
            self.task = -1


def _remover_main(todo: list[Decision], roots: dict[str, Root], flag: Any, tasks: int, results: int,
                  actors: dict[Action, Actor]) -> None:
    """A removal worker's whole life: chunks in until end of input, outcomes out; never returns."""
    import signal

    from claude_janitor.fs.procs import die_with_parent

    def stop(_sig: int, _frame: Any) -> None:
        flag.value = 1

    code = 70
    try:
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        die_with_parent(signal.SIGKILL)
        actors = {a: actors[a] for a in (Action.DELETE, Action.ARCHIVE) if a in actors}
        with os.fdopen(tasks, "rb") as inp, os.fdopen(results, "wb", buffering=0) as out:
            for line in inp:
                res = [(o.result, o.error) for o in _act_chunk([todo[int(n)] for n in line.split()], roots,
                                                                actors, flag)]
                out.write(json.dumps(res).encode() + b"\n")
        code = 0
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        for r in roots.values():  # its own copies: the staging entries it kept for reuse go (Root.close)
            with contextlib.suppress(OSError):
                r.close()
        os._exit(code)


def delete_session(root: Root, d: Decision) -> None:
    """Remove every piece of a session as one transaction (staging.remove: stage, verify against the
    scan, commit, purge); a session that changed or moved meanwhile is put back and reported."""
    staging.remove(root, d.session, d.action.value, staging.matches_scan(d.session))


def check_session(root: Root, d: Decision) -> str | None:
    """None if every piece is as scanned; 'vanished' if all are gone; else raises Changed."""
    gone = 0
    for p in d.session.pieces:
        try:
            root.check_unchanged(p)
        except FileNotFoundError:
            gone += 1
    if gone == len(d.session.pieces):
        return "vanished"
    if gone:
        raise Changed("some pieces vanished since the scan")
    return None


Actor = Callable[[Root, Decision], dict[str, Any] | None]


class InUseWatch:
    """Re-reads which files other processes are using, at most every ``every`` seconds while acting."""

    def __init__(self, roots: list[str], every: float = 2.0,
                 start: tuple[float, activity.InUse] | None = None) -> None:
        """``start``: (monotonic time, snapshot) already read, e.g. the plan's, used while fresh."""
        self.roots, self.every, self.at = roots, every, -1e9
        self.inuse = activity.InUse()
        self.by_piece: dict[tuple[str, str], str] = {}
        if start is not None:
            self.at, self.inuse = start
            self.by_piece = self.inuse.pieces(roots)

    def why(self, session: Session) -> str | None:
        if time.monotonic() - self.at > self.every:
            self.inuse = activity.scan_in_use(self.roots)
            self.by_piece = self.inuse.pieces(self.roots)
            self.at = time.monotonic()
        return self.inuse.why(session, self.by_piece, recheck=True)


def execute(plan: Plan, pol: Policy, env: Env, *, dry_run: bool, progress: ProgressFn | None = None,
            actors: dict[Action, Actor] | None = None,
            should_stop: Callable[[], bool] | None = None, parallel: bool = True) -> list[Outcome]:
    """Act on the plan. Dry runs perform every check but the mutation and write no audit records.
    ``parallel=False``: act in the calling thread (the daemon's own process, for a small wake-up: a pool of
    removal threads would stay with it for good).

    For every action an intent record is made durable before acting and a result record after.
    ``should_stop`` is asked between sessions: a stop never leaves a session half done."""
    actors = actors or {Action.DELETE: delete_session}
    if any(d.action is Action.ARCHIVE for d in plan.to_act):  # else archive (and zstandard) stay unloaded
        actors = _with_archive(actors, pol, env, plan.now)
    if pol.trash is not None and actors.get(Action.DELETE) is delete_session and plan.to_act and not dry_run:
        from claude_janitor.removal import (
            trash,  # (ux) delete into the trash: the same transaction, moved instead of purged
        )

        fallback = _with_archive({}, pol, env, plan.now).get(Action.ARCHIVE)
        actors = trash.bind(actors, pol, env.dirs, plan.now, fallback)
    audit = None if dry_run else audit_log(env)
    todo = plan.to_act
    outcomes: list[Outcome] = []
    roots: dict[str, Root] = {}
    watch = InUseWatch(sorted({d.session.root for d in todo}), start=plan.in_use)
    stopped = False
    # Deletions run in a few processes or threads (dry runs only stat: nothing to overlap); outcomes and
    # result records stay in plan order, and each session is still checked, then removed, as a whole.
    for d in {d.session.root: d for d in todo}.values():  # forked removers inherit the roots (and .busy)
        if _open_root(d, roots):
            roots[d.session.root].busy = watch.inuse.inodes
    # With the trash on, a removal is a few renames (nothing to overlap), and its actor (trash.actor) must be
    # the one used: sessions are acted on here, not by the removal workers (which only delete).
    removers = None if dry_run or not parallel or actors.get(Action.DELETE) is not delete_session \
        else _Removers(todo, roots, actors, inline=_workers() == 1)
    results: list[dict[str, Any]] = []  # result records not appended yet

    def finish(d: Decision, o: Outcome) -> None:
        outcomes.append(o)
        results.append(_record(d, "result", o.result, o.error, {k: v for k, v in (("archive", o.archive),
                                                                                   ("trash", o.trash)) if v}))
        if progress:
            progress(1)

    order = _InOrder(todo, finish)
    chunk: list[int] = []  # plan indices gathered for the removers, not handed out yet

    def take(block: bool) -> None:
        for n, o in removers.collect(block) if removers else ():
            order.put(n, o)

    def hand_out(final: bool = False) -> None:
        """The gathered chunk to the removers once full (or ``final``); take in what they finished."""
        if removers and chunk and (final or len(chunk) >= removers.chunk):
            while not removers.room():
                take(True)
            removers.submit(list(chunk))
            chunk.clear()
        take(False)

    def settle() -> None:
        """Everything handed out is done (and finished, in plan order)."""
        hand_out(final=True)
        while removers and removers.pending():
            take(True)

    def flush(intents: list[Decision]) -> None:
        """One durable append: the results finished so far, then the intents of the next sessions."""
        if audit:
            recs = results + [_record(x, "intent", "pending") for x in intents]
            results.clear()
            audit.append(recs)

    try:
        # Intents go out a batch (BATCH sessions) at a time, each fsync'd before any of its sessions is
        # acted on, together with the results finished by then (one append, not two, per batch). The
        # removers keep working meanwhile: no batch waits for the one before it to be done.
        written = 0
        for n, d in enumerate(todo):
            if n == written:
                if stopped or (should_stop and should_stop()):
                    break
                flush(todo[n:n + BATCH])
                written = n + BATCH
                testhooks.point("after-intent")
            testhooks.point("before-session")
            if stopped or (should_stop and should_stop()):
                stopped = True
                if removers:
                    removers.stop()
                order.put(n, Outcome(d, Result.CANCELLED, CANCELLED))
                continue
            busy = watch.why(d.session)
            if _open_root(d, roots):  # what staging checks every file of the session against
                roots[d.session.root].busy = watch.inuse.inodes
            if busy:
                order.put(n, Outcome(d, Result.SKIPPED, f"in use, kept: {busy}"))
            elif removers and removers.takes(d) and _open_root(d, roots):
                chunk.append(n)
                hand_out()
            else:
                settle()
                order.put(n, _act_one(d, roots, dry_run, actors))
        settle()
        flush([])
        if not stopped and not (should_stop and should_stop()):
            # The stores beyond sessions (planned by a full scan only), after the sessions.
            stores.execute(plan.stores, dry_run=dry_run, audit=audit, should_stop=should_stop)
        if not dry_run:  # (ux) what this sweep removed and where it went, for `janitor undo`
            from claude_janitor.removal import trash

            with contextlib.suppress(OSError):
                trash.record_last_sweep(env.dirs, plan.now, outcomes)
        if pol.history.enabled:  # the lines of the sessions removed above (and old lines), under Claude's lock
            from claude_janitor.removal import history

            plan.history = history.after_sweep(plan.decisions, outcomes, pol, plan.now, dry_run=dry_run,
                                               audit=audit)
    finally:
        if removers:  # an exception above never leaves a session being acted on in the background
            removers.close()
        for r in roots.values():
            r.close()
    return outcomes


class _InOrder:
    """Outcomes by plan index, each finished (recorded, counted) once every one before it is: workers
    answer in any order, the report and the audit log keep the plan's."""

    def __init__(self, todo: list[Decision], finish: Callable[[Decision, Outcome], None]) -> None:
        self.todo, self.finish = todo, finish
        self.done: dict[int, Outcome] = {}
        self.next = 0

    def put(self, n: int, o: Outcome) -> None:
        self.done[n] = o
        while self.next in self.done:
            self.finish(self.todo[self.next], self.done.pop(self.next))
            self.next += 1


def _once(fn: Callable[[], None]) -> Callable[[], None]:
    done: list[bool] = []

    def call() -> None:
        if not done:
            done.append(True)
            fn()
    return call


def recover_interrupted(env: Env, acting: Callable[[], None] | None = None) -> list[str]:
    """Finish or undo the removals a crashed sweep left behind (staging.recover), in every root that is
    there; each finished one is recorded in the audit log. Returns what to tell the user.

    Called under the sweep lock, before the scan, by every real sweep (one-shot and the daemon's).
    ``acting()`` is called first if there is anything to recover (see ``run``)."""
    notes: list[str] = []
    records: list[dict[str, Any]] = []
    for r in env.roots:
        try:
            root = Root(validate_root(r))
        except (ConfigError, OSError):
            continue  # build_plan reports it
        try:
            if acting is not None and staging.pending(root):
                acting()
            for got in staging.recover(root):
                notes.append(got.message)
                if got.session_id:
                    records.append(got.record(root.path))
        except (OSError, Unsafe) as e:
            notes.append(f"{r}/{staging.STAGE_DIR}: {e}")
        finally:
            root.close()
    if records:
        audit_log(env).append(records)
    return notes


def _open_root(d: Decision, roots: dict[str, Root]) -> bool:
    """Open the session's root in the calling (main) thread; False if it cannot be (then act inline)."""
    if d.session.root not in roots:
        try:
            roots[d.session.root] = Root(d.session.root)
        except OSError:
            return False
    return True


def _act_one(d: Decision, roots: dict[str, Root], dry_run: bool, actors: dict[Action, Actor]) -> Outcome:
    root = roots.get(d.session.root)
    try:
        if root is None:
            root = roots[d.session.root] = Root(d.session.root)
        if check_session(root, d) == "vanished":
            return Outcome(d, Result.VANISHED)
        if dry_run:
            return Outcome(d, Result.DRY_RUN)
        actor = actors.get(d.action)
        if actor is None:
            return Outcome(d, Result.FAILED, f"action {d.action.value!r} is not available")
        extra = actor(root, d) or {}
        return Outcome(d, Result.OK, extra.get("trash_fallback"), archive=extra.get("archive"),
                       trash=extra.get("trash"))
    except staging.Busy as e:
        return Outcome(d, Result.SKIPPED, f"in use, kept: {e}")
    except staging.Interfered as e:
        return Outcome(d, Result.FAILED, f"changed during removal, kept: {e}")
    except Changed as e:
        return Outcome(d, Result.SKIPPED, f"changed since the scan, kept: {e}")
    except Unsafe as e:
        return Outcome(d, Result.FAILED, f"refused: {e}")
    except OSError as e:
        where = f" ({e.filename})" if e.filename else ""
        return Outcome(d, Result.FAILED, f"{e.strerror or e}{where}")


def _sinks(env: Env) -> tuple[str, ...]:
    try:
        raw = config.effective_raw(env.config_path)  # the managed policy's audit_sink wins
    except ConfigError:
        return ()
    sink = raw.get("audit_sink")
    return (sink,) if sink in ("journald", "syslog") else ()


def audit_log(env: Env) -> AuditLog:
    """The audit log as configured: its sinks, its anchor (in the data dir) and its rotation."""
    try:
        raw = config.effective_raw(env.config_path)  # the managed policy's keys win
    except ConfigError:
        raw = {}
    sink = raw.get("audit_sink")
    st = config.audit_settings(raw)
    return AuditLog(env.dirs.audit_log, sinks=(sink,) if sink in ("journald", "syslog") else (),
                    anchor=env.dirs.audit_anchor, rotate_bytes=st.rotate_bytes, keep=st.keep,
                    compress=st.compress)


def recover(env: Env) -> list[dict[str, Any]]:
    """Before a sweep acts (the caller holds the sweep lock): settle what a killed run left behind.

    Every intent in the audit log without a result gets one saying what is on disk now (gone, present
    or partly), so the log tells what happened. Returns those records. A recovery that changes the disk
    (e.g. of an interrupted removal's own leftovers) belongs before the reconcile, here, so that what the
    records say is what is left."""
    roots = [str(r) for r in env.roots] or None
    return audit_log(env).reconcile(lambda p: os.path.lexists(p), roots)


def _with_archive(actors: dict[Action, Actor], pol: Policy, env: Env, now: float) -> dict[Action, Actor]:
    """Bind the archive action to the archive dir and this run's time (callers of execute need not)."""
    try:
        from claude_janitor.archive.store import bind
    except ImportError:  # zstandard missing: delete still works, archive reports itself unavailable
        return actors
    return bind(actors, pol, env.dirs, now)


def maintain_archives(env: Env, pol: Policy, now: float, *, dry_run: bool) -> dict[str, Any] | None:
    """Once per full sweep: temp files of an interrupted run, archive_retention (archive.maintenance). None
    when nothing was ever archived: then archive (and zstandard) are not even imported."""
    if not archive_dir_for(pol, env.dirs).is_dir():
        return None
    try:
        from claude_janitor.archive.maintenance import maintain
    except ImportError:
        return None
    return maintain(pol, env.dirs, now, dry_run=dry_run, audit=None if dry_run else audit_log(env))


def maintain_trash(env: Env, pol: Policy, now: float, *, dry_run: bool) -> dict[str, Any] | None:
    """Once per full sweep: purge what has been in the trash longer than ``trash`` (trash.maintain)."""
    from claude_janitor.removal import trash

    if not trash.trash_dir(env.dirs).is_dir():
        return None
    return trash.maintain(pol, env.dirs, now, dry_run=dry_run, audit=None if dry_run else audit_log(env))


def run(env: Env, now: float, *, dry_run: bool, progress: ProgressFn | None = None,
        actors: dict[Action, Actor] | None = None, should_stop: Callable[[], bool] | None = None,
        phase: Callable[[str, int | None, str], ProgressFn] | None = None,
        acting: Callable[[], None] | None = None) -> RunResult:
    """The whole sweep: plan, guard, execute.

    ``phase(label, total, unit)``, if given, is told when scanning and acting start and returns the
    counter for that phase (the CLI's progress line). ``acting()``, if given, is called once, just before
    the first change to anything but the audit log (never in a dry run): until then a signal may stop the
    run at once. Removals a crash left half way are finished or undone first (``recover_interrupted``,
    after ``acting()`` if there is one), then the audit log is settled from what is on disk (``recover``,
    crash-safe at any instant)."""
    if acting is not None:
        acting = _once(acting)
    recovered = [] if dry_run else recover_interrupted(env, acting)  # first: then the log settles on the truth
    if not dry_run:
        recover(env)
    plan, pol, seen = build_plan(env, now, progress=phase("scanning", None, "entries") if phase else progress)
    plan.warnings[:0] = recovered
    testhooks.point("after-plan")
    result = RunResult(plan=plan, policy=pol, dry_run=dry_run, files_seen=seen)
    msg = policy.guard(plan, pol, len(plan.decisions))
    if msg and not env.force:
        if dry_run:
            result.guard = msg
        else:
            raise GuardTripped(msg)
    if acting is not None and not dry_run:
        acting()
    result.archives = maintain_archives(env, pol, now, dry_run=dry_run)
    result.trash = maintain_trash(env, pol, now, dry_run=dry_run)
    act_progress = phase("checking" if dry_run else "sweeping", len(plan.to_act), "sessions") if phase else None
    result.outcomes = execute(plan, pol, env, dry_run=dry_run, progress=act_progress, actors=actors,
                              should_stop=should_stop)
    return result
