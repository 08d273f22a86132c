"""What the watcher's batches of changes mean for the index, and the files whose changes reach a running
daemon (the pins file, the config files). The daemon (main.Daemon) acts on the outcome: it judges the
sessions gone, schedules a full sweep where the index can no longer be trusted, reloads the config."""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from claude_janitor.config.paths import JanitorDirs, managed_policy_path
from claude_janitor.daemon.batch import Change
from claude_janitor.daemon.index import Entry, Index
from claude_janitor.daemon.watches import transcript_parts
from claude_janitor.daemon.work import MIN_STEP, shortest_expiry, uses_keep_last
from claude_janitor.errors import JanitorError
from claude_janitor.model import Policy

log = logging.getLogger("janitor.daemon")


@dataclass
class Applied:
    """What a batch of changes left for the daemon to do."""

    gone: list[Entry] = field(default_factory=list)  # indexed sessions whose transcript went
    files: set[str] = field(default_factory=set)  # tags of the watched files that changed ("pins", "config")
    projects_back: list[str] = field(default_factory=list)  # roots whose projects/ is watched again
    projects_gone: list[str] = field(default_factory=list)  # roots whose projects/ was removed


def apply_changes(changes: list[Change], index: Index, pol: Policy, now: float, *, in_full: bool) -> Applied:
    """Bring the index up to date with a batch of changes. ``in_full``: a full sweep runs in a process of
    its own; a transcript gone meanwhile is left to it (removed by it, or reported by it)."""
    out = Applied(files={ch.root for ch in changes if ch.kind == "file"})
    out.projects_back = [ch.root for ch in changes if ch.kind == "dir-new"]
    low = shortest_expiry(pol)
    keep_last = uses_keep_last(pol)
    dir_gone: list[Change] = []
    for ch in sorted(changes, key=lambda c: c.kind != "write"):  # writes first: a move is not a delete
        if ch.kind == "dir-gone":
            dir_gone.append(ch)
        elif ch.kind in ("write", "gone"):
            e = _transcript_change(ch, index, low, keep_last, now, in_full=in_full)
            if e is not None:
                out.gone.append(e)
    for ch in dir_gone:
        parts = ch.rel.split("/")
        rows = (index.in_project(ch.root, parts[1]) if len(parts) == 2
                else [e for e in index.in_root(ch.root) if e.project])  # fmt: skip
        out.gone += [e for e in rows if not (e.rel and os.path.lexists(os.path.join(e.root, e.rel)))]
        if parts == ["projects"]:  # its watch is gone with it: rebuild (and re-watch) from a full scan
            out.projects_gone.append(ch.root)
    return out


def _transcript_change(ch: Change, index: Index, low: float | None, keep_last: bool, now: float, *,
                       in_full: bool) -> Entry | None:  # fmt: skip
    """A transcript written or gone: index it (when it may expire first), or its indexed entry if gone."""
    parts = transcript_parts(ch.rel)
    if parts is None:
        return None
    project, sid = parts
    try:
        st = os.lstat(os.path.join(ch.root, ch.rel))
    except OSError:
        st = None
    if st is None:
        if in_full:
            return None  # gone during a full sweep: removed by it, or reported by it (full_sweep_work)
        return index.get((ch.root, project, sid))
    if not stat.S_ISREG(st.st_mode):  # written, or gone and already back: a transcript is a file
        return None
    new = index.seen(ch.root, project, sid, ch.rel, st.st_mtime, None if low is None else st.st_mtime + low, now)
    if new:
        log.debug("new session %s in %s", sid, project)
        if keep_last:
            index.wake_keep_last(ch.root, project, now + MIN_STEP)
    return None


def _ids(xs: list[str]) -> str:
    return ", ".join(xs[:5]) + (f" and {len(xs) - 5} more" if len(xs) > 5 else "")


class WatchedFiles:
    """The pins file and the config files (the user's, the managed policy): their changes reach a running
    daemon through the watcher (Change("file", tag, path))."""

    def __init__(self, dirs: JanitorDirs, config_path: str | os.PathLike[str] | None) -> None:
        self.pins_file = dirs.pins_file
        self.paths = {
            str(dirs.pins_file): "pins",
            str(Path(config_path) if config_path else dirs.config_file): "config",
            str(managed_policy_path()): "config",
        }
        self._config_seen = self._config_stamp()
        self._pins = self._read_pins(quiet=True) or set()

    def _read_pins(self, *, quiet: bool = False) -> set[str] | None:
        from claude_janitor.cache.pins import load_pins

        try:
            return load_pins(self.pins_file)
        except JanitorError as e:
            if not quiet:
                log.error("pins not re-read: %s (each sweep refuses to act until it is fixed)", e)
            return None

    def unpinned(self) -> list[str]:
        """The pins file changed (`janitor pin` / `unpin`): say so; the sessions unpinned since last read."""
        new = self._read_pins()
        if new is None:
            return []
        old, self._pins = self._pins, new
        pinned, unpinned = sorted(new - old), sorted(old - new)
        if pinned or unpinned:
            log.info("pins changed:%s%s", f" pinned {_ids(pinned)};" if pinned else "",
                     f" unpinned {_ids(unpinned)} (decided again now)" if unpinned else "")  # fmt: skip
        return unpinned

    def _config_stamp(self) -> tuple[tuple[int, int, int] | None, ...]:
        out: list[tuple[int, int, int] | None] = []
        for path, tag in self.paths.items():
            if tag == "config":
                try:
                    st = os.stat(path)
                    out.append((st.st_ino, st.st_size, st.st_mtime_ns))
                except OSError:
                    out.append(None)
        return tuple(out)

    def config_changed(self) -> bool:
        """Whether a config file was written, replaced or removed since last asked."""
        stamp = self._config_stamp()
        if stamp == self._config_seen:
            return False
        self._config_seen = stamp
        return True
