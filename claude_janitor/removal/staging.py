"""Removing a session as one transaction: stage → verify → commit → purge (recovery after a crash: recovery.py).

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
4. **purge**: the doomed entry is emptied (``tree.rmtree_listed``: as the verify's walk listed it, no second
   listing; ``tree.rmtree_at`` past LISTED_MAX entries) and kept as ``<random>.spare`` for the
   process's next session (one same-dir rename instead of an rmdir and a mkdir); ``Root.close`` removes
   the spares, recovery removes those of a killed process.

A crash leaves the entry in one of its named states: recovery.py finishes or undoes it at the start of
the next sweep. What a verify compares the staged entries with (a ``Check``) is in checks.py.

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
from typing import Protocol
from urllib.parse import quote

from claude_janitor import testhooks
from claude_janitor.fs.atomicfile import write_atomic_at
from claude_janitor.fs.safefs import Root
from claude_janitor.fs.tree import (
    DIR_FLAGS,
    Changed,
    Listing,
    Unsafe,
    rename_noreplace,
    rmtree_at,
    rmtree_listed,
    walk_at,
)
from claude_janitor.model import Piece, Session

STAGE_DIR = ".janitor-removing"
STAGING, DOOMED, KEPT, SPARE = ".staging", ".doomed", ".kept", ".spare"
STORE_ACTION = "delete-store"  # a store entry's removal (store_removal.py): entry <store key>.delete-store…
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
    listing: Listing | None = None  # a dir piece as its verify walked it (the purge deletes it without a listing)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)[:80] or "_"


_PLAIN = re.compile(r"[A-Za-z0-9_.~/-]*")  # what quote() leaves as it is, and "/" (every rel a sweep stages)


def staged_name(rel: str) -> str:
    """A piece's name in its staging entry: its rel path %-encoded ("/" too), which recovery decodes."""
    if _PLAIN.fullmatch(rel):
        return rel.replace("/", "%2F")  # what quote() makes of it, without its per-character work
    return quote(rel, safe="", errors="surrogateescape")


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
    moved: list[_Moved] = field(default_factory=list)  # the pieces in the entry now
    held: list[_Moved] = field(default_factory=list)  # every piece ever moved: their dir fds are closed at the end
    origin: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    purged: list[str] = field(default_factory=list)  # pieces deleted before a purge failed

    def __post_init__(self) -> None:
        sfd = stage_fd(self.root)
        self.entry = f"{_safe(self.session.session_id)}.{_safe(self.action)}.{secrets.token_hex(4)}"
        # An entry emptied by an earlier purge of this process is renamed for this session (same dir: no
        # block to allocate, none to discard, as a mkdir and rmdir per session would cost).
        spare = self.root.take_spare()
        try:
            if spare is None:
                raise FileNotFoundError
            os.rename(spare, self.entry + STAGING, src_dir_fd=sfd, dst_dir_fd=sfd)
        except FileNotFoundError:
            os.mkdir(self.entry + STAGING, 0o700, dir_fd=sfd)
        self.fd = os.open(self.entry + STAGING, DIR_FLAGS, dir_fd=sfd)

    # -- 1. stage ---------------------------------------------------------------------------------
    def stage(self, pieces: list[Piece]) -> None:
        intact: set[tuple[int, ...]] = set()  # dir chains found in place after a rename of this stage
        for i, p in enumerate(pieces):
            staged = staged_name(p.rel)
            if len(staged) > _NAME_MAX:
                staged = f"p{i}"
                self.origin[staged] = p.rel
                self._write_origin()
            fds, name, owned = self.root.dir_chain(p.rel)
            chain = tuple(fds)
            try:
                # (only to refuse early: the check after the rename is the one that counts)
                if chain not in intact and not self.root.inside(fds, p.rel):
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
            moved = _Moved(p, fds, name, owned, staged)
            self.moved.append(moved)
            self.held.append(moved)
            if not self.root.inside(fds, p.rel):
                # the folder moved out (or was replaced) just before the rename: what was renamed may
                # come from outside the Claude dir. The rollback puts it straight back where it was.
                raise Interfered(f"{p.rel}: its folder was moved during removal; put back, nothing removed")
            intact.add(chain)
            testhooks.point("removal-piece-staged")

    def _write_origin(self) -> None:
        """Where each ``p<n>`` piece came from, for recovery (only for paths too long to be names)."""
        write_atomic_at(self.fd, ORIGIN, json.dumps(self.origin), tmp_name=ORIGIN + ".tmp")

    # -- 2. verify --------------------------------------------------------------------------------
    def verify(self, check: Check) -> None:
        busy = self.root.busy
        for m in self.moved:
            self._no_mount_in(m.piece.rel)
            listing = Listing() if m.piece.is_dir else None
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
                    if listing is not None:
                        listing.add(rel, st)
            except (OSError, Changed) as e:
                raise Interfered(f"{m.piece.rel} changed during removal ({e})") from None
            m.listing = listing if listing is not None and m.staged in listing.dirs else None  # (not full)
        why = check.done()
        if why:
            raise Interfered(why)
        self._in_place()

    def _no_mount_in(self, rel: str) -> None:
        """A piece that holds a mount point, even one of the same filesystem (a bind mount: no st_dev
        tells), is never walked nor deleted: its files are another place's."""
        for mp in self.root.mounts:
            if mp == rel or mp.startswith(rel + "/"):
                raise Unsafe(f"{mp} is a mount point (kept)")

    def _in_place(self) -> None:
        """No original path made again, every folder still reachable from the root, the staging dir
        still inside it and holding only what was staged (else Interfered)."""
        intact: set[tuple[int, ...]] = set()  # dir chains found in place by this verify (one lstat each)
        for m in self.moved:
            try:
                os.stat(m.name, dir_fd=m.fds[-1], follow_symlinks=False)
            except FileNotFoundError:
                pass
            else:
                raise Interfered(f"{m.piece.rel} was created again during removal")
            chain = tuple(m.fds)
            if chain not in intact:
                if not self.root.inside(m.fds, m.piece.rel):
                    raise Interfered(f"{m.piece.rel}: its folder was moved during removal")
                intact.add(chain)
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
                if m.listing is not None:
                    rmtree_listed(self.fd, m.staged, m.listing, self.root.dev)
                elif m.piece.is_dir:
                    rmtree_at(self.fd, m.staged, self.root.dev)
                else:
                    os.unlink(m.staged, dir_fd=self.fd)
            except (OSError, Unsafe, Changed) as e:
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
        self.root.keep_spare(spare)

    # -- rollback ---------------------------------------------------------------------------------
    def rollback(self, state: str = STAGING) -> None:
        """Put every staged piece back where it came from, never replacing anything. What cannot go
        back stays in the entry, renamed ``….kept`` (never purged, reported by every sweep)."""
        left = []
        for m in reversed(self.moved):
            shown = self.notes.append
            if not put_back(self.fd, m.staged, m.fds[-1], m.name, m.piece.rel, shown):
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
        for m in self.held:  # not only self.moved: a rollback or a purge leaves there only what is left
            if m.owned:
                for fd in m.fds[1:]:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            m.owned = False
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def put_back(src_fd: int, staged: str, pfd: int, name: str, rel: str, note: Callable[[str], None]) -> bool:
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
