"""The table of inotify watches of a watcher: projects/ and each project dir of every root (two levels,
never deeper), plus the "extra" watches on the nearest existing dir of what is awaited (a missing
projects/ or Claude dir, the pins and config files). Which roots are not (fully) watched, and why, is in
``problems``; the reading of events is watch.Watcher's."""

from __future__ import annotations

import errno
import logging
import os
import threading
from typing import Any

from claude_janitor.cache.layout import transcript_id
from claude_janitor.daemon.batch import Batches, Change
from claude_janitor.daemon.inotify import (
    EXTRA_MASK,
    IN_CREATE,
    IN_IGNORED,
    IN_ISDIR,
    IN_MOVED_TO,
    PROJECT_MASK,
    PROJECTS_MASK,
    SELF,
)

log = logging.getLogger("claude_janitor.daemon.watch")


def transcript_parts(rel: str) -> tuple[str, str] | None:
    """(project, session_id) if ``rel`` names a transcript directly inside a project dir."""
    parts = rel.split("/")
    if len(parts) == 3 and parts[0] == "projects" and is_transcript(parts[2]):
        return parts[1], parts[2][:-6]
    return None


def is_transcript(name: str) -> bool:
    return transcript_id(name) is not None


class WatchTable:
    """The watches of ``roots`` and of ``files`` (path -> tag), and what they are for. Changed under
    ``lock`` only."""

    def __init__(self, roots: list[str], files: dict[str, str] | None, batches: Batches,
                 lock: threading.Lock) -> None:  # fmt: skip
        self.roots = [str(r) for r in roots]
        self.files = {os.path.abspath(p): t for p, t in (files or {}).items()}
        self.batches = batches
        self._lock = lock
        self._extra: dict[int, set[str]] = {}  # wd -> dirs watched for what is not there yet, or for files
        self._extra_wd: dict[str, int] = {}
        self._anchored: set[str] = set()  # roots whose projects/ is missing and awaited by an extra watch
        self._want: set[str] = set()  # the dirs the extra watches were meant for when last placed
        self.problems: dict[str, str] = {}  # root -> why it is not (fully) watched
        self._ino: Any = None
        self._wds: dict[int, tuple[str, str]] = {}  # wd -> (root, "projects" | "projects/<p>")
        self._by_dir: dict[tuple[str, str], int] = {}

    @property
    def needs_retry(self) -> bool:
        """Some root is not watched for a reason no file event will tell the end of (watch limits, no
        inotify): the daemon has to try again now and then. A missing projects/ or Claude dir is awaited
        by a watch on the nearest dir that exists."""
        return self._ino is None or bool(set(self.problems) - self._anchored)

    def _ensure_extra(self) -> None:
        """Watch, for each missing projects/ and for each file of ``files``, the nearest existing dir on the
        way to it; drop the extra watches no longer needed."""
        want, self._anchored = self._wanted()
        self._want = want
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

    def _wanted(self) -> tuple[set[str], set[str]]:
        """The dirs to watch for what is awaited, and the roots whose missing projects/ they await."""
        want: set[str] = set()
        anchored: set[str] = set()
        for r in self.roots:
            if (r, "projects") not in self._by_dir and self.problems.get(r, "").endswith("does not exist (yet)"):
                d = _nearest_dir(os.path.join(r, "projects"))
                if d is not None:
                    want.add(d)
                    anchored.add(r)
        for path in self.files:
            d = _nearest_dir(path)
            if d is not None:
                want.add(d)
        return want, anchored

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
                    self.batches.put(Change("file", tag, os.path.join(d, name)))
        if mask & (SELF | IN_IGNORED) or (mask & IN_ISDIR and mask & (IN_CREATE | IN_MOVED_TO)):
            # Closer to (or farther from) what is awaited: watch again from where things stand now.
            self.await_missing(report=True)

    def await_missing(self, *, report: bool) -> None:
        """Watch each missing projects/ that is there now (reported as "dir-new" if ``report``), and the
        nearest existing dir on the way to what is still missing. Looked at again until the watches stand
        where things are: a dir made between the look and the watch (`mkdir -p` of a new Claude dir) would
        otherwise go unseen, with no event left to tell."""
        for _ in range(8):  # each round goes at least one dir deeper; paths are not that deep
            for r in [r for r in self.roots if (r, "projects") not in self._by_dir]:
                self._ensure_root(r)
                if report and (r, "projects") in self._by_dir:
                    self.batches.put(Change("dir-new", r, "projects"))
            self._ensure_extra()
            if not self._moved_on():
                return

    def _moved_on(self) -> bool:
        """Whether something awaited came nearer since the extra watches were placed."""
        for r in self._anchored:
            path = os.path.join(r, "projects")
            if os.path.isdir(path) and not os.path.islink(path):
                return True
        return self._wanted()[0] != self._want

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
        wd: int = self._ino.add(os.path.join(root, rel), PROJECTS_MASK if rel == "projects" else PROJECT_MASK)
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

    @property
    def healthy(self) -> bool:
        return self._ino is not None and not self.problems

    @property
    def watch_count(self) -> int:
        return len(self._wds)

    def _projects_gone(self, root: str) -> None:
        """A root's projects/ was removed or moved away: watch for its return (a new one may already be
        there: then it is watched at once and reported as "dir-new")."""
        self.problems[root] = f"{root}/projects was removed"
        self._ensure_root(root)
        if (root, "projects") in self._by_dir:
            self.batches.put(Change("dir-new", root, "projects"))
        else:
            self.problems[root] = f"{os.path.join(root, 'projects')} does not exist (yet)"
        self.await_missing(report=True)

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
                for entry in it:
                    if is_transcript(entry.name):
                        self.batches.put(Change("write", root, f"{rel}/{entry.name}"))
        except OSError:
            pass


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
