"""The floor under a dry run, in Python: what any scan of this cache has to do, with no logic at all.

Walks the Claude dir as the scan does (a listing and an lstat of every entry, never following a symlink),
and reads each transcript the way the scan must to say how old it is and what it is (open, fstat, the last
16 KiB and the first 8 KiB, close; the newest line parsed as JSON). Nothing is decided, nothing kept.

    python benchmarks/floor.py CLAUDE_DIR [--reps 3]

prints, for the same tree in the same minute, the median wall time of `find -printf '%p %s %T@\\n'`, of
this floor, and of `janitor sweep --dry-run` (as benchmarks/run.py times it), and the ratios: how far the
janitor is from what Python itself needs, and that floor from find (issue 14's dry-run target is 2x find).
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import statistics
import subprocess
import sys
import time

TAIL, HEAD = 16 * 1024, 8 * 1024


def floor(root: str) -> int:
    """The walk and the transcript reads; returns the number of entries seen."""
    n = 0
    todo = [root]
    while todo:
        d = todo.pop()
        try:
            it = os.scandir(d)
        except OSError:
            continue
        with it:
            for e in it:
                n += 1
                st = e.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    todo.append(e.path)
                elif e.name.endswith(".jsonl") and os.path.basename(os.path.dirname(d)) == "projects":
                    fd = os.open(e.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
                    try:
                        size = os.fstat(fd).st_size
                        tail = os.pread(fd, min(TAIL, size), max(0, size - TAIL))
                        os.pread(fd, min(HEAD, size), 0)
                    finally:
                        os.close(fd)
                    last = tail.rstrip(b"\n").rpartition(b"\n")[2]
                    try:
                        json.loads(last)
                    except ValueError:
                        pass
    return n


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    t = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("claude_dir")
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    root = os.path.abspath(a.claude_dir)
    here = os.path.dirname(os.path.abspath(__file__))
    runs: dict[str, list[float]] = {"find": [], "floor": [], "janitor": []}
    janitor = [sys.executable, "-m", "claude_janitor", "sweep", "--dry-run", "--older-than", "31d", "--force"]
    for _ in range(a.reps):
        runs["find"].append(timed(["find", root, "-printf", "%p %s %T@\\n"]))
        runs["floor"].append(timed([sys.executable, os.path.join(here, "floor.py"), "--walk-only", root]))
        runs["janitor"].append(timed([*janitor, "--claude-dir", root]))
    med = {k: statistics.median(v) for k, v in runs.items()}
    for k, v in runs.items():
        print(f"{k:8} {med[k]:.2f} s  (runs: {', '.join(f'{x:.2f}' for x in v)})")
    print(f"floor / find   {med['floor'] / med['find']:.2f}x")
    print(f"janitor / find {med['janitor'] / med['find']:.2f}x")
    print(f"janitor / floor {med['janitor'] / med['floor']:.2f}x")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--walk-only":
        floor(sys.argv[2])
    else:
        main()
