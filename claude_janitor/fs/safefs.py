"""Safe filesystem operations: everything relative to an open root dir fd, nothing follows a symlink,
nothing crosses into another filesystem, nothing leaves the root."""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from pathlib import Path

from claude_janitor.errors import ConfigError
from claude_janitor.fs.mounts import mounts_below
from claude_janitor.fs.tree import DIR_FLAGS, Changed, Unsafe
from claude_janitor.model import Piece


def validate_root(path: Path) -> Path:
    """Refuse roots that are missing, not dirs, symlinks, '/', or the home dir itself."""
    p = Path(os.path.abspath(path))
    if not os.path.lexists(p):
        raise ConfigError(f"Claude config dir {p} does not exist (pass --claude-dir or set CLAUDE_CONFIG_DIR)")
    if os.path.islink(p):
        raise ConfigError(
            f"Claude config dir {p} is a symlink; refusing to sweep through it. "
            f"Pass the real path: {os.path.realpath(p)}"
        )
    if not p.is_dir():
        raise ConfigError(f"Claude config dir {p} is not a directory")
    real = Path(os.path.realpath(p))
    home = Path(os.path.realpath(Path.home()))
    if real == Path(real.anchor) or real == home:
        what = "/" if real == Path(real.anchor) else "your home directory"
        raise ConfigError(f"refusing to use {p} as a Claude config dir: it is {what}")
    return p


def check_rel(rel: str) -> list[str]:
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
        self._ids: dict[int, tuple[int, int]] = {}  # (dev, ino) of each cached fd: an open fd's inode never changes
        self._lock = threading.Lock()
        # Files other processes have open for writing or locked, by (dev, ino) (activity.InUse.inodes):
        # a removal that finds one of them anywhere in a session's trees keeps the session (staging).
        self.busy: dict[tuple[int, int], str] = {}
        self.stage_fd = -1  # the private staging dir of removals (staging.py), opened when first needed
        self.spares: list[str] = []  # emptied staging entries this process keeps for its next removals
        # In a shared place (stores.py's tmp and cache dirs): the per-user staging dir's name, which must be
        # this user's and private, and is removed on close when empty (nothing of the janitor's stays there).
        self.stage_name = ""
        # Mount points below the root when it was opened (fs/mounts.py): a bind mount of the same filesystem
        # has the root's st_dev, so a removal of a piece that holds one is refused (staging.py).
        self.mounts = mounts_below(self.path)

    def take_spare(self) -> str | None:
        """An emptied staging entry kept by an earlier removal of this process (None if there is none)."""
        with self._lock:
            return self.spares.pop() if self.spares else None

    def keep_spare(self, name: str) -> None:
        """Keep an emptied staging entry for the next removal (``close`` removes those left)."""
        with self._lock:
            self.spares.append(name)

    def close(self) -> None:
        with self._lock:
            for fd in self._dirs.values():
                os.close(fd)
            self._dirs.clear()
            self._ids.clear()
        if self.stage_fd >= 0:
            for name in self.spares:  # the emptied staging entries kept for reuse (take_spare/keep_spare)
                with contextlib.suppress(OSError):
                    os.rmdir(name, dir_fd=self.stage_fd)
            self.spares = []
            os.close(self.stage_fd)
            self.stage_fd = -1
            if self.stage_name and self.fd >= 0:
                with contextlib.suppress(OSError):  # not empty: a .kept entry stays, and says so
                    os.rmdir(self.stage_name, dir_fd=self.fd)
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _open_dir(
        self, parent: int, name: str, parts: tuple[str, ...], ids: dict[int, tuple[int, int]] | None = None
    ) -> int:
        fd = os.open(name, DIR_FLAGS, dir_fd=parent)
        st = os.fstat(fd)
        if st.st_dev != self.dev:
            os.close(fd)
            raise Unsafe(f"{'/'.join(parts)}: crosses into another filesystem")
        if ids is not None:
            ids[fd] = (st.st_dev, st.st_ino)
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
        ids: dict[int, tuple[int, int]] = {}
        fd = self._open_dir(parent, parts[-1], parts, ids)
        with self._lock:
            if parts in self._dirs:  # another thread got there first
                os.close(fd)
                return self._dirs[parts]
            self._ids.update(ids)
            self._dirs[parts] = fd
        return fd

    def dir_chain(self, rel: str) -> tuple[list[int], str, bool]:
        """The fd of every dir from the root down to the one holding ``rel`` (root first), the last
        component's name, and whether the caller must close the fds after the root (when the cache is full).

        With ``inside``, the caller can check afterwards that the holding dir is still where ``rel`` says."""
        parts = check_rel(rel)
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
                fds.append(self._open_dir(fds[-1], comp, dirs[: i + 1]))
        except BaseException:
            for fd in fds[1:]:
                os.close(fd)
            raise
        return fds, parts[-1], True

    def inside(self, fds: list[int], rel: str) -> bool:
        """Is each dir of ``fds`` (from ``dir_chain(rel)``) still the entry of that name in the one above,
        i.e. is the last one still reachable from the root by ``rel``'s path, no symlink followed?

        A dir fd keeps working after its dir was moved elsewhere (even out of the root): this is what
        tells that apart. A false answer is final; a true one holds at the instant of each lstat. A cached
        fd's identity was taken when it was opened (an open fd's inode never changes); others are fstat'd."""
        parts = rel.split("/")
        for i in range(1, len(fds)):
            try:
                st = os.stat(parts[i - 1], dir_fd=fds[i - 1], follow_symlinks=False)
            except OSError:
                return False
            want = self._ids.get(fds[i])  # only open cached fds are in it: no stale number
            if want is None:
                fst = os.fstat(fds[i])
                want = (fst.st_dev, fst.st_ino)
            if (st.st_dev, st.st_ino) != want:
                return False
        return True

    def parent(self, rel: str) -> tuple[int, str, bool]:
        """(fd of the dir holding ``rel``, the last component's name, whether the caller must close the fd)."""
        parts = check_rel(rel)
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
        parts = check_rel(rel)
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
