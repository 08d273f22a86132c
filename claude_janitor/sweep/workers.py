"""claude_janitor.sweep.workers."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from claude_janitor import testhooks
from claude_janitor.fs.safefs import Root
from claude_janitor.model import Action, Decision, Outcome, Result
from claude_janitor.sweep.act import CANCELLED, Actor, act_one, open_root

WORKERS = 4  # threads acting on sessions, where processes cannot be used (the daemon's own process)
PROCESSES = 8  # at most this many forked processes remove sessions: unlink/rmdir mostly wait on the disk
PROCESSES_PER_IDLE_CPU = 4  # … and this many per CPU the load leaves idle (removal_processes)
DEPTH = 2  # chunks a removal worker holds at a time (one in hand, one waiting)
MIN_WORKERS = 4  # removal processes even on a busy machine: each mostly waits on the disk
MIN_PROCESSES = 64  # fewer deletions than this are not worth forking for
CHUNK = 8  # sessions handed to a removal process at a time
_pool_obj: Any = None


def thread_pool() -> Any:
    global _pool_obj
    if _pool_obj is None:
        from concurrent.futures import ThreadPoolExecutor

        _pool_obj = ThreadPoolExecutor(WORKERS, thread_name_prefix="janitor-act")
    return _pool_obj


def thread_workers() -> int:
    # Fault-injection runs act on one session at a time, so that "the N-th session" is well defined.
    if testhooks.armed():
        return 1
    return WORKERS


class Removers:
    """Where deletions run off the main thread, in chunks of plan indices, collected as they complete.

    Forked processes (``Procs``) when this process has no other thread (``janitor sweep``, the daemon's
    full-sweep child) on Linux and there are enough deletions: each unlink/rmdir waits on the disk (on ext4
    mounted with ``discard``, for a synchronous discard of the freed block), and processes overlap those
    waits without every call handing a GIL between threads. Otherwise the thread pool, a session at a time.
    Each worker holds at most DEPTH chunks; a chunk's outcomes are taken as soon as it is done, whatever
    the order (one slow session no longer idles the other workers: the caller puts them back in plan
    order). Once stopped, sessions not yet begun come back cancelled."""

    def __init__(
        self, todo: list[Decision], roots: dict[str, Root], actors: dict[Action, Actor], *, inline: bool = False
    ) -> None:
        from multiprocessing.sharedctypes import RawValue

        self.todo, self.roots, self.actors = todo, roots, actors
        self.flag = RawValue("b", 0)  # shared with forked workers: set once the run is told to stop
        self.procs: Procs | None = None
        self.futures: dict[Any, list[int]] = {}  # thread pool: future → its plan indices
        self.ready: list[tuple[int, Outcome]] = []  # inline: acted on at once, not collected yet
        # Archives too, when the archive actor takes a chunk at once (archive.store.ArchiveActor.prepare:
        # written together, one sync pass, then each verified, published and its originals removed).
        self.archives = callable(getattr(actors.get(Action.ARCHIVE), "prepare", None))
        self.inline = inline  # fault injection (thread_workers() == 1): archives in chunks, in this thread
        removals = sum(self.takes(d) for d in todo)
        if (
            not inline
            and removals >= MIN_PROCESSES
            and sys.platform.startswith("linux")
            and threading.active_count() == 1
        ):
            for d in todo:  # opened before the fork, so every worker has them
                open_root(d, roots)
            try:
                self.procs = Procs(todo, roots, self.flag, actors, removal_processes())
            except OSError:  # e.g. EAGAIN from fork: the threads do it
                self.procs = None
        self.size, self.chunk = (
            (len(self.procs.workers), CHUNK) if self.procs else (1, CHUNK) if inline else (WORKERS, 1)
        )

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
            self.ready += zip(
                ns, act_chunk([self.todo[n] for n in ns], self.roots, self.actors, self.flag), strict=True
            )
            return
        if self.procs is not None and self.procs.send(ns):
            return
        fut = thread_pool().submit(act_chunk, [self.todo[n] for n in ns], self.roots, self.actors, self.flag)
        self.futures[fut] = ns

    def collect(self, block: bool) -> list[tuple[int, Outcome]]:
        """(plan index, outcome) of every chunk done by now; with ``block``, waits for at least one."""
        out, self.ready = self.ready, []
        if self.procs is not None:
            out += self.procs.collect(block and not self.futures and not out)
        if self.futures:
            from concurrent.futures import FIRST_COMPLETED, wait

            done, _ = wait(list(self.futures), timeout=None if block and not out else 0, return_when=FIRST_COMPLETED)
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


def act_chunk(ds: list[Decision], roots: dict[str, Root], actors: dict[Action, Actor], flag: Any) -> list[Outcome]:
    """Act on a chunk of sessions; once the stop flag is up, the rest are cancelled — except those whose
    archive is already published: they are in hand (only their originals are left to remove), and are
    finished, so that no archive is left beside a session reported untouched (the next sweep would archive
    it a second time)."""
    archiver = actors.get(Action.ARCHIVE)
    prepare = getattr(archiver, "prepare", None)
    if prepare is not None and not flag.value:  # the chunk's archives made together, before any original goes
        prepare(
            [(roots[d.session.root], d) for d in ds if d.action is Action.ARCHIVE and d.session.root in roots],
            lambda: bool(flag.value),
        )
    published = getattr(archiver, "published", None)

    def cancelled(d: Decision) -> bool:
        return bool(flag.value) and not (d.action is Action.ARCHIVE and published is not None and published(d))

    return [Outcome(d, Result.CANCELLED, CANCELLED) if cancelled(d) else act_one(d, roots, False, actors) for d in ds]


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


class Procs:
    """Forked workers, each fed chunks of plan indices on a pipe and answering a JSON line of
    (result, error) per chunk on another, in the order it got them. Each inherits the plan and the open
    roots; SIGINT/SIGTERM only raise the stop flag (the session in hand is finished, the rest of the chunk
    cancelled); each is killed if the main process dies, as a thread would be. A worker that dies has its
    chunks reported failed (its session in hand may be partly removed) and gets no more."""

    def __init__(
        self, todo: list[Decision], roots: dict[str, Root], flag: Any, actors: dict[Action, Actor], n: int
    ) -> None:
        import gc

        self.todo = todo
        self.workers: list[Worker] = []
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
                    remover_main(todo, roots, flag, task_r, res_w, actors)
                os.close(task_r)
                os.close(res_w)
                self.workers.append(Worker(pid, task_w, res_r))
        except OSError:
            self.close()  # the workers already forked read end of input and exit
            raise
        finally:
            gc.unfreeze()

    def live(self) -> list[Worker]:
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
                    out += (
                        (n, Outcome(self.todo[n], Result(r), e)) for n, (r, e) in zip(ns, json.loads(line), strict=True)
                    )
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
                out += (
                    (
                        n,
                        Outcome(
                            self.todo[n], Result.FAILED, "the process removing it died; some of its pieces may be gone"
                        ),
                    )
                    for ns in w.sent
                    for n in ns
                )
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
class Worker:
    pid: int
    task: int  # write end of its task pipe (-1: closed, the worker gets no more)
    results: int  # read end of its result pipe: one JSON line per chunk, in the order they were sent
    sent: deque[list[int]] = field(default_factory=deque)  # chunks handed out, not answered yet, in order
    buf: bytes = b""  # what was read of its answers and not parsed yet

    def end(self) -> None:
        if self.task >= 0:
            os.close(self.task)
            self.task = -1


def remover_main(
    todo: list[Decision], roots: dict[str, Root], flag: Any, tasks: int, results: int, actors: dict[Action, Actor]
) -> None:
    """A removal worker's whole life: chunks in until end of input, outcomes out; never returns."""
    import signal

    from claude_janitor.fs.procs import die_with_parent, on_stop_signals

    def stop(_sig: int) -> None:
        flag.value = 1

    code = 70
    try:
        on_stop_signals(stop)
        die_with_parent(signal.SIGKILL)
        actors = {a: actors[a] for a in (Action.DELETE, Action.ARCHIVE) if a in actors}
        with os.fdopen(tasks, "rb") as inp, os.fdopen(results, "wb", buffering=0) as out:
            for line in inp:
                res = [
                    (o.result, o.error) for o in act_chunk([todo[int(n)] for n in line.split()], roots, actors, flag)
                ]
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
