"""Removing a session as one transaction: stage → verify → commit → purge, and recovery after a crash.

Why: a session is checked, then removed, and between the two anything can happen — a writer appends to
the transcript or replaces it, a dir is swapped for another, a project dir is moved out of the Claude dir
(a dir fd held open keeps working after its dir has moved, even to outside the cache). Deleting in place
cannot tell these apart from the session it checked. So the session's pieces are first *moved* away, then
what was moved is checked, and only then is anything deleted:

1. **stage**: each top-level piece (transcript last) is renamed into a private per-session entry
   ``<claude>/.janitor-removing/<id>.<action>.<token>.staging/`` (mode 0700, same filesystem: a rename,
   no copy). A rename is atomic against path-based writers: one that opens the old path afterwards
   creates a new file there (its data stays in the cache, and that is detected below).
2. **verify**: everything staged, at any depth, must be exactly what was checked (``check``: the scan's
   identity and totals in delete mode, the archive's snapshot in archive mode); no staged file may be
   open for writing or locked by another process (``Root.busy``); no original path may have been
   re-created meanwhile; every parent dir must still be reachable from the Claude dir by its path, no
   symlink followed (else the rename pulled something in from outside: it goes straight back); the
   staging dir must still be inside the Claude dir and the entry hold nothing but what was staged.
   Any mismatch rolls every piece back to where it was and raises ``Interfered``. Nothing is ever
   replaced: a piece whose name was taken meanwhile (a writer created the file again) stays in the
   entry, renamed ``….kept``, which no sweep deletes and every sweep reports until it is moved back.
3. **commit**: one rename, ``….staging`` → ``….doomed``: the point of no return.
4. **purge**: the doomed entry is emptied (``tree.rmtree_at``) and kept as ``<random>.spare`` for the
   process's next session (one same-dir rename instead of an rmdir and a mkdir); ``Root.close`` removes
   the spares, recovery removes those of a killed process.

``recover`` runs at the start of every sweep (one-shot and the daemon's full sweeps), under the sweep
lock: a ``.staging`` entry left by a crash is rolled back (the session is decided afresh by that sweep),
a ``.doomed`` one is purged and recorded in the audit log, a ``.kept`` one (could not be put back) is
reported every time until someone moves it back by hand. Nothing is ever partly emptied in place.

What it cannot close: a writer holding a file open from *before* the rename that writes to it *after*
the verify. Its bytes go to the staged inode and are deleted with it. See the README's safety section.

Store entries (stores.py: image-cache/<x>/, a leftover file-history dir, a tmp ``claude-<uid>/`` folder, a
paste-cache file …) go the same way, one entry per removal, named ``<store key>.delete-store.<token>``; in the
shared tmp and cache dirs the staging dir is per user (``.janitor-removing-<uid>``, this user's and 0700,
else refused) and removed once empty. Recovery puts such an entry back only where that store's entries are.

Costs per session, beyond deleting: one mkdir and rmdir, one rename per piece plus the commit rename,
one lstat walk of the staged trees, a few lstats. No fsync: a power cut leaves the entry in one of its
named states, which recovery handles like a crash.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote, unquote

from claude_janitor import testhooks
from claude_janitor.cache.layout import STORE_KEYS
from claude_janitor.cache.scan import usage_of
from claude_janitor.fs.atomicfile import write_atomic_at
from claude_janitor.fs.safefs import Root, check_rel
from claude_janitor.fs.tree import DIR_FLAGS, Changed, Unsafe, rename_noreplace, rmtree_at, walk_at
from claude_janitor.model import Piece, Session

STAGE_DIR = ".janitor-removing"
STAGING, DOOMED, KEPT, SPARE = ".staging", ".doomed", ".kept", ".spare"
STORE_ACTION = "delete-store"  # a store entry's removal (stores.py): its entry is named <store key>.delete-store…
ORIGIN = "origin.json"  # only when a piece's path is too long to be its staged name
_NAME_MAX = 240


# what a verify sees: per piece (its rel), (rel, lstat) of the piece and of everything below it
class Check(Protocol):
    """What a verify compares the staged entries with, fed one entry at a time (memory stays bounded
    whatever the number of files: a 200k-entry dir is streamed, never listed into a list)."""

    def entry(self, piece: Piece, rel: str, st: os.stat_result) -> str | None:
        """One staged entry (``rel``: its original path; the piece itself comes first): why it differs."""

    def done(self) -> str | None:
        """After every entry: why the whole differs (something missing, totals), or None."""


class Interfered(Exception):
    """The session changed, or the tree around it moved, while it was being removed: it was put back
    (kept) and this says what happened. Reported as a failure (exit 1)."""


class Vanished(Interfered):
    """A piece was gone when it was to be staged (removed or moved away meanwhile): nothing was removed."""


class Busy(Exception):
    """A file somewhere in the session is open for writing or locked by another process: kept."""


@dataclass
class _Moved:
    piece: Piece
    fds: list[int]  # from the root down to the dir the piece came from (safefs.Root.dir_chain)
    name: str  # its name there
    owned: bool  # fds[1:] are ours to close
    staged: str  # its name in the staging entry


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)[:80] or "_"


def stage_name(root: Root) -> str:
    """The name of the root's staging dir: ``.janitor-removing`` in a Claude dir; in a shared place (the tmp
    and cache dirs of stores.py, ``Root.stage_name``) one per user, ``.janitor-removing-<uid>``."""
    return root.stage_name or STAGE_DIR


def shared_stage_name() -> str:
    return f"{STAGE_DIR}-{os.geteuid()}"


def stage_fd(root: Root) -> int:
    """The root's private staging dir (created 0700 if missing); refused if it is not a plain dir of
    this filesystem (a symlink is never followed). In a shared place it must also be this user's and
    writable by no one else (another user could otherwise rename what is staged)."""
    if root.stage_fd >= 0:
        return root.stage_fd
    name = stage_name(root)
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o700, dir_fd=root.fd)
    try:
        fd = os.open(name, DIR_FLAGS, dir_fd=root.fd)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise Unsafe(f"{name} in {root.path} is not a directory; nothing removed") from None
        raise
    st = os.fstat(fd)
    if st.st_dev != root.dev:
        os.close(fd)
        raise Unsafe(f"{name} in {root.path} is on another filesystem; nothing removed")
    if root.stage_name and (st.st_uid != os.geteuid() or st.st_mode & 0o077):
        os.close(fd)
        raise Unsafe(
            f"{name} in {root.path} is not this user's private staging dir (owner uid {st.st_uid}, "
            f"mode {stat.S_IMODE(st.st_mode):o}); nothing removed"
        )
    root.stage_fd = fd
    return fd


def _stage_inside(root: Root) -> bool:
    try:
        st = os.stat(stage_name(root), dir_fd=root.fd, follow_symlinks=False)
    except OSError:
        return False
    fst = os.fstat(root.stage_fd)
    return (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)


@dataclass
class Removal:
    """One session's removal in progress (see the module docstring)."""

    root: Root
    session: Session
    action: str
    entry: str = ""
    fd: int = -1
    moved: list[_Moved] = field(default_factory=list)
    origin: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    purged: list[str] = field(default_factory=list)  # pieces deleted before a purge failed

    def __post_init__(self) -> None:
        sfd = stage_fd(self.root)
        self.entry = f"{_safe(self.session.session_id)}.{_safe(self.action)}.{secrets.token_hex(4)}"
        # An entry emptied by an earlier purge of this process is renamed for this session (same dir: no
        # block to allocate, none to discard, as a mkdir and rmdir per session would cost).
        with self.root._lock:
            spare = self.root.spares.pop() if self.root.spares else None
        try:
            if spare is None:
                raise FileNotFoundError
            os.rename(spare, self.entry + STAGING, src_dir_fd=sfd, dst_dir_fd=sfd)
        except FileNotFoundError:
            os.mkdir(self.entry + STAGING, 0o700, dir_fd=sfd)
        self.fd = os.open(self.entry + STAGING, DIR_FLAGS, dir_fd=sfd)

    # -- 1. stage ---------------------------------------------------------------------------------
    def stage(self, pieces: list[Piece]) -> None:
        for i, p in enumerate(pieces):
            staged = quote(p.rel, safe="", errors="surrogateescape")
            if len(staged) > _NAME_MAX:
                staged = f"p{i}"
                self.origin[staged] = p.rel
                self._write_origin()
            fds, name, owned = self.root.dir_chain(p.rel)
            try:
                if not self.root.inside(fds, p.rel):
                    raise Interfered(f"{p.rel}: its folder was moved or replaced; nothing removed")
                try:
                    os.rename(name, staged, src_dir_fd=fds[-1], dst_dir_fd=self.fd)
                except FileNotFoundError:
                    raise Vanished(f"{p.rel} vanished during removal") from None
                except OSError as e:
                    if e.errno in (errno.EXDEV, errno.EBUSY):
                        raise Unsafe(f"{p.rel} is on another filesystem or a mount point (kept)") from None
                    raise
            except BaseException:
                if owned:
                    for fd in fds[1:]:
                        os.close(fd)
                raise
            self.moved.append(_Moved(p, fds, name, owned, staged))
            if not self.root.inside(fds, p.rel):
                # the folder moved out (or was replaced) just before the rename: what was renamed may
                # come from outside the Claude dir. The rollback puts it straight back where it was.
                raise Interfered(f"{p.rel}: its folder was moved during removal; put back, nothing removed")

    def _write_origin(self) -> None:
        """Where each ``p<n>`` piece came from, for recovery (only for paths too long to be names)."""
        write_atomic_at(self.fd, ORIGIN, json.dumps(self.origin), tmp_name=ORIGIN + ".tmp")

    # -- 2. verify --------------------------------------------------------------------------------
    def verify(self, check: Check) -> None:
        busy = self.root.busy
        for m in self.moved:
            try:
                for rel, st in walk_at(self.fd, m.staged, self.root.dev):
                    orig = m.piece.rel + rel[len(m.staged) :]
                    if st.st_dev != self.root.dev:
                        raise Unsafe(f"{orig} is a mount point or on another filesystem (kept)")
                    if busy:
                        why = busy.get((st.st_dev, st.st_ino))
                        if why:
                            raise Busy(f"{orig} is {why}")
                    why = check.entry(m.piece, orig, st)
                    if why:
                        raise Interfered(why)
            except (OSError, Changed) as e:
                raise Interfered(f"{m.piece.rel} changed during removal ({e})") from None
        why = check.done()
        if why:
            raise Interfered(why)
        for m in self.moved:
            try:
                os.stat(m.name, dir_fd=m.fds[-1], follow_symlinks=False)
            except FileNotFoundError:
                pass
            else:
                raise Interfered(f"{m.piece.rel} was created again during removal")
            if not self.root.inside(m.fds, m.piece.rel):
                raise Interfered(f"{m.piece.rel}: its folder was moved during removal")
        if not _stage_inside(self.root):
            raise Interfered(f"{stage_name(self.root)} was moved during removal")
        want = {m.staged for m in self.moved} | ({ORIGIN} if self.origin else set())
        if set(os.listdir(self.fd)) != want:
            raise Interfered("something else appeared in the staging dir during removal")

    # -- 3. commit, 4. purge ----------------------------------------------------------------------
    def commit(self) -> None:
        sfd = self.root.stage_fd
        os.rename(self.entry + STAGING, self.entry + DOOMED, src_dir_fd=sfd, dst_dir_fd=sfd)

    def purge(self) -> None:
        """Delete the committed entry. If a piece cannot be deleted (EPERM, an immutable file …), what
        is left of it and the pieces after it (the transcript is last) are put back: the session stays
        findable, is reported failed, and the next sweep tries again."""
        for n, m in enumerate(self.moved):
            try:
                if m.piece.is_dir:
                    rmtree_at(self.fd, m.staged, self.root.dev)
                else:
                    os.unlink(m.staged, dir_fd=self.fd)
            except (OSError, Unsafe) as e:
                self.purged = [x.piece.rel for x in self.moved[:n]]
                self.moved = self.moved[n:]
                self.rollback(DOOMED)
                why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
                raise OSError(
                    getattr(e, "errno", None) or errno.EIO,
                    f"deleting {m.piece.rel} failed: {why}; what is left of the session was put "
                    f"back{'; ' if self.notes else ''}{'; '.join(self.notes)}",
                    getattr(e, "filename", None),
                ) from None
            if not n:
                testhooks.point("removal-purging")
        if self.origin:
            os.unlink(ORIGIN, dir_fd=self.fd)
        self._close()
        spare = f"{secrets.token_hex(4)}{SPARE}"  # kept for the next session (Root.close removes it)
        os.rename(self.entry + DOOMED, spare, src_dir_fd=self.root.stage_fd, dst_dir_fd=self.root.stage_fd)
        with self.root._lock:
            self.root.spares.append(spare)

    # -- rollback ---------------------------------------------------------------------------------
    def rollback(self, state: str = STAGING) -> None:
        """Put every staged piece back where it came from, never replacing anything. What cannot go
        back stays in the entry, renamed ``….kept`` (never purged, reported by every sweep)."""
        left = []
        for m in reversed(self.moved):
            shown = self.notes.append
            if not _put_back(self.fd, m.staged, m.fds[-1], m.name, m.piece.rel, shown):
                left.append(m)
        self.moved = left
        if not left and self.origin:
            with contextlib.suppress(OSError):
                os.unlink(ORIGIN, dir_fd=self.fd)
        self._close()
        sfd = self.root.stage_fd
        if not left:
            with contextlib.suppress(OSError):
                os.rmdir(self.entry + state, dir_fd=sfd)
            return
        with contextlib.suppress(OSError):
            os.rename(self.entry + state, self.entry + KEPT, src_dir_fd=sfd, dst_dir_fd=sfd)
        self.notes.append(
            f"the removed copy of {', '.join(m.piece.rel for m in left)} is kept in "
            f"{self.root.path}/{stage_name(self.root)}/{self.entry}{KEPT} (names: the original paths, "
            "%-encoded; move it back by hand)"
        )

    def _close(self) -> None:
        for m in self.moved:
            if m.owned:
                for fd in m.fds[1:]:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            m.owned = False
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _put_back(src_fd: int, staged: str, pfd: int, name: str, rel: str, note: Callable[[str], None]) -> bool:
    """Move a staged piece back to ``name`` in ``pfd``, never replacing anything; False (and a note) if
    it cannot go back. A name taken meanwhile (a writer made the file or dir again) leaves it staged: it
    is not put beside the new one, where the store rules (stores.py) could age it away."""
    try:
        rename_noreplace(src_fd, staged, pfd, name)
        return True
    except OSError as e:
        if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
            note(f"{rel} was created again meanwhile")
        else:
            note(f"{rel} could not be put back: {e.strerror or e}")
        return False


def remove(
    root: Root,
    session: Session,
    action: str,
    check: Check,
    *,
    into: tuple[int, str] | None = None,
    fates: dict[str, str] | None = None,
) -> None:
    """Remove the session's pieces (transcript last) through stage → verify → commit → purge.

    ``into`` (dir fd, name): instead of the purge, the committed entry is moved there by one rename (the
    trash, trash.py: same filesystem); if that fails, the session is put back and OSError says why.
    Raises Interfered (session put back, ``str`` says what happened), Busy, Unsafe, or OSError. On a
    failure ``fates`` (if given) gets the pieces not put back: ``kept`` (left staged, ``….kept``) or
    ``purged`` (deleted before the purge failed); every other piece is where it was."""
    pieces = sorted(session.pieces, key=lambda p: p.store == "transcript")
    r = Removal(root, session, action)
    try:
        r.stage(pieces)
        testhooks.point("removal-staged")
        r.verify(check)
        testhooks.point("removal-verified")
    except BaseException as e:
        r.rollback()
        if fates is not None:
            fates.update({m.piece.rel: "kept" for m in r.moved})
        if r.notes and isinstance(e, Interfered | Busy | Unsafe):
            raise type(e)(f"{e}; {'; '.join(r.notes)}") from None
        if r.notes and isinstance(e, OSError):
            raise OSError(e.errno, f"{e.strerror or e}; {'; '.join(r.notes)}", e.filename) from None
        raise
    r.commit()
    testhooks.point("removal-committed")
    if into is None:
        try:
            r.purge()
        except OSError:
            if fates is not None:
                fates.update({rel: "purged" for rel in r.purged} | {m.piece.rel: "kept" for m in r.moved})
            raise
        return
    try:
        os.rename(r.entry + DOOMED, into[1], src_dir_fd=root.stage_fd, dst_dir_fd=into[0])
    except OSError as e:
        r.rollback(DOOMED)
        raise OSError(
            e.errno,
            f"moving it to the trash failed: {e.strerror or e}; put back"
            + (f"; {'; '.join(r.notes)}" if r.notes else ""),
            e.filename,
        ) from None
    r._close()


class matches_scan:  # noqa: N801 (a Check, used like a function: staging.matches_scan(session))
    """Delete mode: each staged piece must be the inode the scan saw, unchanged — for a dir, with the
    same bytes of regular files and the same newest mtime at any depth (cache.usage_of, as the scan
    counted)."""

    def __init__(self, session: Session) -> None:
        self.pieces = session.pieces
        self.seen: dict[str, list[Any]] = {}  # piece rel -> [top stat, bytes, newest mtime] (cache.usage_of)

    def entry(self, piece: Piece, rel: str, st: os.stat_result) -> str | None:
        if rel == piece.rel:
            if (st.st_ino, st.st_dev, stat.S_ISDIR(st.st_mode)) != (piece.ino, piece.dev, piece.is_dir):
                return f"{piece.rel} was replaced since the scan"
            if not piece.is_dir and (st.st_size, st.st_mtime_ns) != (piece.size, piece.mtime_ns):
                return f"{piece.rel} was written to since the scan"
            self.seen[piece.rel] = [st, 0, 0.0]
            return None
        acc = self.seen[piece.rel]
        total, newest, _ = usage_of((st,))
        acc[1] += total
        acc[2] = max(acc[2], newest)
        return None

    def done(self) -> str | None:
        for p in self.pieces:
            got = self.seen.get(p.rel)
            if got is None:
                return f"{p.rel} vanished during removal"
            st, total, newest = got
            if p.is_dir and (st.st_mtime_ns != p.mtime_ns or total != p.bytes or max(newest, st.st_mtime) != p.mtime):
                return f"something in {p.rel} changed since the scan"
        return None


class matches_identities:  # noqa: N801 (a Check, used like a function)
    """Archive mode: what is staged must be exactly what went into the archive (kind, inode, size,
    mtime of every entry)."""

    def __init__(self, idents: dict[str, tuple[str, int, int, int]]) -> None:
        self.idents, self.count = idents, 0

    def entry(self, piece: Piece, rel: str, st: os.stat_result) -> str | None:
        now = ("dir" if stat.S_ISDIR(st.st_mode) else "file", st.st_ino, st.st_size, st.st_mtime_ns)
        if self.idents.get(rel) != now:
            return f"{rel} changed since it was archived"
        self.count += 1
        return None

    def done(self) -> str | None:
        if self.count != len(self.idents):
            return "something archived is no longer there"
        return None


# ---- recovery --------------------------------------------------------------------------------------

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
                elif not _put_back(efd, name, pfd, last, rel, notes.append):
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
