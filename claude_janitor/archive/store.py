"""The store: write, verify and publish one session's archive, then remove its originals; the sweep's actor."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from claude_janitor import testhooks
from claude_janitor.archive.format import (
    CHUNK,
    LEVEL,
    NEW_FILE,
    PARTIAL,
    SUFFIX,
    ArchiveInvalid,
    make_header,
    project_dir_name,
    safe_name,
)
from claude_janitor.archive.reader import verify
from claude_janitor.archive.walk import Identity
from claude_janitor.archive.writer import write_archive
from claude_janitor.config.paths import JanitorDirs, archive_dir_for
from claude_janitor.fs.atomicfile import mkdirs_private
from claude_janitor.fs.safefs import Root
from claude_janitor.fs.tree import DIR_FLAGS, Changed, Unsafe
from claude_janitor.model import Action, Decision, Policy
from claude_janitor.removal import checks, staging
from claude_janitor.timefmt import compact


def _drop_cache(fd: int) -> None:
    if hasattr(os, "posix_fadvise"):
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def _covers(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Does the ``old`` manifest hold every dir and file of the ``new`` one, the same bytes and mode? (Not
    the same times: a restored session's files carry the restore time, and archiving it again unchanged
    re-uses the archive that holds its original times.)"""
    have = {m["path"]: m for m in old["members"]}
    for m in new["members"]:
        o = have.get(m["path"])
        if o is None or o["type"] != m["type"]:
            return False
        if m["type"] == "file" and any(o.get(k) != m.get(k) for k in ("size", "sha256", "mode")):
            return False
    return True


@dataclass
class _Pending:
    """One session's archive on its way: written to ``tmp`` in ``dfd``, then synced, verified, published."""

    root: Root
    d: Decision
    target: Path
    base: str
    tmp: str
    header: dict[str, Any]
    dfd: int = -1  # the target dir (the batch's, closed with it)
    fd: int = -1  # the temp file, open until it is synced
    manifest: dict[str, Any] = field(default_factory=dict)
    idents: dict[str, Identity] = field(default_factory=dict)
    final: Path | None = None
    error: Exception | None = None


def _outcome_error(e: Exception, target: Path) -> Exception:
    """What the sweep reports for a session whose archive could not be made (its originals are kept)."""
    if isinstance(e, Changed | Unsafe):
        return e
    if isinstance(e, ArchiveInvalid):
        return OSError(errno.EIO, f"archive did not verify, originals kept: {e}", str(target))
    if isinstance(e, OSError):
        return OSError(e.errno, f"archive not written, originals kept: {e.strerror or e}", str(target))
    return e


def _syncfs(fd: int) -> bool:
    """syncfs(2) of the filesystem holding ``fd``: one writeback and journal commit for a whole batch of
    archives, where an fsync of each would wait for one commit each. False if unavailable or it failed
    (then each file is fsync'd on its own)."""
    global _libc
    if not sys.platform.startswith("linux"):
        return False
    if _libc is None:
        import ctypes

        try:
            _libc = ctypes.CDLL(None, use_errno=True)
            _libc.syncfs.argtypes = [ctypes.c_int]
        except (OSError, AttributeError):
            _libc = False
    return bool(_libc) and _libc.syncfs(fd) == 0


_libc: Any = None


@dataclass
class ArchiveStore:
    """Where this run's archives go and the time they are stamped with.

    ``prepare`` makes the archives of a batch of sessions together: each is written to a temp file, then
    one sync pass makes them all durable (syncfs, see ``_sync``), each is read back from the disk and
    verified, linked to its final name, and each target dir is fsync'd once. ``archive`` then removes a
    session's originals (through staging), never before its archive is durable; a session not prepared
    is prepared alone first. A crash at any instant leaves every session intact in the cache or in a
    durable verified archive (a later run re-uses that archive: ``_covering``)."""

    dir: Path
    now: float
    level: int = LEVEL
    history: bool = False  # [history] removed_sessions: the session's history.jsonl lines go in its archive
    _history_index: Any = field(default=None, repr=False, compare=False)
    _ready: dict[int, _Pending] = field(default_factory=dict, repr=False, compare=False)  # id(decision) →
    _names: dict[Path, set[str]] = field(default_factory=dict, repr=False, compare=False)  # target → names

    def archive(self, root: Root, d: Decision) -> Path:
        """Archive the session (unless ``prepare`` did) and delete its originals."""
        p = self._ready.pop(id(d), None)
        if p is None or p.d is not d:
            self.prepare([(root, d)])
            p = self._ready.pop(id(d))
        if p.error is not None:
            raise p.error
        assert p.final is not None
        final = p.final
        try:
            self._delete_originals(root, d, p.idents)
        except staging.Interfered as e:
            raise staging.Interfered(f"archived to {final}, but {e}") from None
        except (Changed, staging.Busy):
            raise
        except OSError as e:
            raise OSError(
                e.errno,
                f"archived to {final}, but removing the originals failed: "
                f"{e.strerror or e} (the next sweep finishes the job)",
                e.filename,
            ) from None
        return final

    def prepare(self, items: list[tuple[Root, Decision]], stopped: Callable[[], bool] | None = None) -> None:
        """Make the archives of these sessions durable, verified and published (or note why not, for
        ``archive`` to raise). Deletes nothing. ``stopped`` is asked before each write and before any is
        published: a stopped batch leaves no archive and no temp file."""
        dfds: dict[Path, int] = {}
        batch: list[_Pending] = []
        try:
            for root, d in items:
                if stopped is not None and stopped():
                    break
                batch.append(self._write(root, d, dfds))
            live = [p for p in batch if p.error is None]
            self._sync(live, dfds)
            if stopped is not None and stopped():
                return
            self._verify_publish(live)
            self._sync_dirs([p for p in live if p.error is None])
            for p in batch:
                self._ready[id(p.d)] = p
        finally:
            for p in batch:
                if p.fd >= 0:
                    os.close(p.fd)
                if p.final is None and p.dfd >= 0:
                    _unlink_quiet(p.tmp, p.dfd)
            for fd in dfds.values():
                os.close(fd)

    def published(self, d: Decision) -> bool:
        """Has ``prepare`` published this session's archive (only its originals are left to remove)?"""
        p = self._ready.get(id(d))
        return p is not None and p.d is d and p.error is None and p.final is not None

    def _dir_fd(self, target: Path, dfds: dict[Path, int]) -> int:
        if target not in dfds:
            try:
                dfds[target] = os.open(target, DIR_FLAGS)
            except FileNotFoundError:
                mkdirs_private(target)
                dfds[target] = os.open(target, DIR_FLAGS)
        return dfds[target]

    def _write(self, root: Root, d: Decision, dfds: dict[Path, int]) -> _Pending:
        s = d.session
        base = f"{safe_name(s.session_id)}.{compact(self.now)}"
        target = self.dir / project_dir_name(s.project)
        p = _Pending(root, d, target, base, f".{base}{PARTIAL}{secrets.token_hex(6)}", make_header(d, self.now))
        try:
            p.dfd = self._dir_fd(target, dfds)
            hist = self._history_of(root, d)
            p.fd = os.open(p.tmp, NEW_FILE, 0o600, dir_fd=p.dfd)
            with os.fdopen(p.fd, "wb", buffering=CHUNK, closefd=False) as out:
                os.fchmod(p.fd, 0o600)
                p.manifest, p.idents = write_archive(out, root, d, p.header, level=self.level, history=hist)
            testhooks.point("archive-written")
        except (Changed, Unsafe, ArchiveInvalid, OSError) as e:
            self._fail(p, e)
        return p

    def _history_of(self, root: Root, d: Decision) -> bytes | None:
        if not self.history:
            return None
        if self._history_index is None:
            from claude_janitor.removal.history_lines import Index

            self._history_index = Index()
        return b"".join(self._history_index.lines_of(root.path, d.session.session_id)) or None

    def _fail(self, p: _Pending, e: Exception) -> None:
        if p.fd >= 0:
            os.close(p.fd)
            p.fd = -1
        if p.dfd >= 0:
            _unlink_quiet(p.tmp, p.dfd)
        p.error = _outcome_error(e, p.target)

    def _sync(self, live: list[_Pending], dfds: dict[Path, int]) -> None:
        """Every written archive durable, then out of the page cache (so verify reads the disk): one syncfs
        per filesystem for a batch, then each file's fsync (cheap after it; it reports the file's own
        writeback errors)."""
        if len(live) > 1:
            devs = {os.fstat(fd).st_dev: fd for fd in dfds.values()}
            for fd in devs.values():
                _syncfs(fd)
        for p in live:
            try:
                os.fsync(p.fd)
                _drop_cache(p.fd)
            except OSError as e:
                self._fail(p, e)
                continue
            os.close(p.fd)
            p.fd = -1
            testhooks.point("archive-fsynced")

    def _verify_publish(self, live: list[_Pending]) -> None:
        for p in live:
            try:
                got = verify(Path(p.tmp), dir_fd=p.dfd)
                if got.header != p.header or got.manifest != p.manifest:
                    raise ArchiveInvalid("what was read back differs from what was written")
                testhooks.point("archive-verified")
                existing = self._covering(p.target, p.d.session, p.manifest)
                if existing is not None:
                    os.unlink(p.tmp, dir_fd=p.dfd)
                    p.final = existing
                else:
                    name = self._publish(p.tmp, p.base, p.dfd)
                    self._names.setdefault(p.target, set()).add(name)
                    p.final = p.target / name
            except (Changed, Unsafe, ArchiveInvalid, OSError) as e:
                self._fail(p, e)
                continue
            testhooks.point("archive-published")

    def _sync_dirs(self, published: list[_Pending]) -> None:
        """One fsync per target dir: the new names are durable before any original goes."""
        for dfd in {p.dfd for p in published}:
            try:
                os.fsync(dfd)
            except OSError as e:
                for p in published:
                    if p.dfd == dfd:  # linked, maybe not durable: the originals stay (a later run re-uses it)
                        p.error = OSError(
                            e.errno, f"archive dir not synced, originals kept: {e.strerror or e}", str(p.target)
                        )
        for _ in published:
            testhooks.point("archive-synced")

    def _publish(self, tmp: str, base: str, dfd: int) -> str:
        """Give the verified temp file its final name without ever replacing an existing file."""
        for i in range(10_000):
            name = f"{base}-{i}{SUFFIX}" if i else f"{base}{SUFFIX}"
            try:
                os.link(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd, follow_symlinks=False)
            except FileExistsError:
                continue
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
                    raise
                # No hard links here: claim the name exclusively, then move onto our own placeholder.
                try:
                    os.close(os.open(name, NEW_FILE, 0o600, dir_fd=dfd))
                except FileExistsError:
                    continue
                os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
                return name
            testhooks.point("archive-linked")
            os.unlink(tmp, dir_fd=dfd)
            return name
        raise OSError(errno.EEXIST, "no free archive name", base)

    def _covering(self, target: Path, s: Any, manifest: dict[str, Any]) -> Path | None:
        """An existing verified archive of this same session that already holds everything (identical).

        That happens when a sweep was interrupted while deleting the originals, or when a restored
        session expires again unchanged: no second archive is made, the originals just go."""
        for path in reversed(self._finals(target, f"{safe_name(s.session_id)}.")):
            try:
                info = verify(path)
            except (ArchiveInvalid, OSError):
                continue
            h = info.header
            if (
                (h["session_id"], h["root"], h["project"]) == (s.session_id, s.root, s.project)
                and info.manifest is not None
                and _covers(info.manifest, manifest)
                and info.manifest.get("history") == manifest.get("history")
            ):
                return path
        return None

    def _finals(self, target: Path, prefix: str) -> list[Path]:
        """``finals_in(target, prefix)`` from one listing of ``target`` per run (plus what this store
        published there since): a listing per session made archiving a big project dir quadratic. Under
        the sweep lock no one else publishes there; a name gone since is skipped by verify."""
        names = self._names.get(target)
        if names is None:
            try:
                names = self._names[target] = set(os.listdir(target))
            except (FileNotFoundError, NotADirectoryError, PermissionError):
                return []
        return [
            target / n for n in sorted(names) if n.startswith(prefix) and not n.startswith(".") and n.endswith(SUFFIX)
        ]

    def _delete_originals(self, root: Root, d: Decision, idents: dict[str, Identity]) -> None:
        """Remove the originals through staging: what is removed is checked to be exactly what was
        archived (every entry's kind, inode, size, mtime), after it was moved out of reach."""
        testhooks.point("archive-delete")
        staging.remove(root, d.session, d.action.value, checks.matches_identities(idents))


def _unlink_quiet(name: str, dfd: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dfd)


def archive_actor(root: Root, d: Decision, *, store: ArchiveStore | None = None) -> dict[str, Any]:
    """The sweep's archive action: returns {"archive": path}. ``store`` is bound by ``bind``."""
    if store is None:
        raise TypeError("archive_actor needs an ArchiveStore (sweep.execute binds it through archive.bind)")
    return {"archive": str(store.archive(root, d))}


class ArchiveActor:
    """archive_actor bound to this run's store; ``prepare`` lets the sweep hand it a chunk of sessions, whose
    archives are then made together (ArchiveStore.prepare) before each session is acted on."""

    def __init__(self, store: ArchiveStore) -> None:
        self.store = store

    def __call__(self, root: Root, d: Decision) -> dict[str, Any]:
        return archive_actor(root, d, store=self.store)

    def prepare(self, items: list[tuple[Root, Decision]], stopped: Callable[[], bool] | None = None) -> None:
        self.store.prepare(items, stopped)

    def published(self, d: Decision) -> bool:
        return self.store.published(d)


def bind(actors: dict[Action, Any], pol: Policy, dirs: JanitorDirs, now: float) -> dict[Action, Any]:
    """The actors with the archive action bound to this run's archive dir and time (added if missing)."""
    actors = dict(actors)
    act = actors.setdefault(Action.ARCHIVE, archive_actor)
    if act is archive_actor:
        store = ArchiveStore(archive_dir_for(pol, dirs), now, history=pol.history.removed_sessions)
        actors[Action.ARCHIVE] = ArchiveActor(store)
    return actors
