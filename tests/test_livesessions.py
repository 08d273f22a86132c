"""Claude Code's registry of running sessions (sessions/<pid>.json), read as Claude Code reads it, with real
processes; hostile records are skipped, never trusted, never a crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from claude_janitor.cache import livesessions

SID = "11111111-2222-3333-4444-555555555555"


@pytest.fixture
def child():
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield p
    p.kill()
    p.wait()


def put(root: Path, pid: int, **rec) -> Path:
    d = root / "sessions"
    d.mkdir(exist_ok=True)
    f = d / f"{pid}.json"
    f.write_text(json.dumps({"pid": pid, "sessionId": SID, "kind": "interactive", "status": "busy", **rec}))
    return f


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_live_stale_and_reused_pids(root, child):
    start = livesessions.proc_start(child.pid)
    assert start and start.isdigit()
    put(root, child.pid, procStart=start)
    got = livesessions.read(str(root)).live[SID]
    assert got.pid == child.pid and f"pid {child.pid} (interactive, busy)" in got.reason
    put(root, child.pid, procStart=str(int(start) + 1))  # the pid now belongs to another process
    assert livesessions.read(str(root)).live == {}
    put(root, child.pid)  # no start time recorded: a live pid is enough (the keeping side)
    assert SID in livesessions.read(str(root)).live
    child.kill()
    child.wait()
    put(root, child.pid, procStart=start)  # dead
    assert livesessions.read(str(root)).live == {}


def test_a_record_from_another_pid_namespace_counts_as_live(root):
    put(root, 2**22 + 7, pidDomain="linux:someothermachine:pid:[1]", procStart="5")
    got = livesessions.read(str(root)).live[SID]
    assert "another machine or pid namespace" in got.reason


def test_hostile_records_are_skipped(root, child, tmp_path):
    d = root / "sessions"
    d.mkdir()
    (d / "1.json").write_text("{not json")
    (d / "2.json").write_bytes(b"{" + b" " * (2 * livesessions.MAX_RECORD) + b"}")
    (d / "3.json").write_text(json.dumps([1, 2]))
    (d / "4.json").write_text(json.dumps({"pid": True, "sessionId": SID}))
    (d / f"{child.pid + 1}.json").write_text(json.dumps({"pid": child.pid, "sessionId": SID}))  # misnamed
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps({"pid": child.pid, "sessionId": SID}))
    (d / f"{child.pid}.json").symlink_to(target)  # not followed
    os.mkfifo(d / "5.json")  # never blocks
    assert livesessions.read(str(root)).live == {}


def test_a_recheck_reads_again_only_when_the_registry_changed(root, child):
    reg = livesessions.read(str(root))
    assert livesessions.still_live(reg, SID) is None
    put(root, child.pid, procStart=livesessions.proc_start(child.pid))
    assert livesessions.still_live(reg, SID) is not None  # a process started since: seen
    (root / "sessions" / f"{child.pid}.json").unlink()
    assert livesessions.still_live(reg, SID) is None  # and ended
