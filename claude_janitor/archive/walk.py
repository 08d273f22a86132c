"""Walking a session's pieces: dirfd-relative, no symlinks followed, no mounts crossed."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from claude_janitor.fs.safefs import Root
from claude_janitor.fs.tree import DIR_FLAGS, Changed, Unsafe
from claude_janitor.model import Decision


@dataclass(frozen=True, slots=True)
class Entry:
    rel: str
    st: os.stat_result
    dir_fd: int  # the dir holding it (valid only while the walk is suspended at this entry)
    name: str

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISLNK, "a symlink"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
    ):
        if test(mode):
            return name
    return "not a regular file or directory"


def _check_entry(rel: str, st: os.stat_result, dev: int) -> None:
    if stat.S_ISREG(st.st_mode):
        return
    if not stat.S_ISDIR(st.st_mode):
        raise Unsafe(
            f"{rel} is {_kind(st.st_mode)}; only sessions made of plain files and directories are archived (kept)"
        )
    if st.st_dev != dev:
        raise Unsafe(f"{rel} is on another filesystem; not entered (kept)")


def walk(root: Root, rel: str, *, ino: int | None = None) -> Iterator[Entry]:
    """Every dir and file at and under ``rel`` (dirs before their contents, names sorted).

    Iterative: one fd per level of depth. With ``ino``, the top entry must be that inode (else Changed).
    Anything that is not a regular file or dir raises Unsafe; something vanishing raises Changed."""
    pfd, name = root.open_parent(rel)
    stack: list[tuple[int, str, list[str]]] = []
    try:
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        if ino is not None and st.st_ino != ino:
            raise Changed(f"{rel} changed since the scan")
        _check_entry(rel, st, root.dev)
        if not stat.S_ISDIR(st.st_mode):
            yield Entry(rel, st, pfd, name)
            return
        fd = os.open(name, DIR_FLAGS, dir_fd=pfd)
        stack.append((fd, rel, []))
        stack[-1][2].extend(sorted(os.listdir(fd), reverse=True))
        if os.fstat(fd).st_ino != st.st_ino:
            raise Changed(f"{rel} changed while being read")
        yield Entry(rel, st, pfd, name)
        while stack:
            dfd, drel, names = stack[-1]
            if not names:
                os.close(dfd)
                stack.pop()
                continue
            n = names.pop()
            crel = f"{drel}/{n}"
            try:
                cst = os.stat(n, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                raise Changed(f"{crel} vanished while being read") from None
            _check_entry(crel, cst, root.dev)
            if stat.S_ISDIR(cst.st_mode):
                cfd = os.open(n, DIR_FLAGS, dir_fd=dfd)
                stack.append((cfd, crel, []))
                stack[-1][2].extend(sorted(os.listdir(cfd), reverse=True))
                if os.fstat(cfd).st_ino != cst.st_ino:
                    raise Changed(f"{crel} changed while being read")
            yield Entry(crel, cst, dfd, n)
    except FileNotFoundError as e:
        raise Changed(f"{rel}: {e.strerror} while being read") from None
    finally:
        for fd, _, _ in stack:
            os.close(fd)
        os.close(pfd)


Identity = tuple[str, int, int, int]  # kind, ino, size, mtime_ns


def ident(st: os.stat_result) -> Identity:
    return ("dir" if stat.S_ISDIR(st.st_mode) else "file", st.st_ino, st.st_size, st.st_mtime_ns)


def snapshot(root: Root, d: Decision) -> dict[str, Identity]:
    """What every entry of the session is right now (no contents read)."""
    out: dict[str, Identity] = {}
    for p in d.session.pieces:
        for e in walk(root, p.rel, ino=p.ino):
            out[e.rel] = ident(e.st)
    return out
