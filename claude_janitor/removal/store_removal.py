"""Removing the entries a store plan (stores.py) says go: each re-checked right before, then staged,
verified and purged like a session (staging.remove), files a batch at a time; an empty project folder by
rmdir alone. One intent and one result audit record per store and sweep (counts and bytes, no names).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from typing import Any

from claude_janitor import testhooks
from claude_janitor.cache.layout import STORE_FAMILIES
from claude_janitor.durations import human_duration
from claude_janitor.fs.safefs import Root
from claude_janitor.fs.tree import Changed, Unsafe
from claude_janitor.model import Piece, Pieces, Session
from claude_janitor.removal import checks, recovery, staging
from claude_janitor.removal.store_scan import sorted_names
from claude_janitor.removal.stores import StoreDecision

ERRORS_KEPT = 5  # failures named in a store's result (the rest are counted)


def _record(sd: StoreDecision, phase: str, dry: bool = False) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "action": "delete-store",
        "phase": phase,
        "store": sd.key,
        "root": sd.root,
        "place": sd.place,
        "files": len(sd.remove),
        "bytes": sd.remove_bytes,
        "reason": f"older than {human_duration(sd.window.seconds)} ({sd.window.source})",
    }
    if phase == "intent":
        rec["result"] = "pending"
    else:
        rec.update(
            {
                "result": sd.result,
                "removed": sd.removed,
                "bytes_removed": sd.removed_bytes,
                "kept_changed": sd.changed,
                "vanished": sd.vanished,
                "failed": sd.failed,
            }
        )
        if sd.errors:
            rec["errors"] = list(sd.errors)
    return rec


def execute(
    decisions: list[StoreDecision], *, dry_run: bool, audit: Any = None, should_stop: Callable[[], bool] | None = None
) -> None:
    """Remove what each store decision says, each entry re-checked right before it goes: an entry changed
    since the scan (inode, size, mtime; a dir's own mtime) is kept. A dry run makes every check and removes
    nothing. One intent record before a store is touched, one result record after (counts and bytes)."""
    for sd in decisions:
        if not sd.remove and not sd.pending:
            continue
        if should_stop is not None and should_stop():
            sd.result = "cancelled"
            continue
        if audit is not None and sd.remove:
            audit.append([_record(sd, "intent")])
        try:
            root = Root(sd.place)
        except OSError as e:
            sd.failed = len(sd.remove)
            sd.errors.append(f"cannot open {sd.place}: {e.strerror or e}")
        else:
            with root:
                if os.path.abspath(sd.place) != os.path.abspath(sd.root):
                    root.stage_name = staging.shared_stage_name()  # the tmp or cache dir: a per-user one
                    if not dry_run:
                        _recover(root, sd, audit)
                _remove_all(root, sd, dry_run, should_stop)
        if not sd.remove:
            continue
        sd.result = "dry-run" if dry_run else "failed" if sd.failed else "ok"
        if audit is not None:
            audit.append([_record(sd, "result")])


EMPTY_DIR_STORES = {f.key for f in STORE_FAMILIES for sel in f.selectors if sel.kind == "empty-dir"}


def _rmdir(root: Root, p: Piece) -> None:
    """An empty folder goes by rmdir alone: anything created in it meanwhile keeps it (never a tree removal)."""
    fds, name, owned = root.dir_chain(p.rel)
    pfd = fds[-1]
    try:
        if not root.inside(fds, p.rel):  # a held dir fd follows its dir wherever it was moved
            raise Changed(f"{p.rel}: its folder was moved or replaced since it was opened; not touched")
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode) or (st.st_ino, st.st_dev, st.st_mtime_ns) != (p.ino, p.dev, p.mtime_ns):
            raise Changed(f"{p.rel} changed since the scan")
        try:
            os.rmdir(name, dir_fd=pfd)
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise Changed(f"{p.rel} is no longer empty") from None
            raise
    finally:
        if owned:
            for fd in fds[1:]:
                os.close(fd)


def _has_transcript(root: str, sid: str) -> bool:
    """Is there a transcript of this session in the Claude dir (its removal failed or was undone)?"""
    projects = os.path.join(root, "projects")
    return any(os.path.lexists(os.path.join(projects, d, f"{sid}.jsonl")) for d in sorted_names(projects))


def _recover(root: Root, sd: StoreDecision, audit: Any) -> None:
    """Finish or undo what a killed sweep left in a shared place's staging dir (the Claude dir's own is
    recovered by every sweep before its scan: sweep.recover_interrupted)."""
    if not recovery.pending(root):
        return
    try:
        got = recovery.recover(root)
    except (OSError, Unsafe) as e:
        sd.errors.append(f"{sd.place}/{staging.stage_name(root)}: {e}")
        return
    for r in got:
        (sd.notes if r.state != "kept" else sd.errors).append(r.message)
    if audit is not None and got:
        audit.append([r.record(sd.place) for r in got if r.session_id])


BATCH = 64  # file entries staged, checked and deleted together (one staging entry, one commit)


def _stage(root: Root, sd: StoreDecision, pieces: list[Piece], fates: dict[str, str] | None = None) -> None:
    """Entries of one store removed as a session is (staging.remove): moved into the place's staging dir,
    checked there against the scan at any depth and for still being inside the place, then deleted. A
    change or a move puts them back and raises staging.Interfered; nothing outside the place is touched."""
    entry = Session(sd.key, sd.place, "", pieces=Pieces(pieces, sd.key, ""))
    staging.remove(root, entry, staging.STORE_ACTION, checks.matches_scan(entry), fates=fates)


def _fail(sd: StoreDecision, p: Piece, why: str) -> None:
    sd.failed += 1
    if len(sd.errors) < ERRORS_KEPT:
        sd.errors.append(f"{p.rel}: {why}")


def _gone(sd: StoreDecision, pieces: list[Piece]) -> None:
    sd.removed += len(pieces)
    sd.removed_bytes += sum(p.bytes for p in pieces)


def _remove_one(root: Root, sd: StoreDecision, p: Piece) -> None:
    try:
        if p.is_dir and p.store in EMPTY_DIR_STORES:
            _rmdir(root, p)
        else:
            _stage(root, sd, [p])
    except (FileNotFoundError, staging.Vanished):
        sd.vanished += 1
    except Changed:  # an empty folder that changed (rmdir alone): kept, as before anything was done
        sd.changed += 1
    except (staging.Interfered, staging.Busy) as e:  # during its removal: put back, a failure (exit 1)
        _fail(sd, p, f"changed during removal, kept: {e}")
    except (Unsafe, OSError) as e:
        _fail(sd, p, str(getattr(e, "strerror", None) or e))
    else:
        _gone(sd, [p])


def _remove_batch(root: Root, sd: StoreDecision, batch: list[Piece]) -> None:
    """Files go BATCH at a time (a staging entry per file cost 1.7x an in-place unlink); if anything in
    the batch changed, it is put back whole and each file is tried on its own, so that only the changed
    one is kept."""
    if len(batch) == 1:
        _remove_one(root, sd, batch[0])
        return
    fates: dict[str, str] = {}
    try:
        _stage(root, sd, batch, fates)
    except (staging.Interfered, staging.Busy, Unsafe, OSError) as e:
        for p in batch:
            if fates.get(p.rel) == "purged":
                _gone(sd, [p])
            elif fates.get(p.rel) == "kept":
                _fail(sd, p, f"changed during removal, kept: {e}")
            else:
                _remove_one(root, sd, p)
    else:
        _gone(sd, batch)


def _remove_all(root: Root, sd: StoreDecision, dry_run: bool, should_stop: Callable[[], bool] | None) -> None:
    batch: list[Piece] = []
    for p in sd.remove:
        if should_stop is not None and should_stop():
            sd.errors.append("stopped by a signal; the rest kept")
            break
        try:
            root.check_unchanged(p)
            if p.rel in sd.with_session and _has_transcript(sd.root, sd.with_session[p.rel]):
                raise Changed(f"{p.rel}: its session is still there")
            testhooks.point("store-before-remove")
        except FileNotFoundError:
            sd.vanished += 1
            continue
        except Changed:  # seen before anything was done: kept, as a session changed since the scan
            sd.changed += 1
            continue
        except (Unsafe, OSError) as e:
            _fail(sd, p, str(getattr(e, "strerror", None) or e))
            continue
        if dry_run:
            _gone(sd, [p])
        elif p.is_dir:
            _remove_one(root, sd, p)
        else:
            batch.append(p)
            if len(batch) >= BATCH:
                _remove_batch(root, sd, batch)
                batch = []
    if batch:
        _remove_batch(root, sd, batch)
