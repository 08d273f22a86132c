"""Safe filesystem operations: everything relative to an open root dir fd, nothing follows a symlink,
nothing crosses into another filesystem, nothing leaves the root."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import resource
import stat
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from claude_janitor.model import ConfigError, LockBusy, Piece

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Changed(Exception):
    """The entry on disk is not the one the scan saw: act on nothing."""


class Unsafe(Exception):
    """Acting would leave the root, follow a symlink or cross a mount: refused."""


def validate_root(path: Path) -> Path:
    """Refuse roots that are missing, not dirs, symlinks, '/', or the home dir itself."""
    p = Path(os.path.abspath(path))
    if not os.path.lexists(p):
        raise ConfigError(f"Claude config dir {p} does not exist (pass --claude-dir or set CLAUDE_CONFIG_DIR)")
    if os.path.islink(p):
        raise ConfigError(f"Claude config dir {p} is a symlink; refusing to sweep through it. "
                          f"Pass the real path: {os.path.realpath(p)}")
    if not p.is_dir():
        raise ConfigError(f"Claude config dir {p} is not a directory")
    real = Path(os.path.realpath(p))
    home = Path(os.path.realpath(Path.home()))
    if real == Path(real.anchor) or real == home:
        what = "/" if real == Path(real.anchor) else "your home directory"
        raise ConfigError(f"refusing to use {p} as a Claude config dir: it is {what}")
    return p


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


def _check_rel(rel: str) -> list[str]:
    parts = rel.split("/")
    if not rel or rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise Unsafe(f"path {rel!r} is not a plain path inside the root")
    return parts


class Root:
    """An open Claude config dir. All operations go through its fd."""

    MAX_CACHED_DIRS = 1024

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.fd = os.open(self.path, DIR_FLAGS)
        self.dev = os.fstat(self.fd).st_dev
        # Parent dirs opened (component by component, no-follow, same filesystem) during this Root's life,
        # kept open so that checking and removing 100k sessions does not re-walk their paths each time.
        # A dir swapped for a symlink after it was opened is never followed: we keep acting on the opened
        # one. Thread-safe; never evicted while the Root is open (past the cap, fds are opened per call).
        self._dirs: dict[tuple[str, ...], int] = {}
        self._lock = threading.Lock()
        # Files other processes have open for writing or locked, by (dev, ino) (activity.InUse.inodes):
        # a removal that finds one of them anywhere in a session's trees keeps the session (staging).
        self.busy: dict[tuple[int, int], str] = {}
        self.stage_fd = -1  # the private staging dir of removals (staging.py), opened when first needed
        self.spares: list[str] = []  # emptied staging entries this process keeps for its next removals

    def close(self) -> None:
        with self._lock:
            for fd in self._dirs.values():
                os.close(fd)
            self._dirs.clear()
        if self.stage_fd >= 0:
            for name in self.spares:  # staging.release_spares, without importing it here
                with contextlib.suppress(OSError):
                    os.rmdir(name, dir_fd=self.stage_fd)
            self.spares = []
            os.close(self.stage_fd)
            self.stage_fd = -1
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _open_dir(self, parent: int, name: str, parts: tuple[str, ...]) -> int:
        fd = os.open(name, DIR_FLAGS, dir_fd=parent)
        if os.fstat(fd).st_dev != self.dev:
            os.close(fd)
            raise Unsafe(f"{'/'.join(parts)}: crosses into another filesystem")
        return fd

    def _cached_dir(self, parts: tuple[str, ...]) -> int | None:
        """The cached fd of the dir at ``parts`` (opened now if need be); None once the cache is full."""
        if not parts:
            return self.fd
        fd = self._dirs.get(parts)
        if fd is not None:
            return fd
        with self._lock:
            fd = self._dirs.get(parts)
            if fd is not None:
                return fd
            if len(self._dirs) >= self.MAX_CACHED_DIRS:
                return None
        parent = self._cached_dir(parts[:-1])
        if parent is None:
            return None
        fd = self._open_dir(parent, parts[-1], parts)
        with self._lock:
            if parts in self._dirs:  # another thread got there first
                os.close(fd)
                return self._dirs[parts]
            self._dirs[parts] = fd
        return fd

    def dir_chain(self, rel: str) -> tuple[list[int], str, bool]:
        """The fd of every dir from the root down to the one holding ``rel`` (root first), the last
        component's name, and whether the caller must close the fds after the root (when the cache is full).

        With ``inside``, the caller can check afterwards that the holding dir is still where ``rel`` says."""
        parts = _check_rel(rel)
        dirs = tuple(parts[:-1])
        fds = [self.fd]
        for i in range(1, len(dirs) + 1):
            fd = self._cached_dir(dirs[:i])
            if fd is None:
                break
            fds.append(fd)
        else:
            return fds, parts[-1], False
        fds = [self.fd]
        try:
            for i, comp in enumerate(dirs):
                fds.append(self._open_dir(fds[-1], comp, dirs[:i + 1]))
        except BaseException:
            for fd in fds[1:]:
                os.close(fd)
            raise
        return fds, parts[-1], True

    def inside(self, fds: list[int], rel: str) -> bool:
        """Is each dir of ``fds`` (from ``dir_chain(rel)``) still the entry of that name in the one above,
        i.e. is the last one still reachable from the root by ``rel``'s path, no symlink followed?

        A dir fd keeps working after its dir was moved elsewhere (even out of the root): this is what
        tells that apart. A false answer is final; a true one holds at the instant of each lstat."""
        parts = rel.split("/")
        for i in range(1, len(fds)):
            try:
                st = os.stat(parts[i - 1], dir_fd=fds[i - 1], follow_symlinks=False)
            except OSError:
                return False
            fst = os.fstat(fds[i])
            if (st.st_dev, st.st_ino) != (fst.st_dev, fst.st_ino):
                return False
        return True

    def parent(self, rel: str) -> tuple[int, str, bool]:
        """(fd of the dir holding ``rel``, the last component's name, whether the caller must close the fd)."""
        parts = _check_rel(rel)
        fd = self._cached_dir(tuple(parts[:-1]))
        if fd is not None:
            return fd, parts[-1], False
        fd, name = self.open_parent(rel)
        return fd, name, True

    def __enter__(self) -> Root:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open_parent(self, rel: str, *, create: bool = False) -> tuple[int, str]:
        """fd of the dir holding ``rel`` (caller closes it) and the last component's name.

        With ``create``, missing parent dirs are made (0700, each fsync'd into its parent)."""
        parts = _check_rel(rel)
        fd = os.dup(self.fd)
        try:
            for comp in parts[:-1]:
                try:
                    nfd = os.open(comp, DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(comp, 0o700, dir_fd=fd)
                        os.fsync(fd)
                    nfd = os.open(comp, DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = nfd
                if os.fstat(fd).st_dev != self.dev:
                    raise Unsafe(f"{rel}: crosses into another filesystem")
        except BaseException:
            os.close(fd)
            raise
        return fd, parts[-1]

    def lstat(self, rel: str) -> os.stat_result:
        pfd, name, owned = self.parent(rel)
        try:
            return os.stat(name, dir_fd=pfd, follow_symlinks=False)
        finally:
            if owned:
                os.close(pfd)

    def check_unchanged(self, piece: Piece) -> os.stat_result:
        """lstat the piece and raise Changed if it is not what the scan saw."""
        st = self.lstat(piece.rel)
        same = st.st_ino == piece.ino and st.st_dev == piece.dev and stat.S_ISDIR(st.st_mode) == piece.is_dir
        if same and not piece.is_dir:
            same = st.st_size == piece.size and st.st_mtime_ns == piece.mtime_ns
        if same and piece.is_dir:
            same = st.st_mtime_ns == piece.mtime_ns
        if not same:
            raise Changed(f"{piece.rel} changed since the scan")
        return st

    def remove(self, rel: str, expect: Piece | None = None) -> None:
        """Remove a file or a whole tree at ``rel``; never follows symlinks or crosses mounts.

        With ``expect``, the entry is checked once more right before removal and Changed is raised if it
        is not the inode the scan saw (for a dir: the very dir opened for removal, by its fd)."""
        fds, name, owned = self.dir_chain(rel)
        pfd = fds[-1]
        try:
            if not self.inside(fds, rel):  # a held dir fd follows its dir wherever it was moved
                raise Changed(f"{rel}: its folder was moved or replaced since it was opened; not touched")
            if expect is not None and expect.is_dir:
                try:
                    rmtree_at(pfd, name, self.dev, expect_ino=expect.ino)
                except OSError as e:
                    if e.errno in (errno.ENOTDIR, errno.ELOOP):  # swapped for a file or a symlink
                        raise Changed(f"{rel} changed since the scan") from None
                    raise
                return
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            if expect is not None and (st.st_ino != expect.ino or st.st_dev != expect.dev
                                       or stat.S_ISDIR(st.st_mode) or st.st_size != expect.size
                                       or st.st_mtime_ns != expect.mtime_ns):
                raise Changed(f"{rel} changed since the scan")
            if stat.S_ISDIR(st.st_mode):
                if st.st_dev != self.dev:
                    raise Unsafe(f"{rel}: is a mount point; not entered")
                rmtree_at(pfd, name, self.dev)
            else:
                os.unlink(name, dir_fd=pfd)
        finally:
            if owned:
                for fd in fds[1:]:
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


class SweepLock:
    """An exclusive flock on the state dir's lock file: one sweep at a time (daemon or one-shot)."""

    def __init__(self, path: Path, *, wait: float = 0.0) -> None:
        self.path = path
        self.wait = wait
        self.fd = -1

    def __enter__(self) -> SweepLock:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(self.fd)
                    self.fd = -1
                    raise LockBusy(f"another sweep is running (lock {self.path} is held); "
                                   "try again later or pass --wait SECONDS") from None
                time.sleep(0.1)
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd >= 0:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = -1
