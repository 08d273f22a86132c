"""Reading ahead of the scan in forked processes: the transcripts' tails and heads and the session folders'
walks, the CPU-bound part of a scan (at 10k sessions ~3/4 of it, all on one core while the other cores
idle; issues 11 and 14).

The scan (cache/scan.py) stays the one place that decides what is what: it lists and lstats every entry
itself, in its own order, and asks ``Ahead`` for what a reader made of a transcript or a folder. A reader
walks the same dirs in the same order (``jobs``) and takes every n-th job; its answer is used only when it
was made from the entry the scan's own lstat sees (a transcript: same inode, size, mtime and ctime, and
unchanged while it was read; a folder: same inode, mtime and ctime). Anything else — a reader behind, dead or never
started, an entry changed, added or gone between the two listings, a rule the two disagree on — and the
scan reads the entry itself, as it does with no readers. So what the scan returns is what the serial scan
returns; readers only change when the work is done. They read only, and are killed when the scan ends.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import stat
import struct
import sys
import threading
from collections.abc import Iterator
from typing import Any

from claude_janitor.cache.layout import DIR_STORES, NEVER_TOUCHED, UUID_RE, transcript_id
from claude_janitor.fs.tree import each_entry, lstat_entry
from claude_janitor.model import Session

READERS_ENV = "JANITOR_SCAN_READERS"  # a number: that many readers whatever the cache (0: none; tests)
MIN_TRANSCRIPTS = 256  # fewer are read faster than readers fork
MAX_READERS = 8
CHUNK = 64  # answers a reader sends at once (and at the end of each section)
HOLD_MAX = 4 * CHUNK  # a reader with this many answers held is ahead: its pipe is not read until the scan asks
READ_MAX = 1 << 16  # bytes read from a pipe at once (its capacity)
# What read_transcript sets on a session: a reader's answer for a transcript is these values.
FIELDS = (
    "last_record_time",
    "project_path",
    "desktop_entrypoint",
    "entrypoint",
    "title_text",
    "title_cut",
    "title_source",
    "replied",
    "unreadable",
    "notes",
)
_LEN = struct.Struct("<I")

Ident = tuple[int, ...]


def transcript_ident(st: os.stat_result) -> Ident:
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def dir_ident(st: os.stat_result) -> Ident:
    """A folder as a reader walked it: an entry made or removed in it changes its times. A change deeper
    down, or to a file's content, after the walk is caught where any change after a walk is: by the
    removal's own check of the folder (removal.checks.matches_scan), which keeps the session."""
    return (st.st_ino, st.st_dev, st.st_mtime_ns, st.st_ctime_ns)


def section_order(section: str) -> tuple[int, str]:
    """Where a section comes in a scan: the projects by name, then the id-keyed stores in DIR_STORES' order."""
    if section.startswith("projects/"):
        return (0, section)
    return (1, str(DIR_STORES.index(section)) if section in DIR_STORES else section)


def _is(e: os.DirEntry[str], want: str) -> bool:
    """Is the entry a plain file ("f") or a dir ("d"), from its listing's type (no lstat where the
    filesystem gives the type: a reader lists ~8 entries for every one it reads)."""
    try:
        return e.is_file(follow_symlinks=False) if want == "f" else e.is_dir(follow_symlinks=False)
    except OSError:
        return False


def jobs(root: str, root_dev: int) -> Iterator[tuple[str, str, os.DirEntry[str] | None]]:
    """(section, kind, entry) of what the scan will ask for, in its order: per project (sorted), its
    transcripts ("t") in listing order, then its session folders ("d") by name; then the id-keyed store
    folders. Mirrors cache/scan.py's _RootScan; where the two differ the scan just reads for itself. Kinds
    come from the listing's types: each reader lstats only the entries it answers for (``answer``)."""
    from claude_janitor.cache.scan import store_dir_ok

    projects = os.path.join(root, "projects")
    if store_dir_ok(root, "projects", root_dev):
        for pe in sorted(each_entry(projects), key=lambda e: e.name):
            pst = lstat_entry(pe)
            if pst is None or not stat.S_ISDIR(pst.st_mode) or pst.st_dev != root_dev:
                continue
            section = f"projects/{pe.name}"
            ids: set[str] = set()
            dirs: list[os.DirEntry[str]] = []
            for e in each_entry(pe.path):
                if _is(e, "f") and (sid := transcript_id(e.name)) is not None:
                    ids.add(sid)
                    yield section, "t", e
                elif e.name not in NEVER_TOUCHED and _is(e, "d"):
                    dirs.append(e)
            for e in sorted(dirs, key=lambda d: d.name):
                if e.name in ids or UUID_RE.match(e.name):
                    yield section, "d", e
            yield section, "", None  # the section's end
    for store in DIR_STORES:
        if not store_dir_ok(root, store, root_dev):
            continue
        for e in each_entry(os.path.join(root, store)):
            if UUID_RE.match(e.name) and _is(e, "d"):
                yield store, "d", e
        yield store, "", None


def answer(section: str, kind: str, e: os.DirEntry[str], root_dev: int) -> tuple[Ident, Any] | None:
    """What a reader makes of one job: (ident of what was read, answer), or None (the scan reads it). A
    folder's answer is (its dir_usage, whether it holds a title file: None outside projects/)."""
    st = lstat_entry(e)
    if st is None:
        return None
    if kind == "t":
        if not stat.S_ISREG(st.st_mode):
            return None
        from claude_janitor.cache.transcript import read_transcript

        s = Session(session_id="", root="", project="")
        read_transcript(s, e.path, st)
        try:
            after = os.lstat(e.path)
        except OSError:
            return None
        if transcript_ident(after) != transcript_ident(st):
            return None  # written to while it was read: the scan reads it itself
        return transcript_ident(st), tuple(getattr(s, f) for f in FIELDS)
    if not stat.S_ISDIR(st.st_mode) or st.st_dev != root_dev:
        return None  # not a folder the scan walks (it says why)
    from claude_janitor.cache.scan import dir_usage
    from claude_janitor.cache.titles import CUSTOM_TITLE_FILE

    # A session folder (in projects/) also says whether it holds Claude Code's title file: the scan opens
    # it only then (a folder given one after this changes its mtime, and the scan walks it itself)
    titled = os.path.lexists(os.path.join(e.path, CUSTOM_TITLE_FILE)) if section.startswith("projects/") else None
    return dir_ident(st), (dir_usage(e.path, st.st_dev), titled)


def readers_for(root: str) -> int:
    """How many readers to fork for a scan of ``root``: none on a small cache, on one CPU, off Linux, or
    in a process with other threads (a fork there may copy a lock some thread holds); else one per CPU
    the load leaves idle (at least one: a reader takes the reading off the scan's own process)."""
    env = os.environ.get(READERS_ENV)
    if env is not None:
        try:
            return max(0, min(int(env), MAX_READERS))
        except ValueError:
            return 0
    if not sys.platform.startswith("linux") or threading.active_count() != 1:
        return 0
    cpus = len(os.sched_getaffinity(0))
    if cpus < 2 or not _many_transcripts(root):
        return 0
    try:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0]) - 1
    except (OSError, ValueError, IndexError):
        running = 0
    return max(1, min(cpus - running, cpus, MAX_READERS))


def _many_transcripts(root: str) -> bool:
    n = 0
    for pe in each_entry(os.path.join(root, "projects")):
        if pe.is_dir(follow_symlinks=False):
            for e in each_entry(pe.path):
                n += e.name.endswith(".jsonl")
                if n >= MIN_TRANSCRIPTS:
                    return True
    return False


class Ahead:
    """The scan's side of the readers: ``get`` gives a reader's answer for one entry, or None."""

    def __init__(self, root: str, root_dev: int, n: int) -> None:
        self.pids: list[int] = []
        self.pipes: dict[int, bytearray] = {}  # read end of each live reader's pipe → bytes not parsed yet
        self.passed: dict[int, tuple[int, str]] = {}  # each live reader's last section answered in full
        # section → answers not asked yet, each with the pipe it came by
        self.held: dict[str, dict[tuple[str, str], tuple[int, Ident, Any]]] = {}
        self.holding: dict[int, int] = {}  # each pipe's answers held
        self.finished: set[str] = set()  # sections the scan is done with: answers for them are dropped
        import gc

        gc.freeze()  # the readers' collector leaves the inherited heap alone (its pages stay shared)
        try:
            for k in range(n):
                r, w = os.pipe()
                pid = os.fork()
                if pid == 0:  # pragma: no cover (a reader; it never returns)
                    os.close(r)
                    for fd in self.pipes:
                        os.close(fd)
                    _reader_main(root, root_dev, k, n, w)
                os.close(w)
                self.pids.append(pid)
                self.pipes[r] = bytearray()
                self.passed[r] = (-1, "")
                self.holding[r] = 0
        except OSError:  # e.g. EAGAIN from fork: fewer readers, or none
            pass
        finally:
            gc.unfreeze()

    def get(self, section: str, kind: str, path: str, ident: Ident) -> Any | None:
        """A reader's answer for ``path`` if it was made from the entry ``ident`` names, else None.

        Only what readers that may still send it sent is taken in: a reader past the section has sent
        all it will for it (a section it never saw: nothing), and one with HOLD_MAX answers held is ahead
        of the scan (each reader answers in the scan's order, so if it owns ``path`` it skipped it). The
        rest waits in its pipe, and the reader with it: taking in everything that came held the answers
        of a reader ahead of a slower one until the scan came to them (13,711 of 10k sessions' at once,
        4 MB of the scan's peak RSS). So at most HOLD_MAX + CHUNK answers a reader are held."""
        key, order = (kind, path), section_order(section)
        while key not in self.held.get(section, {}):
            behind = [fd for fd, p in self.passed.items() if p < order and self.holding[fd] < HOLD_MAX]
            if not behind:
                break
            if not any(self._take(fd) for fd in behind):  # nothing whole already read: read more
                self._read(behind)
        got = self.held.get(section, {}).pop(key, None)
        if got is None:
            return None
        self.holding[got[0]] -= 1
        return got[2] if got[1] == ident else None

    def done(self, section: str) -> None:
        """The scan is through ``section``: what is held for it will not be asked for."""
        self.finished.add(section)
        for fd, _, _ in self.held.pop(section, {}).values():
            self.holding[fd] -= 1

    def _read(self, fds: list[int]) -> None:
        """Read what is there from the pipes of ``fds`` (waiting for one to have something)."""
        ready, _, _ = select.select(fds, [], [])
        for fd in ready:
            got = os.read(fd, READ_MAX)
            if got:
                self.pipes[fd] += got
            else:  # the reader is done (or dead): nothing whole was left unread (take first, read after)
                self._drop(fd)

    def _take(self, fd: int) -> bool:
        """Take in the next whole message read from ``fd``'s pipe, if there is one."""
        buf = self.pipes[fd]
        if len(buf) < _LEN.size:
            return False
        (size,) = _LEN.unpack_from(buf)
        if len(buf) < _LEN.size + size:
            return False
        msg = pickle.loads(bytes(buf[_LEN.size : _LEN.size + size]))
        del buf[: _LEN.size + size]
        for section, kind, path, got in msg:
            if not kind:
                self.passed[fd] = section_order(section)
            elif section not in self.finished:
                held = self.held.setdefault(section, {})
                old = held.get((kind, path))
                if old is not None:  # (two answers for one path: a listing that repeats a name)
                    self.holding[old[0]] -= 1
                held[(kind, path)] = (fd, *got)
                self.holding[fd] += 1
        return True

    def _drop(self, fd: int) -> None:
        os.close(fd)
        del self.pipes[fd]
        del self.passed[fd]

    def close(self) -> None:
        """Stop every reader (they only read) and reap it; the scan goes on alone."""
        for fd in list(self.pipes):
            self._drop(fd)
        for pid in self.pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.pids = []
        self.held.clear()
        self.holding.clear()


def _reader_main(root: str, root_dev: int, k: int, n: int, w: int) -> None:  # pragma: no cover (a reader)
    """Answer every n-th job from the k-th, a chunk at a time; exit when done or the scan is gone."""
    from claude_janitor.fs.procs import die_with_parent

    code = 0
    try:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)  # a reader only reads: any stop signal just ends it
        die_with_parent(signal.SIGKILL)
        out: list[tuple[str, str, str, Any]] = []
        for i, (section, kind, e) in enumerate(jobs(root, root_dev)):
            if kind and e is not None and i % n == k:
                try:
                    got = answer(section, kind, e, root_dev)
                except Exception:  # noqa: BLE001 — the scan reads this one itself, and reports what fails
                    got = None
                if got is not None:
                    out.append((section, kind, e.path, got))
            elif not kind:
                out.append((section, "", "", None))
            if len(out) >= CHUNK or (out and not kind):
                _send(w, out)
                out = []
        if out:
            _send(w, out)
    except BaseException:  # noqa: BLE001 — e.g. the scan gone (EPIPE): nothing to tell anyone
        code = 1
    finally:
        os._exit(code)


def _send(w: int, items: list[tuple[str, str, str, Any]]) -> None:
    data = pickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_LEN.pack(len(data)) + data)
    while view:
        view = view[os.write(w, view) :]
