"""The store: write, verify and publish one session's archive, then remove its originals; the sweep's actor."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import secrets
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
    finals_in,
    make_header,
    project_dir_name,
    safe_name,
    stamp,
)
from claude_janitor.archive.reader import verify
from claude_janitor.archive.walk import Identity
from claude_janitor.archive.writer import write_archive
from claude_janitor.config.paths import JanitorDirs, archive_dir_for
from claude_janitor.fs.atomicfile import mkdirs_private
from claude_janitor.fs.safefs import Root
from claude_janitor.fs.tree import DIR_FLAGS, Changed, Unsafe
from claude_janitor.model import Action, Decision, Policy
from claude_janitor.removal import staging


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
class ArchiveStore:
    """Where this run's archives go and the time they are stamped with."""

    dir: Path
    now: float
    level: int = LEVEL
    history: bool = False  # [history] removed_sessions: the session's history.jsonl lines go in its archive
    _history_index: Any = field(default=None, repr=False, compare=False)

    def archive(self, root: Root, d: Decision) -> Path:
        """Archive the session and delete its originals (see the module docstring for the order)."""
        s = d.session
        target = self.dir / project_dir_name(s.project)
        mkdirs_private(target)
        dfd = os.open(target, DIR_FLAGS)
        try:
            final, idents = self._write_verify_publish(root, d, dfd, target)
            testhooks.point("archive-published")
            os.fsync(dfd)
            testhooks.point("archive-synced")
        finally:
            os.close(dfd)
        try:
            self._delete_originals(root, d, idents)
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

    def _write_verify_publish(
        self, root: Root, d: Decision, dfd: int, target: Path
    ) -> tuple[Path, dict[str, Identity]]:
        s = d.session
        base = f"{safe_name(s.session_id)}.{stamp(self.now)}"
        tmp = f".{base}{PARTIAL}{secrets.token_hex(6)}"
        header = make_header(d, self.now)
        hist = None
        if self.history:
            if self._history_index is None:
                from claude_janitor.removal.history import Index

                self._history_index = Index()
            hist = b"".join(self._history_index.lines_of(root.path, s.session_id)) or None
        try:
            fd = os.open(tmp, NEW_FILE, 0o600, dir_fd=dfd)
            with os.fdopen(fd, "wb", buffering=CHUNK) as out:
                os.fchmod(fd, 0o600)
                manifest, idents = write_archive(out, root, d, header, level=self.level, history=hist)
                testhooks.point("archive-written")
                os.fsync(fd)
                _drop_cache(fd)
            testhooks.point("archive-fsynced")
            got = verify(Path(tmp), dir_fd=dfd)
            if got.header != header or got.manifest != manifest:
                raise ArchiveInvalid("what was read back differs from what was written")
            testhooks.point("archive-verified")
            existing = self._covering(target, s, manifest)
            if existing is not None:
                os.unlink(tmp, dir_fd=dfd)
                return existing, idents
            name = self._publish(tmp, base, dfd)
        except (Changed, Unsafe):
            _unlink_quiet(tmp, dfd)
            raise
        except ArchiveInvalid as e:
            _unlink_quiet(tmp, dfd)
            raise OSError(errno.EIO, f"archive did not verify, originals kept: {e}", str(target)) from None
        except OSError as e:
            _unlink_quiet(tmp, dfd)
            raise OSError(e.errno, f"archive not written, originals kept: {e.strerror or e}", str(target)) from None
        except BaseException:
            _unlink_quiet(tmp, dfd)
            raise
        return target / name, idents

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
        for path in reversed(finals_in(target, f"{safe_name(s.session_id)}.")):
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

    def _delete_originals(self, root: Root, d: Decision, idents: dict[str, Identity]) -> None:
        """Remove the originals through staging: what is removed is checked to be exactly what was
        archived (every entry's kind, inode, size, mtime), after it was moved out of reach."""
        testhooks.point("archive-delete")
        staging.remove(root, d.session, d.action.value, staging.matches_identities(idents))


def _unlink_quiet(name: str, dfd: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dfd)


def archive_actor(root: Root, d: Decision, *, store: ArchiveStore | None = None) -> dict[str, Any]:
    """The sweep's archive action: returns {"archive": path}. ``store`` is bound by ``bind``."""
    if store is None:
        raise TypeError("archive_actor needs an ArchiveStore (sweep.execute binds it through archive.bind)")
    return {"archive": str(store.archive(root, d))}


def bind(actors: dict[Action, Any], pol: Policy, dirs: JanitorDirs, now: float) -> dict[Action, Any]:
    """The actors with the archive action bound to this run's archive dir and time (added if missing)."""
    actors = dict(actors)
    act = actors.setdefault(Action.ARCHIVE, archive_actor)
    if act is archive_actor:
        actors[Action.ARCHIVE] = functools.partial(
            archive_actor, store=ArchiveStore(archive_dir_for(pol, dirs), now, history=pol.history.removed_sessions)
        )
    return actors
