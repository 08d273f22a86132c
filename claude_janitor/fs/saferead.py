"""Reading an input file safely: the one way the janitor reads a settings, config, pins, state or archive file.

Every such file may be hostile or odd (a FIFO, /dev/zero behind a symlink, a directory, a 10 GB file, a
path a transcript chose). So each one is opened non-blocking (a FIFO or a device can never stall the
sweep, which holds sweep.lock), checked with ``fstat`` on the very fd that was opened (no check-then-open
race), must be a regular file, and is read up to a size cap (a file that grows past it while being read
is refused too). Anything else is an :class:`InputError` with one clear line naming the file.

Whether a symlink is followed is decided per file by the caller (``follow``):

* Claude Code's settings files and the janitor's own config are followed: people keep them in a dotfiles
  repo and link them into place, and Claude Code itself reads them through links (``readFileSync``).
  Following is safe here because only a regular file of bounded size is ever read, and its content is
  never echoed back (only a line/column of a parse error).
* Files the janitor writes itself in its private dirs (pins, daemon state) and archives are never
  followed (``O_NOFOLLOW``): a link there is not something the janitor made.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from claude_janitor.errors import ConfigError

SETTINGS_MAX = 4 << 20  # a Claude Code settings file: a few KiB in practice
CONFIG_MAX = 1 << 20  # the janitor's TOML config / managed policy
STATE_MAX = 16 << 20  # pins.json, daemon.json

_KIND = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFLNK: "a symlink",
}


class InputError(ConfigError):
    """An input file that cannot be used: not a regular file, too big, unreadable. Exit 2."""

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else str(path)


def kind_of(mode: int) -> str:
    return _KIND.get(stat.S_IFMT(mode), "not a regular file")


def open_input(
    path: str | os.PathLike[str], *, what: str, follow: bool, dir_fd: int | None = None
) -> tuple[int, os.stat_result]:
    """Open ``path`` read-only and non-blocking; (fd, fstat) of a regular file, else InputError.

    FileNotFoundError (and NotADirectoryError for a missing parent) pass through: callers decide whether a
    missing file is fine. The fd is left non-blocking (reads of a regular file never block anyway)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags, dir_fd=dir_fd)
    except (FileNotFoundError, NotADirectoryError):
        raise
    except OSError as e:
        if e.errno == errno.ELOOP and not follow:
            raise InputError(f"{what} {path} is a symlink; not followed", path) from None
        raise InputError(f"{what} {path}: cannot open: {e.strerror}", path) from None
    except ValueError as e:  # an embedded NUL byte (a path a transcript chose)
        raise InputError(f"{what} {path!r}: not a usable path: {e}", path) from None
    try:
        st = os.fstat(fd)
    except OSError as e:
        os.close(fd)
        raise InputError(f"{what} {path}: cannot stat: {e.strerror}", path) from None
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise InputError(f"{what} {path} is {kind_of(st.st_mode)}, not a regular file; not read", path)
    return fd, st


def read_input(
    path: str | os.PathLike[str],
    *,
    what: str,
    limit: int,
    follow: bool,
    missing_ok: bool = True,
    dir_fd: int | None = None,
) -> bytes | None:
    """The whole content of a regular input file of at most ``limit`` bytes; None if it does not exist
    (with ``missing_ok``). Everything else that is wrong is an InputError naming the file."""
    try:
        fd, st = open_input(path, what=what, follow=follow, dir_fd=dir_fd)
    except (FileNotFoundError, NotADirectoryError):
        if missing_ok:
            return None
        raise InputError(f"{what} {path} does not exist", path) from None
    try:
        if st.st_size > limit:
            raise InputError(
                f"{what} {path} is {st.st_size} bytes, more than the {limit} bytes such a file "
                "can sensibly be; not read",
                path,
            )
        chunks: list[bytes] = []
        got = 0
        while True:
            try:
                b = os.read(fd, min(1 << 16, limit + 1 - got))
            except BlockingIOError:  # not for a regular file; be safe anyway
                raise InputError(f"{what} {path}: would block; not read", path) from None
            except OSError as e:
                raise InputError(f"{what} {path}: cannot read: {e.strerror}", path) from None
            if not b:
                break
            chunks.append(b)
            got += len(b)
            if got > limit:
                raise InputError(f"{what} {path} grew past {limit} bytes while being read; not read", path)
        return b"".join(chunks)
    finally:
        os.close(fd)


def list_dir(path: Path, *, what: str) -> list[str] | None:
    """Names in a dir (sorted); None if it does not exist; InputError if it cannot be listed."""
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise InputError(f"{what} {path}: cannot list: {e.strerror}", path) from None
