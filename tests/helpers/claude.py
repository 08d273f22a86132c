"""Helpers for the tests against the real Claude Code CLI."""

from __future__ import annotations

import os
import time
from pathlib import Path


def age_tree(path: Path, t: float) -> None:
    """Give ``path`` and everything under it the mtime ``t`` (deepest first)."""
    if path.is_dir() and not path.is_symlink():
        for dirpath, dirnames, filenames in os.walk(path, topdown=False):
            for n in filenames + dirnames:
                os.utime(os.path.join(dirpath, n), (t, t), follow_symlinks=False)
    os.utime(path, (t, t), follow_symlinks=False)


def now() -> float:
    return time.time()
