"""inotify(7) through libc: no dependency, nothing imported but ctypes."""

from __future__ import annotations

import os
import struct

IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x2, 0x4, 0x8
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
IN_DELETE_SELF, IN_MOVE_SELF = 0x400, 0x800
IN_Q_OVERFLOW, IN_IGNORED = 0x4000, 0x8000
IN_ONLYDIR, IN_DONT_FOLLOW, IN_ISDIR = 0x01000000, 0x02000000, 0x40000000
IN_CLOEXEC, IN_NONBLOCK = 0o2000000, 0o4000
SELF = IN_DELETE_SELF | IN_MOVE_SELF
GONE = IN_DELETE | IN_MOVED_FROM
# A dir watched for something that is not there yet (projects/, a Claude dir, a config dir: the nearest
# dir that exists on the way to it) or for a file in it (the pins file, the config files).
EXTRA_MASK = IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | GONE | SELF | IN_ONLYDIR
PROJECTS_MASK = IN_CREATE | IN_MOVED_TO | GONE | SELF | IN_ONLYDIR | IN_DONT_FOLLOW
PROJECT_MASK = (
    IN_CREATE | IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_TO | GONE | SELF | IN_ONLYDIR | IN_DONT_FOLLOW
)
HEADER = struct.Struct("iIII")  # wd, mask, cookie, len


class Inotify:
    """One inotify instance through libc (no dependency, nothing imported but ctypes)."""

    def __init__(self) -> None:
        import ctypes

        self._libc = ctypes.CDLL(None, use_errno=True)
        fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        self.fd: int = fd

    def fileno(self) -> int:
        return self.fd

    def add(self, path: str, mask: int) -> int:
        import ctypes

        wd = self._libc.inotify_add_watch(self.fd, os.fsencode(path), ctypes.c_uint32(mask))
        if wd < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e), path)
        return int(wd)

    def rm(self, wd: int) -> None:
        self._libc.inotify_rm_watch(self.fd, wd)  # EINVAL if already gone: nothing to do

    def read(self) -> list[tuple[int, int, str]]:
        """Pending events as (wd, mask, name); [] if there are none."""
        try:
            buf = os.read(self.fd, 256 * 1024)
        except BlockingIOError:
            return []
        out = []
        off = 0
        while off + HEADER.size <= len(buf):
            wd, mask, _, n = HEADER.unpack_from(buf, off)
            off += HEADER.size
            name = buf[off : off + n].split(b"\0", 1)[0]
            off += n
            out.append((wd, mask, os.fsdecode(name)))
        return out

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
