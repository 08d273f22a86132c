"""Recovery after a crash: what a killed removal (staging.py) left in a root's staging dir is finished or undone.

``recover`` runs at the start of every sweep (one-shot and the daemon's full sweeps), under the sweep
lock: a ``.staging`` entry left by a crash is rolled back (the session is decided afresh by that sweep),
a ``.doomed`` one is purged and recorded in the audit log, a ``.kept`` one (could not be put back) is
reported every time until someone moves it back by hand, a ``.spare`` one (an emptied entry a killed
process was keeping for reuse) is removed. Nothing is ever partly emptied in place. A piece goes back only
where a piece of that kind of removal can be: a session's pieces where the session stores are, a store
entry (``<store key>.delete-store…``) only where that store's entries are.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from claude_janitor.cache.layout import STORE_KEYS
from claude_janitor.fs.safefs import Root, check_rel
from claude_janitor.fs.tree import DIR_FLAGS, Changed, Unsafe, rmtree_at
from claude_janitor.removal.staging import (
    DOOMED,
    KEPT,
    ORIGIN,
    SPARE,
    STAGING,
    STORE_ACTION,
    put_back,
    stage_fd,
    stage_name,
)

_STORES = {"projects": 3, "file-history": 2, "session-env": 2, "tasks": 2, "todos": 2, "debug": 2}


def _store_entry(key: str, parts: list[str]) -> bool:
    """Is ``parts`` where an entry of the store ``key`` can be (cache.STORE_FAMILIES: its dirs, its name)?"""
    fam = STORE_KEYS.get(key)
    uid = str(os.geteuid())
    for sel in fam.selectors if fam else ():
        n = len(sel.dirs)
        if len(parts) < n + 1 or (len(parts) > n + 1 and not sel.recursive):
            continue
        if all(
            re.fullmatch(d.replace("{uid}", uid), c) for d, c in zip(sel.dirs, parts, strict=False)
        ) and re.fullmatch(sel.name, parts[-1]):
            return True
    return False


def _origin_rel(name: str, origin: dict[str, str], sid: str = "", action: str = "") -> str | None:
    """Where a staged piece came from, if that is a place a piece of this kind of removal can be."""
    rel = origin.get(name) if name in origin else unquote(name, errors="surrogateescape")
    if not isinstance(rel, str):
        return None
    try:
        parts = check_rel(rel)
    except Unsafe:
        return None
    if action == STORE_ACTION:
        return rel if _store_entry(sid, parts) else None
    return rel if _STORES.get(parts[0]) == len(parts) else None


def _what(sid: str, action: str) -> str:
    return f"an entry of store {sid}" if action == STORE_ACTION else f"session {sid}"


@dataclass
class Recovered:
    """What recovery did with one entry: for the audit log and the sweep's warnings."""

    session_id: str
    action: str
    state: str  # "purged" | "rolled back" | "kept"
    paths: list[str]
    message: str

    def record(self, root: str) -> dict[str, Any]:
        if self.action == STORE_ACTION:  # like the stores' own records: counts, no names
            return {
                "action": "recover-store",
                "phase": "result",
                "store": self.session_id,
                "place": root,
                "files": len(self.paths),
                "reason": "recovery after an interrupted sweep",
                "result": "ok" if self.state == "purged" else "skipped",
                "error": None if self.state == "purged" else self.message,
                "recovered": self.state,
            }
        project = next((p.split("/")[1] for p in self.paths if p.startswith("projects/")), "")
        return {
            "action": self.action,
            "phase": "result",
            "session_id": self.session_id,
            "root": root,
            "project": project,
            "paths": self.paths,
            "bytes": 0,
            "reason": "recovery after an interrupted sweep",
            "result": "ok" if self.state == "purged" else "skipped",
            "error": None if self.state == "purged" else self.message,
            "recovered": self.state,
        }


def pending(root: Root) -> bool:
    """Is anything left in the root's staging dir?"""
    try:
        return bool(os.listdir(os.path.join(root.path, stage_name(root))))
    except OSError:
        return False


def recover(root: Root) -> list[Recovered]:
    """Finish or undo the removals a crashed sweep left in the root's staging dir (see the docstring)."""
    where = f"{root.path}/{stage_name(root)}"
    try:
        st = os.stat(stage_name(root), dir_fd=root.fd, follow_symlinks=False)
    except FileNotFoundError:
        return []
    if not stat.S_ISDIR(st.st_mode):
        return [Recovered("", "", "kept", [], f"{where} is not a directory: left alone")]
    sfd = stage_fd(root)
    out: list[Recovered] = []
    for entry in sorted(os.listdir(sfd)):
        base, dot, state = entry.rpartition(".")
        sid, _, rest = base.partition(".")
        action = rest.partition(".")[0]
        try:
            if "." + state == DOOMED:
                paths = _staged_paths(sfd, entry)
                try:
                    rmtree_at(sfd, entry, root.dev)
                except (OSError, Unsafe) as e:
                    got = _roll_back(root, sfd, entry, sid, action)
                    got.message = f"finishing the removal of {_what(sid, action)} failed ({e}): {got.message}"
                    out.append(got)
                    continue
                out.append(
                    Recovered(
                        sid,
                        action,
                        "purged",
                        paths,
                        f"finished removing {_what(sid, action)} (an earlier sweep was interrupted)",
                    )
                )
            elif "." + state == STAGING:
                out.append(_roll_back(root, sfd, entry, sid, action))
            elif "." + state == SPARE:  # an emptied entry a killed process was keeping for reuse
                os.rmdir(entry, dir_fd=sfd)
            elif "." + state == KEPT:
                out.append(
                    Recovered(
                        sid,
                        action,
                        "kept",
                        _staged_paths(sfd, entry),
                        f"{where}/{entry} holds pieces of {_what(sid, action)} that "
                        "could not be put back: move them back by hand",
                    )
                )
            else:
                out.append(Recovered(sid, action, "kept", [], f"{where}/{entry}: not the janitor's; left alone"))
        except (OSError, Unsafe, Changed) as e:
            out.append(Recovered(sid, action, "kept", [], f"{where}/{entry}: {e}"))
    return out


def _read_origin(efd: int) -> dict[str, str]:
    try:
        fd = os.open(ORIGIN, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=efd)
    except FileNotFoundError:
        return {}
    try:
        got = json.loads(os.read(fd, 1 << 20) or b"{}")
    except ValueError:
        got = {}
    finally:
        os.close(fd)
    return {k: v for k, v in got.items() if isinstance(v, str)} if isinstance(got, dict) else {}


def _staged_paths(sfd: int, entry: str) -> list[str]:
    efd = os.open(entry, DIR_FLAGS, dir_fd=sfd)
    try:
        origin = _read_origin(efd)
        sid, _, rest = entry.partition(".")
        action = rest.partition(".")[0]
        return sorted(
            r
            for n in os.listdir(efd)
            if n not in (ORIGIN, ORIGIN + ".tmp")
            for r in [_origin_rel(n, origin, sid, action)]
            if r
        )
    finally:
        os.close(efd)


def _roll_back(root: Root, sfd: int, entry: str, sid: str, action: str) -> Recovered:
    efd = os.open(entry, DIR_FLAGS, dir_fd=sfd)
    notes: list[str] = []
    paths: list[str] = []
    left = 0
    try:
        origin = _read_origin(efd)
        for name in sorted(os.listdir(efd)):
            if name in (ORIGIN, ORIGIN + ".tmp"):
                continue
            rel = _origin_rel(name, origin, sid, action)
            if rel is None:
                left += 1
                notes.append(f"{name}: where it came from is unknown")
                continue
            paths.append(rel)
            pfd, last = root.open_parent(rel, create=True)
            try:
                if root.stage_name and os.fstat(pfd).st_uid != os.geteuid():  # a shared place: not into another's
                    left += 1
                    notes.append(f"{rel}: its folder is not this user's")
                elif not put_back(efd, name, pfd, last, rel, notes.append):
                    left += 1
            finally:
                os.close(pfd)
        if not left:
            for n in (ORIGIN, ORIGIN + ".tmp"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(n, dir_fd=efd)
    finally:
        os.close(efd)
    if left:
        kept = entry.rpartition(".")[0] + KEPT
        os.rename(entry, kept, src_dir_fd=sfd, dst_dir_fd=sfd)
        return Recovered(
            sid,
            action,
            "kept",
            paths,
            f"{_what(sid, action)}: an interrupted removal could not "
            f"be fully undone: {'; '.join(notes)}; the rest is in "
            f"{root.path}/{stage_name(root)}/{kept}",
        )
    os.rmdir(entry, dir_fd=sfd)
    extra = f" ({'; '.join(notes)})" if notes else ""
    return Recovered(
        sid,
        action,
        "rolled back",
        paths,
        f"{_what(sid, action)}: an interrupted removal was undone, it is back in place{extra}",
    )
