"""Watching each root's projects/ for transcript changes, reported in batches.

Only what the index needs is reported: a transcript (``projects/<project>/<id>.jsonl``) written (created,
appended, touched, moved in) or gone (deleted, moved out), and a project dir (or projects/ itself) gone.
Events are collected by a reader thread and handed over, coalesced per path, from a flush thread a moment
later, so a transcript being appended to costs one index update per ``debounce`` seconds at most.

On Linux the watcher uses inotify directly and watches exactly two levels: projects/ and each project dir
in it (1 + the number of projects watches). Per-session folders, subagent transcripts and tool results are
never watched: a recursive watch would hold one watch per folder (~30k for a 10k-session cache, ~20 MB
in the daemon) and wake the daemon for every file a sweep removes inside them. Elsewhere (macOS) watchdog
watches projects/ recursively and the same changes are picked out of its events.

Failures never crash the daemon: a root that cannot be watched (projects/ missing, inotify watch or
instance limits) is reported in ``problems`` and retried by ``ensure()``; a kernel queue overflow (events
lost) calls ``on_overflow`` so the daemon falls back to a full scan.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import struct
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

WATCHDOG_LOGGERS = ("watchdog.observers.inotify_c", "watchdog.observers.inotify")


@dataclass(frozen=True, slots=True)
class Change:
    kind: str  # "write" | "gone" | "dir-gone" | "dir-new" | "file"
    root: str  # for "file": the file's tag (e.g. "pins", "config")
    rel: str  # relative to root: "projects/<p>/<id>.jsonl", or "projects/<p>" / "projects" for dir-gone,
    # "projects" for dir-new (a root's projects/ is watched again); for "file": the file's path


def transcript_parts(rel: str) -> tuple[str, str] | None:
    """(project, session_id) if ``rel`` names a transcript directly inside a project dir."""
    parts = rel.split("/")
    if len(parts) == 3 and parts[0] == "projects" and _is_transcript(parts[2]):
        return parts[1], parts[2][:-6]
    return None


def _is_transcript(name: str) -> bool:
    return name.endswith(".jsonl") and len(name) > 6


# ---- inotify(7) ------------------------------------------------------------------------------------

IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x2, 0x4, 0x8
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
IN_DELETE_SELF, IN_MOVE_SELF = 0x400, 0x800
IN_Q_OVERFLOW, IN_IGNORED = 0x4000, 0x8000
IN_ONLYDIR, IN_DONT_FOLLOW, IN_ISDIR = 0x01000000, 0x02000000, 0x40000000
IN_CLOEXEC, IN_NONBLOCK = 0o2000000, 0o4000
_SELF = IN_DELETE_SELF | IN_MOVE_SELF
_GONE = IN_DELETE | IN_MOVED_FROM
# A dir watched for something that is not there yet (projects/, a Claude dir, a config dir: the nearest
# dir that exists on the way to it) or for a file in it (the pins file, the config files).
EXTRA_MASK = IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | _GONE | _SELF | IN_ONLYDIR
PROJECTS_MASK = IN_CREATE | IN_MOVED_TO | _GONE | _SELF | IN_ONLYDIR | IN_DONT_FOLLOW
PROJECT_MASK = (IN_CREATE | IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_TO | _GONE | _SELF | IN_ONLYDIR
                | IN_DONT_FOLLOW)
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len


class Inotify:
    """One inotify instance through libc (no dependency, nothing imported but ctypes)."""

    def __init__(self) -> None:
        import ctypes

        self._libc = ctypes.CDLL(None, use_errno=True)
        fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def add(self, path: str, mask: int) -> int:
        import ctypes

        wd = self._libc.inotify_add_watch(self.fd, os.fsencode(path), ctypes.c_uint32(mask))
        if wd < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e), path)
        return int(wd)

    def rm(self, wd: int) -> None:
        self._libc.inotify_rm_watch(self.fd, wd)  # EINVAL if already gone: nothing to do

    def read(self) -> list[tuple[int, int, str]]:
        """Pending events as (wd, mask, name); [] if there are none."""
        try:
            buf = os.read(self.fd, 256 * 1024)
        except BlockingIOError:
            return []
        out = []
        off = 0
        while off + _HEADER.size <= len(buf):
            wd, mask, _, n = _HEADER.unpack_from(buf, off)
            off += _HEADER.size
            name = buf[off:off + n].split(b"\0", 1)[0]
            off += n
            out.append((wd, mask, os.fsdecode(name)))
        return out

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


# ---- the watcher -----------------------------------------------------------------------------------

class Watcher:
    """Reports transcript changes under each root's projects/ (Linux: inotify, two levels deep).

    ``observer_factory``: makes the inotify instance (tests pass one that fails as at the kernel limits)."""

    def __init__(self, roots: list[str], on_changes: Callable[[list[Change]], None],
                 on_overflow: Callable[[], None], *, debounce: float = 0.5,
                 observer_factory: Callable[[], Any] | None = None, files: dict[str, str] | None = None) -> None:
        """``files``: path -> tag of files whose changes (written, replaced, removed) are reported as
        Change("file", tag, path), even if they or their dirs do not exist yet."""
        self.roots = [str(r) for r in roots]
        self.files = {os.path.abspath(p): t for p, t in (files or {}).items()}
        self._extra: dict[int, set[str]] = {}  # wd -> dirs watched for what is not there yet, or for files
        self._extra_wd: dict[str, int] = {}
        self._anchored: set[str] = set()  # roots whose projects/ is missing and awaited by an extra watch
        self.on_changes = on_changes
        self.on_overflow = on_overflow
        self.debounce = debounce
        self.observer_factory = observer_factory
        self.problems: dict[str, str] = {}  # root -> why it is not (fully) watched
        self._ino: Any = None
        self._wds: dict[int, tuple[str, str]] = {}  # wd -> (root, "projects" | "projects/<p>")
        self._by_dir: dict[tuple[str, str], int] = {}
        self._pending: dict[tuple[str, str], Change] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._stop_r = self._stop_w = -1
        self._reader: threading.Thread | None = None
        self._flusher: threading.Thread | None = None

    # ---- lifecycle ------------------------------------------------------------------------------

    def start(self) -> dict[str, str]:
        """Start watching every root; returns the problems (root -> reason) of those not watched."""
        self._flusher = threading.Thread(target=self._flush_loop, name="janitor-watch-flush", daemon=True)
        self._flusher.start()
        return self.ensure()

    def _open(self) -> bool:
        try:
            self._ino = (self.observer_factory or Inotify)()
        except OSError as e:
            return self._unavailable(e)
        self._stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._reader = threading.Thread(target=self._read_loop, name="janitor-watch", daemon=True)
        self._reader.start()
        return True

    def ensure(self) -> dict[str, str]:
        """(Re)watch every root and project dir not currently watched. Cheap when all are (one listing of
        each projects/)."""
        with self._lock:
            if self._ino is None and not self._open():
                return dict(self.problems)
            for r in self.roots:
                self._ensure_root(r)
            self._ensure_extra()
            return dict(self.problems)

    @property
    def needs_retry(self) -> bool:
        """Some root is not watched for a reason no file event will tell the end of (watch limits, no
        inotify): the daemon has to try again now and then. A missing projects/ or Claude dir is awaited
        by a watch on the nearest dir that exists."""
        return self._ino is None or bool(set(self.problems) - self._anchored)

    def _ensure_extra(self) -> None:
        """Watch, for each missing projects/ and for each file of ``files``, the nearest existing dir on the
        way to it; drop the extra watches no longer needed."""
        want: set[str] = set()
        self._anchored.clear()
        for r in self.roots:
            if (r, "projects") not in self._by_dir and self.problems.get(r, "").endswith("does not exist (yet)"):
                d = _nearest_dir(os.path.join(r, "projects"))
                if d is not None:
                    want.add(d)
                    self._anchored.add(r)
        for path in self.files:
            d = _nearest_dir(path)
            if d is not None:
                want.add(d)
        for d in list(self._extra_wd):
            if d not in want:
                self._drop_extra(d)
        for d in want - set(self._extra_wd):
            try:
                wd = self._ino.add(d, EXTRA_MASK)
            except OSError as e:
                log.warning("cannot watch %s: %s", d, e.strerror or e)
                self._anchored = {r for r in self._anchored if not os.path.join(r, "projects").startswith(d + "/")}
                continue
            self._extra.setdefault(wd, set()).add(d)
            self._extra_wd[d] = wd

    def _drop_extra(self, d: str) -> None:
        wd = self._extra_wd.pop(d)
        paths = self._extra.get(wd, set())
        paths.discard(d)
        if not paths:
            self._extra.pop(wd, None)
            if wd not in self._wds:
                self._ino.rm(wd)

    def _extra_event(self, wd: int, mask: int, name: str) -> None:
        """An event on an extra watch (under the lock): a file of ``files`` changed, or something on the way
        to a missing dir or file appeared (or the watched dir went): watch again from there."""
        dirs = self._extra.get(wd, set())
        if mask & IN_IGNORED:
            for d in list(dirs):
                self._extra_wd.pop(d, None)
            self._extra.pop(wd, None)
        elif name and not mask & IN_ISDIR:
            for d in dirs:
                tag = self.files.get(os.path.join(d, name))
                if tag is not None:
                    self._put(Change("file", tag, os.path.join(d, name)))
        if mask & (_SELF | IN_IGNORED) or (mask & IN_ISDIR and mask & (IN_CREATE | IN_MOVED_TO)):
            # Closer to (or farther from) what is awaited: watch again from where things stand now.
            missing = [r for r in self.roots if (r, "projects") not in self._by_dir]
            for r in missing:
                self._ensure_root(r)
                if (r, "projects") in self._by_dir:
                    self._put(Change("dir-new", r, "projects"))
            self._ensure_extra()

    def _ensure_root(self, root: str) -> None:
        path = os.path.join(root, "projects")
        if (root, "projects") not in self._by_dir:
            if not os.path.isdir(path) or os.path.islink(path):
                self.problems[root] = f"{path} does not exist (yet)"
                return
            try:
                self._add(root, "projects")
            except OSError as e:
                self.problems[root] = f"cannot watch {path}: {e.strerror or e}"
                log.warning("cannot watch %s (%s): relying on full scans for it", path, e.strerror or e)
                return
            log.info("watching %s", path)
        problem = None
        for name in _subdirs(path):
            if (root, f"projects/{name}") in self._by_dir:
                continue
            try:
                self._add(root, f"projects/{name}")
            except OSError as e:
                if e.errno in (errno.ENOENT, errno.ENOTDIR):
                    continue  # gone meanwhile, or a symlink (never followed)
                problem = f"cannot watch {path}/{name}: {e.strerror or e}"
        if problem:
            self.problems[root] = problem
            log.warning("%s: relying on full scans for %s", problem, root)
        else:
            self.problems.pop(root, None)

    def _add(self, root: str, rel: str) -> int:
        wd = self._ino.add(os.path.join(root, rel), PROJECTS_MASK if rel == "projects" else PROJECT_MASK)
        old = self._wds.get(wd)
        if old is not None and old != (root, rel):
            self._by_dir.pop(old, None)  # the same inode under a new name (moved back in)
        self._wds[wd] = (root, rel)
        self._by_dir[(root, rel)] = wd
        return wd

    def _forget(self, root: str, rel: str, *, rm: bool) -> None:
        """Stop tracking ``rel`` (and, for projects/, every project dir of the root)."""
        keys = [k for k in self._by_dir if k[0] == root] if rel == "projects" else [(root, rel)]
        for k in keys:
            wd = self._by_dir.pop(k, None)
            if wd is None:
                continue
            if self._wds.get(wd) == k:
                del self._wds[wd]
            if rm:
                self._ino.rm(wd)

    def stop(self) -> None:
        """Stop watching, then hand over what was collected."""
        if self._reader is not None:
            os.write(self._stop_w, b"x")
            self._reader.join(timeout=5)
            self._reader = None
        with self._lock:
            if self._ino is not None:
                self._ino.close()
                self._ino = None
                os.close(self._stop_r)
                os.close(self._stop_w)
            self._wds.clear()
            self._by_dir.clear()
            self._extra.clear()
            self._extra_wd.clear()
        self._stop_flusher()

    def _unavailable(self, e: OSError) -> bool:
        """No watcher could be started: every root is left to full scans."""
        self._ino = None
        for r in self.roots:
            self.problems[r] = f"cannot start the file watcher: {e.strerror or e}"
        log.warning("file watching unavailable (%s): relying on full scans", e.strerror or e)
        return False

    def _stop_flusher(self) -> None:
        """Let the flush thread hand over what is left, and end."""
        self._stopping = True
        self._wake.set()
        if self._flusher is not None:
            self._flusher.join(timeout=5)

    @property
    def healthy(self) -> bool:
        return self._ino is not None and not self.problems

    @property
    def watch_count(self) -> int:
        return len(self._wds)

    # ---- events ---------------------------------------------------------------------------------

    def _read_loop(self) -> None:
        poller = select.poll()
        poller.register(self._ino.fileno(), select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        while True:
            ready = {fd for fd, _ in poller.poll()}
            if self._stop_r in ready:
                return
            overflow = False
            with self._lock:
                if self._ino is None:
                    return
                for wd, mask, name in self._ino.read():
                    overflow |= self._event(wd, mask, name)
            if self._pending:
                self._wake.set()
            if overflow:
                self._overflow()

    def _event(self, wd: int, mask: int, name: str) -> bool:
        """One inotify event (under the lock); True on a queue overflow."""
        if mask & IN_Q_OVERFLOW:
            return True
        if wd in self._extra:
            self._extra_event(wd, mask, name)
        where = self._wds.get(wd)
        if where is None:
            return False
        root, rel = where
        if mask & IN_IGNORED:  # the watch is gone (its dir removed or unwatched)
            self._forget(root, rel, rm=False)
            if rel == "projects":
                self._projects_gone(root)
            return False
        if rel == "projects":
            if mask & _SELF:  # projects/ itself removed or moved away: awaited again from its root
                self._forget(root, rel, rm=True)
                self._projects_gone(root)
                self._put(Change("dir-gone", root, "projects"))
            elif mask & IN_ISDIR and name:
                sub = f"projects/{name}"
                if mask & _GONE:
                    self._forget(root, sub, rm=True)  # a moved dir keeps its watch: drop it
                    self._put(Change("dir-gone", root, sub))
                elif mask & (IN_CREATE | IN_MOVED_TO):
                    self._new_project(root, sub)
            return False
        if mask & _SELF:
            if mask & IN_MOVE_SELF:  # moved away; the parent's IN_MOVED_FROM reports it (or did)
                self._forget(root, rel, rm=True)
            return False
        if mask & IN_ISDIR or not _is_transcript(name):
            return False
        self._put(Change("gone" if mask & _GONE else "write", root, f"{rel}/{name}"))
        return False

    def _projects_gone(self, root: str) -> None:
        """A root's projects/ was removed or moved away: watch for its return (a new one may already be
        there: then it is watched at once and reported as "dir-new")."""
        self.problems[root] = f"{root}/projects was removed"
        self._ensure_root(root)
        if (root, "projects") in self._by_dir:
            self._put(Change("dir-new", root, "projects"))
        else:
            self.problems[root] = f"{os.path.join(root, 'projects')} does not exist (yet)"
        self._ensure_extra()

    def _new_project(self, root: str, rel: str) -> None:
        """A project dir created or moved in: watch it, then report the transcripts already in it (written
        before the watch was added, or moved in with the dir)."""
        try:
            self._add(root, rel)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ENOTDIR):
                self.problems[root] = f"cannot watch {root}/{rel}: {e.strerror or e}"
                log.warning("%s: relying on full scans for %s", self.problems[root], root)
            return
        try:
            with os.scandir(os.path.join(root, rel)) as it:
                for e in it:
                    if _is_transcript(e.name):
                        self._put(Change("write", root, f"{rel}/{e.name}"))
        except OSError:
            pass

    def _put(self, c: Change) -> None:
        self._pending[(c.root, c.rel)] = c

    def _overflow(self) -> None:
        log.warning("file events were lost (inotify queue overflow): the next sweep is a full scan")
        try:
            self.on_overflow()
        except Exception:  # noqa: BLE001
            log.exception("overflow handler failed")

    def flush(self) -> None:
        """Hand over everything collected so far (also called by the flush thread)."""
        with self._lock:
            batch = list(self._pending.values())
            self._pending.clear()
        if batch:
            try:
                self.on_changes(batch)
            except Exception:  # noqa: BLE001 - the watcher must survive a failing consumer
                log.exception("updating the index from file events failed; the next full scan will catch up")

    def _flush_loop(self) -> None:
        while True:
            self._wake.wait()
            if self._stopping:
                self.flush()
                return
            # Let a burst of writes settle, then hand it over in one go.
            threading.Event().wait(self.debounce)
            self._wake.clear()
            self.flush()
            if self._stopping:
                return


def _nearest_dir(path: str) -> str | None:
    """The nearest existing directory above ``path`` (its parent if that exists), without following a
    symlink at the end; None if there is none (no /?)."""
    d = os.path.dirname(os.path.abspath(path))
    while True:
        if os.path.isdir(d) and not os.path.islink(d):
            return d
        up = os.path.dirname(d)
        if up == d:
            return None
        d = up


def _subdirs(path: str) -> list[str]:
    try:
        with os.scandir(path) as it:
            return [e.name for e in it if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


# ---- elsewhere: watchdog ------------------------------------------------------------------------------

class _OverflowLogHandler(logging.Handler):
    """watchdog handles a queue overflow itself (it re-adds its watches) and only logs it: listen for that."""

    def __init__(self, callback: Callable[[], None]) -> None:
        super().__init__(logging.WARNING)
        self.callback = callback

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if "overflow" in record.getMessage().lower():
                self.callback()
        except Exception:  # noqa: BLE001 - a logging handler must never raise
            pass


class WatchdogWatcher(Watcher):
    """The same reports from a recursive watchdog observer (platforms without inotify)."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self._watches: dict[str, Any] = {}
        self._log_handler = _OverflowLogHandler(self._overflow)

    def _open(self) -> bool:
        from watchdog.observers import Observer

        try:
            self._ino = (self.observer_factory or Observer)()
            self._ino.start()
        except OSError as e:
            return self._unavailable(e)
        for name in WATCHDOG_LOGGERS:
            logging.getLogger(name).addHandler(self._log_handler)
        return True

    def _ensure_extra(self) -> None:
        """Not on watchdog: missing dirs are retried by the daemon (``needs_retry``), files only at SIGHUP."""

    def _ensure_root(self, root: str) -> None:
        alive = {e.watch.path for e in getattr(self._ino, "emitters", ()) if e.is_alive()}
        w = self._watches.get(root)
        if w is not None and w.path in alive:
            self.problems.pop(root, None)
            return
        if w is not None:
            try:
                self._ino.unschedule(w)
            except (KeyError, ValueError):
                pass
            self._watches.pop(root, None)
        path = os.path.join(root, "projects")
        if not os.path.isdir(path) or os.path.islink(path):
            self.problems[root] = f"{path} does not exist (yet)"
            return
        try:
            self._watches[root] = self._ino.schedule(self._handler(root), path, recursive=True)
            self.problems.pop(root, None)
        except OSError as e:
            self.problems[root] = f"cannot watch {path}: {e.strerror or e}"

    def stop(self) -> None:
        for name in WATCHDOG_LOGGERS:
            logging.getLogger(name).removeHandler(self._log_handler)
        if self._ino is not None:
            try:
                self._ino.stop()
                self._ino.join(timeout=5)
            except RuntimeError:
                pass
            self._ino = None
        self._stop_flusher()

    def _handler(self, root: str) -> Any:
        from watchdog.events import FileSystemEventHandler

        watcher = self
        prefix = root.rstrip("/") + "/"

        class Handler(FileSystemEventHandler):
            def dispatch(self, event: Any) -> None:
                watcher._watchdog_event(prefix, root, event)

        return Handler()

    def _watchdog_event(self, prefix: str, root: str, event: Any) -> None:
        def rel(p: Any) -> str | None:
            p = os.fsdecode(p) if p else ""
            return p[len(prefix):] if p.startswith(prefix) else None

        src = rel(event.src_path)
        dest = rel(getattr(event, "dest_path", "")) if event.event_type == "moved" else None
        out: list[Change] = []
        if event.is_directory:
            if event.event_type in ("deleted", "moved") and src is not None and src.count("/") <= 1:
                out.append(Change("dir-gone", root, src))
        elif event.event_type in ("created", "modified", "closed", "deleted", "moved", "attrib"):
            if src is not None and transcript_parts(src):
                out.append(Change("gone" if event.event_type in ("deleted", "moved") else "write", root, src))
            if dest is not None and transcript_parts(dest):
                out.append(Change("write", root, dest))
        if out:
            with self._lock:
                for c in out:
                    self._put(c)
            self._wake.set()


def make_watcher(roots: list[str], on_changes: Callable[[list[Change]], None], on_overflow: Callable[[], None],
                 *, debounce: float = 0.5, observer_factory: Callable[[], Any] | None = None,
                 files: dict[str, str] | None = None) -> Watcher:
    """inotify on Linux, watchdog elsewhere."""
    cls = Watcher if sys.platform.startswith("linux") else WatchdogWatcher
    return cls(roots, on_changes, on_overflow, debounce=debounce, observer_factory=observer_factory, files=files)
