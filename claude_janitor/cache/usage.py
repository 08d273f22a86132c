"""Disk usage per store of a Claude config dir (`janitor du`): which of projects/, debug/, file-history/,
shell-snapshots/, paste-cache/ … holds the space, how old it is, and how much a sweep would reclaim.

Read-only. Never follows symlinks, never enters another filesystem.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from claude_janitor.cache.layout import STORE_FAMILIES
from claude_janitor.fs.tree import iter_tree
from claude_janitor.model import Action, Plan

# Which stores belong to sessions (the janitor removes them with their session) and what the others are.
NOTES: dict[str, str] = {
    "projects": "transcripts and per-session folders",
    "file-history": "per-session snapshots of edited files",
    "debug": "per-session debug logs",
    "session-env": "per-session environment",
    "tasks": "per-session task lists",
    "todos": "per-session todo lists",
    "shell-snapshots": "shell environment snapshots",
    "paste-cache": "pasted text",
    "image-cache": "pasted images",
    "plans": "plan-mode plans",
    "backups": "backups of Claude Code's config",
    "history.jsonl": "prompt history: never trimmed by Claude Code (see [history])",
    "statsig": "feature-flag cache",
    "telemetry": "telemetry queue",
    "logs": "logs",
}
# Top-level entries of the Claude dir -> the store families (cache.STORE_FAMILIES) the janitor ages in them.
STORES_IN: dict[str, list[str]] = {}
for _fam in STORE_FAMILIES:
    for _sel in _fam.selectors:
        if _fam.place == "config" and _sel.dirs and _fam.key not in STORES_IN.get(_sel.dirs[0], []):
            STORES_IN.setdefault(_sel.dirs[0], []).append(_fam.key)
SESSION_STORES = {"projects", "file-history", "debug", "session-env", "tasks", "todos"}
PIECE_STORE = {"transcript": "projects", "session-dir": "projects", "session-file": "projects"}


@dataclass
class StoreUsage:
    store: str
    is_dir: bool
    files: int = 0
    dirs: int = 0
    bytes: int = 0  # apparent size of regular files
    disk_bytes: int = 0  # allocated blocks (what `du` shows)
    oldest: float | None = None  # mtime of the oldest regular file
    newest: float | None = None
    reclaimable: int = 0  # bytes of sessions (and store entries) the plan would delete or archive
    per_session: bool = False
    note: str = ""
    stores: list[str] = field(default_factory=list)  # the janitor's store families aged in it (janitor.stores)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _add(u: StoreUsage, st: os.stat_result) -> None:
    u.bytes += st.st_size
    u.disk_bytes += getattr(st, "st_blocks", 0) * 512
    u.files += 1
    m = st.st_mtime
    if u.oldest is None or m < u.oldest:
        u.oldest = m
    if u.newest is None or m > u.newest:
        u.newest = m


def measure(root: str, name: str, progress: Callable[[int], None] | None = None) -> StoreUsage:
    path = os.path.join(root, name)
    st = os.lstat(path)
    u = StoreUsage(
        name,
        stat.S_ISDIR(st.st_mode),
        per_session=name in SESSION_STORES,
        note=NOTES.get(name, ""),
        stores=STORES_IN.get(name, []),
    )
    if stat.S_ISLNK(st.st_mode):
        u.note = "symlink, not followed"
        return u
    if not u.is_dir:
        if stat.S_ISREG(st.st_mode):
            _add(u, st)
        return u
    n = 0
    for est in iter_tree(path, st.st_dev):
        n += 1
        if stat.S_ISDIR(est.st_mode):
            u.dirs += 1
            u.disk_bytes += getattr(est, "st_blocks", 0) * 512
        elif stat.S_ISREG(est.st_mode):
            _add(u, est)
        if progress and n % 1024 == 0:
            progress(1024)
    if progress:
        progress(n % 1024)
    return u


def usage(root: str, plan: Plan | None = None, progress: Callable[[int], None] | None = None) -> list[StoreUsage]:
    """Every top-level entry of one Claude config dir, biggest first, with reclaimable bytes from ``plan``."""
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return []
    stores = [measure(root, n, progress) for n in names]
    if plan is not None:
        by_name = {u.store: u for u in stores}
        for d in plan.decisions:
            if d.action is Action.KEEP or d.session.root != root:
                continue
            for p in d.session.pieces:
                u = by_name.get(PIECE_STORE.get(p.store, p.store))
                if u is not None:
                    u.reclaimable += p.bytes
        for sd in plan.stores:
            if sd.place != root:
                continue
            for p in sd.remove:
                u = by_name.get(p.rel.split("/")[0])
                if u is not None:
                    u.reclaimable += p.bytes
    stores.sort(key=lambda u: (-u.disk_bytes, u.store))
    return stores
