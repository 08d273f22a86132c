"""Operations on a tree below an open dir fd: walk it, remove it, rename into it — never following a symlink,
never crossing into another filesystem, each step relative to a dir fd held open (not to a path that can be
swapped). Root (safefs.py) is built on these; staging, trash and archive use them directly.
"""

from __future__ import annotations

import errno
import os
import resource
import stat
import sys
from collections.abc import Iterator
from typing import Any

from claude_janitor import testhooks

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Changed(Exception):
    """The entry on disk is not the one the scan saw: act on nothing."""


class Unsafe(Exception):
    """Acting would leave the root, follow a symlink or cross a mount: refused."""


_fd_limit_raised = False


def raise_fd_limit() -> None:
    """Deep trees are removed holding one fd per level: lift the soft fd limit to the hard one (once)."""
    global _fd_limit_raised
    if _fd_limit_raised:
        return
    _fd_limit_raised = True
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError):
            pass


def each_entry(path: str) -> Iterator[os.DirEntry[str]]:
    """A dir's entries as they are read (a store dir holds one per session: 100k sessions would be 100k
    entries and their stat results, ~50 MB, as a list); nothing for a dir that is gone or not a dir."""
    try:
        with os.scandir(path) as it:
            yield from it
    except (FileNotFoundError, NotADirectoryError):
        return


def lstat_entry(e: os.DirEntry[str]) -> os.stat_result | None:
    """An entry's own lstat, or None once it is gone or cannot be stat'ed."""
    try:
        return e.stat(follow_symlinks=False)
    except OSError:
        return None


def iter_tree(path: str, dev: int, problems: list[str] | None = None) -> Iterator[os.stat_result]:
    """The lstat of every entry below the dir ``path`` (not of ``path`` itself), read-only.

    Walks by dir fd, so any depth works (no PATH_MAX), holding one fd per level; never follows a symlink
    and never enters another filesystem (a mount point is yielded, not entered). What cannot be read is
    described in ``problems``; entries vanishing meanwhile are skipped.
    """
    problems = problems if problems is not None else []

    def listing(fd: int, name: str, subdirs: list[str]) -> Iterator[os.stat_result]:
        """The lstat of each entry of one dir, streamed: a listing is never held whole (a dir of 200k
        entries cost ~115 MB of stat results at once); only the names of its subdirs are kept."""
        try:
            with os.scandir(fd) as it:
                for e in it:
                    try:
                        st = e.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    except OSError as err:
                        problems.append(f"cannot stat {e.name!r}: {err.strerror}")
                        continue
                    if stat.S_ISDIR(st.st_mode) and st.st_dev == dev:
                        subdirs.append(e.name)
                    yield st
        except OSError as err:
            problems.append(f"cannot list {name!r}: {err.strerror}")

    def enter(name: str, dir_fd: int | None) -> int | None:
        """Open one dir (fd left open for the caller), or note why not and return None."""
        try:
            return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        except OSError as err:
            problems.append(f"cannot open {name!r}: {err.strerror}")
            return None

    raise_fd_limit()
    stack: list[tuple[int, list[str]]] = []
    name = path
    got = enter(path, None)
    try:
        while got is not None or stack:
            if got is not None:
                subdirs: list[str] = []
                stack.append((got, subdirs))
                yield from listing(got, name, subdirs)
            fd, subdirs = stack[-1]
            if not subdirs:
                os.close(fd)
                stack.pop()
                got = None
                continue
            name = subdirs.pop()
            got = enter(name, fd)
    finally:
        for fd, _ in stack:
            os.close(fd)


def rmtree_at(parent_fd: int, name: str, dev: int, *, expect_ino: int | None = None) -> None:
    """Remove directory ``name`` under ``parent_fd`` and everything in it.

    Iterative (no recursion limit), one fd per level of depth. Each dir is listed once: its non-dirs are
    unlinked, then its subdirs are emptied the same way, then it is removed (an entry created meanwhile
    makes that rmdir fail with ENOTEMPTY, and the session is reported as failed, never half-guessed).
    Symlinks are unlinked, never followed; a mount point inside raises Unsafe and is left alone. With
    ``expect_ino``, the dir opened must be that inode (else Changed, and nothing is removed).
    """
    raise_fd_limit()
    root_fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    st = os.fstat(root_fd)
    if st.st_dev != dev:
        os.close(root_fd)
        raise Unsafe(f"{name}: is a mount point; not entered")
    if expect_ino is not None and st.st_ino != expect_ino:
        os.close(root_fd)
        raise Changed(f"{name} changed since the scan")
    testhooks.point("rmtree-opened")  # the race tests move things here: the opened dir is emptied by its fd
    # stack of (fd, name in parent, subdirs still to empty); the parent of stack[i] is stack[i-1]
    stack: list[tuple[int, str, list[str]]] = []
    fd, nm = root_fd, name
    try:
        while True:
            if fd >= 0:
                stack.append((fd, nm, []))
                fd = -1
                stack[-1][2].extend(_unlink_entries(stack[-1][0]))
            top, nm, subdirs = stack[-1]
            if subdirs:
                nm = subdirs.pop()
                try:
                    fd = os.open(nm, DIR_FLAGS, dir_fd=top)
                except FileNotFoundError:
                    continue
                except OSError as err:
                    if err.errno in (errno.ELOOP, errno.ENOTDIR):  # swapped for a symlink/file
                        _unlink_quiet(nm, top)
                        continue
                    raise
                if os.fstat(fd).st_dev != dev:
                    os.close(fd)
                    fd = -1
                    raise Unsafe(f"{nm}: is a mount point; not entered")
                continue
            stack.pop()
            os.close(top)
            try:
                os.rmdir(nm, dir_fd=stack[-1][0] if stack else parent_fd)
            except FileNotFoundError:
                pass
            if not stack:
                return
    finally:
        if fd >= 0:
            os.close(fd)
        for sfd, _, _ in stack:
            os.close(sfd)


LISTED_MAX = 4096  # entries a Listing holds at most (a bigger tree is listed again by rmtree_at)
LISTED_BYTES = 1 << 20  # and bytes of dir paths (a deep chain of long names would grow with depth squared)


class Listing:
    """What a walk (walk_at) saw of one dir tree, fed one entry at a time: per dir, its inode and the names
    of its non-dirs and of its subdirs, so that rmtree_listed can delete the tree without listing it
    again. Past LISTED_MAX entries or LISTED_BYTES of dir paths it keeps nothing (``full``): memory stays
    bounded."""

    __slots__ = ("dirs", "n", "size", "full")

    def __init__(self) -> None:
        self.dirs: dict[str, tuple[int, list[tuple[str, int]], list[str]]] = {}  # path → (ino, non-dirs, subdirs)
        self.n = 0
        self.size = 0
        self.full = False

    def add(self, rel: str, st: os.stat_result) -> None:
        """One entry, after its parent (walk_at's order): ``rel`` is its path from the walk's start."""
        if self.full:
            return
        self.n += 1
        parent, _, name = rel.rpartition("/")
        above = self.dirs.get(parent) if parent else None
        if self.n > LISTED_MAX or (parent and above is None):
            self.full, self.dirs = True, {}
            return
        is_dir = stat.S_ISDIR(st.st_mode)
        if is_dir:
            self.size += len(rel)
            if self.size > LISTED_BYTES:
                self.full, self.dirs = True, {}
                return
            self.dirs[rel] = (st.st_ino, [], [])
        if above is not None:
            if is_dir:
                above[2].append(name)
            else:
                above[1].append((name, st.st_ino))


def rmtree_listed(parent_fd: int, name: str, listing: Listing, dev: int) -> None:
    """Remove the dir ``name`` under ``parent_fd`` as ``listing`` saw it, without listing it again.

    Each dir is opened by its name in the one above, never through a symlink, and must be the inode the
    listing saw, on ``dev`` (else Changed or Unsafe, and nothing more is removed); each listed non-dir is
    lstat'ed and unlinked only if it is still the inode listed (one already gone is fine; one replaced, by a
    rename over its name, raises Changed), its subdirs emptied the same way, then it is removed. An entry
    made since the listing makes that rmdir fail (ENOTEMPTY), as in rmtree_at. Iterative, one fd per level
    of depth."""
    raise_fd_limit()
    stack: list[tuple[int, str, list[str]]] = []  # (fd, path, subdirs still to empty)
    todo: tuple[int, str] | None = (parent_fd, name)
    try:
        while True:
            if todo is not None:
                pfd, path = todo
                todo = None
                listed = listing.dirs.get(path)
                if listed is None:  # not a dir when it was listed
                    raise Changed(f"{path} changed since it was checked")
                ino, files, subdirs = listed
                try:
                    fd = os.open(path.rpartition("/")[2], DIR_FLAGS, dir_fd=pfd)
                except FileNotFoundError:
                    if not stack:
                        raise
                    continue  # a listed subdir already gone
                st = os.fstat(fd)
                if st.st_dev != dev or st.st_ino != ino:
                    os.close(fd)
                    raise (Unsafe if st.st_dev != dev else Changed)(f"{path} changed since it was checked")
                if not stack:
                    testhooks.point("rmtree-opened")  # as in rmtree_at: the race tests move things here
                stack.append((fd, path, list(subdirs)))
                for f, fino in files:
                    try:
                        if os.stat(f, dir_fd=fd, follow_symlinks=False).st_ino != fino:
                            raise Changed(f"{path}/{f} was replaced since it was checked")
                    except FileNotFoundError:
                        continue
                    _unlink_quiet(f, fd)
            fd, path, subdirs = stack[-1]
            if subdirs:
                todo = (fd, f"{path}/{subdirs.pop()}")
                continue
            stack.pop()
            os.close(fd)
            try:
                os.rmdir(path.rpartition("/")[2], dir_fd=stack[-1][0] if stack else parent_fd)
            except FileNotFoundError:
                pass
            if not stack:
                return
    finally:
        for sfd, _, _ in stack:
            os.close(sfd)


def _unlink_entries(fd: int) -> list[str]:
    """Unlink every non-dir in the dir ``fd``; return the names of its subdirs."""
    subdirs: list[str] = []
    with os.scandir(fd) as it:
        for e in it:
            try:
                is_dir = e.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                subdirs.append(e.name)
            else:
                _unlink_quiet(e.name, fd)
    return subdirs


def _unlink_quiet(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


RENAME_NOREPLACE = 1
_renameat2: Any = None


def rename_noreplace(src_fd: int, src: str, dst_fd: int, dst: str) -> None:
    """renameat2(RENAME_NOREPLACE): move ``src`` to ``dst`` only if nothing is at ``dst`` (else
    FileExistsError); nothing is ever replaced. Where the kernel or filesystem lacks it, an lstat
    check first (a narrow race: the only fallback there is)."""
    global _renameat2
    if _renameat2 is None and sys.platform.startswith("linux"):
        import ctypes

        try:
            fn = ctypes.CDLL(None, use_errno=True).renameat2
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            _renameat2 = fn
        except (OSError, AttributeError):
            _renameat2 = False
    if _renameat2:
        import ctypes

        if _renameat2(src_fd, os.fsencode(src), dst_fd, os.fsencode(dst), RENAME_NOREPLACE) == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.ENOSYS, errno.EINVAL):
            raise OSError(err, os.strerror(err), dst)
    try:
        os.stat(dst, dir_fd=dst_fd, follow_symlinks=False)
    except FileNotFoundError:
        os.rename(src, dst, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
        return
    raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), dst)


def walk_at(dir_fd: int, name: str, dev: int) -> Iterator[tuple[str, os.stat_result]]:
    """(path relative to ``name``'s parent, lstat) of ``name`` and, for a dir, of everything below it.

    By dir fd (no PATH_MAX), one fd per level, never following a symlink; a dir on another filesystem
    is yielded, not entered. Each dir's listing is streamed (memory grows with the subdirs waiting, not
    with the files). Entries vanishing meanwhile are skipped; a dir swapped between its lstat and its
    open raises Changed; other errors propagate."""
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    yield name, st
    if not stat.S_ISDIR(st.st_mode) or st.st_dev != dev:
        return
    raise_fd_limit()
    # stack of (fd, its path, (name, ino) of its subdirs still to enter)
    stack: list[tuple[int, str, list[tuple[str, int]]]] = []
    todo: tuple[int, str, int] | None = (dir_fd, name, st.st_ino)  # (parent fd, path, expected ino)
    try:
        while todo is not None or stack:
            if todo is not None:
                pfd, path, ino = todo
                todo = None
                try:
                    fd = os.open(path.rpartition("/")[2], DIR_FLAGS, dir_fd=pfd)
                except FileNotFoundError:
                    continue
                if os.fstat(fd).st_ino != ino:
                    os.close(fd)
                    raise Changed(f"{path} changed while being read")
                subdirs: list[tuple[str, int]] = []
                stack.append((fd, path, subdirs))
                with os.scandir(fd) as it:
                    for e in it:
                        try:
                            est = e.stat(follow_symlinks=False)
                        except FileNotFoundError:
                            continue
                        yield f"{path}/{e.name}", est
                        if stat.S_ISDIR(est.st_mode) and est.st_dev == dev:
                            subdirs.append((e.name, est.st_ino))
            fd, path, subdirs = stack[-1]
            if not subdirs:
                os.close(fd)
                stack.pop()
                continue
            n, ino = subdirs.pop()
            todo = (fd, f"{path}/{n}", ino)
    finally:
        for sfd, _, _ in stack:
            os.close(sfd)
