"""The one way the janitor replaces a file whole, and the one way it makes a dir entry durable.

``write_atomic``: write a temp file next to the target (same dir, so the rename cannot cross filesystems),
fsync it, rename it over the target, fsync the dir. After a crash at any instant the target holds either
the old content or the new one, never a mix or nothing, and once the call returns the new content survives
a power cut. A temp file left by a killed writer (``.<name>.<pid>.<random>.tmp``) is removed by the next
write of the same file once its pid is gone.

Used for the audit log's head and anchor, the daemon's state file, pins, rendered service files and
Claude Code's history.jsonl when it is pruned (``write_atomic_at``, in a dir held open, with a last check).
(Archives are published differently: never over an existing name; see archive/store.py.)
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path

from claude_janitor import testhooks
from claude_janitor.fs.procs import pid_alive

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW


def fsync_dir(path: str | Path | None = None, *, fd: int | None = None) -> None:
    """Make the entries of a dir (given by path or by an open fd) durable."""
    own = fd is None
    if own:
        fd = os.open(str(path), DIR_FLAGS)
    assert fd is not None
    try:
        os.fsync(fd)
    finally:
        if own:
            os.close(fd)


def mkdirs_private(path: Path) -> None:
    """Create ``path`` and any missing parents with mode 0700, each made durable in its parent."""
    missing = []
    p = path
    while not os.path.lexists(p):
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            continue
        os.chmod(d, 0o700)
        fsync_dir(d.parent)


def _clean_stale(parent: Path, name: str) -> None:
    """Temp files of this target left by writers that were killed (their pid is gone)."""
    prefix = f".{name}."
    try:
        entries = os.listdir(parent)
    except OSError:
        return
    for e in entries:
        if not (e.startswith(prefix) and e.endswith(".tmp")):
            continue
        pid = e[len(prefix) : -len(".tmp")].split(".")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            with contextlib.suppress(OSError):
                os.unlink(parent / e)


Data = bytes | str | Iterable[bytes | str]  # a whole, or its chunks (written as they come: never held whole)


def write_atomic(path: Path, data: Data, *, mode: int = 0o600, hook: str | None = None) -> None:
    """Replace ``path`` with ``data``: temp file → fsync → rename → fsync the dir (see the module doc).

    Missing parent dirs are created 0700. ``hook`` names testhooks points ``<hook>-tmp-synced`` (temp file
    durable, not renamed yet) and ``<hook>-renamed`` (renamed, dir not fsync'd yet) for the crash tests."""
    parent = path.parent
    if not parent.is_dir():
        mkdirs_private(parent)
    _clean_stale(parent, path.name)
    dfd = os.open(str(parent), DIR_FLAGS)
    try:
        write_atomic_at(dfd, path.name, data, mode=mode, hook=hook)
    finally:
        os.close(dfd)


_WRITE_SIZE = 1 << 20


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_atomic_at(
    dfd: int,
    name: str,
    data: Data,
    *,
    mode: int = 0o600,
    hook: str | None = None,
    tmp_name: str | None = None,
    owner: tuple[int, int] | None = None,
    before_rename: Callable[[], None] | None = None,
) -> None:
    """``write_atomic`` in the dir open as ``dfd`` (which the caller keeps).

    ``tmp_name``: the temp file's name (default ``.<name>.<pid>.<random>.tmp``); ``owner``: (uid, gid) to
    give it; ``before_rename``: called once the temp file is durable, just before the rename; whatever it
    raises aborts the write (the temp file is removed, the target left as it was)."""
    tmp = tmp_name or f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dfd)
    try:
        try:
            os.fchmod(fd, mode)
            if owner is not None:
                os.fchown(fd, *owner)
            if isinstance(data, bytes | str):
                _write_all(fd, data.encode() if isinstance(data, str) else data)
            else:  # chunks, gathered to ~1 MiB a write (a line each would be a write each)
                buf = bytearray()
                for chunk in data:
                    buf += chunk.encode() if isinstance(chunk, str) else chunk
                    if len(buf) >= _WRITE_SIZE:
                        _write_all(fd, buf)
                        buf.clear()
                _write_all(fd, buf)
            os.fsync(fd)
        finally:
            os.close(fd)
        if hook:
            testhooks.point(f"{hook}-tmp-synced")
        if before_rename is not None:
            before_rename()
        os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dfd)
        raise
    if hook:
        testhooks.point(f"{hook}-renamed")
    fsync_dir(fd=dfd)
