"""Mount points below a dir, from /proc/self/mountinfo (Linux).

A mount on another filesystem shows in every lstat (its st_dev); a bind mount of a dir of the *same*
filesystem does not: its entries have the root's st_dev, and a walk, a rename of a folder above it and a
delete would all go through it into the dir it shows, which may be anywhere. Only the mount table tells.
Read once per open root (safefs.Root): a mount made by root after that is not seen.
"""

from __future__ import annotations

import os
import re

MOUNTINFO = "/proc/self/mountinfo"
MOUNTINFO_MAX = 16 << 20  # bytes read at most (a machine with tens of thousands of mounts)
_ESCAPE = re.compile(rb"\\([0-7]{3})")  # mountinfo writes space, tab, newline and backslash as \ooo


def parse_mount_points(text: bytes) -> list[str]:
    """The mount points (field 5) of mountinfo ``text``."""
    out = []
    for line in text.split(b"\n"):
        fields = line.split(b" ")
        if len(fields) >= 5:
            out.append(os.fsdecode(_ESCAPE.sub(lambda m: bytes([int(m.group(1), 8) & 0xFF]), fields[4])))
    return out


def mounts_below(path: str) -> tuple[str, ...]:
    """The mount points strictly below ``path`` (its real path), relative to it; () where there is no
    /proc (macOS: the st_dev check is all there is)."""
    try:
        with open(MOUNTINFO, "rb") as f:
            text = f.read(MOUNTINFO_MAX)
    except OSError:
        return ()
    top = os.path.realpath(path).rstrip("/") + "/"
    return tuple(mp[len(top) :] for mp in parse_mount_points(text) if mp.startswith(top) and len(mp) > len(top))
