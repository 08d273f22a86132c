"""Opt-in pruning of Claude Code's prompt history (issue 12 item 5): the lines of sessions the janitor removed
(and, optionally, lines older than a window) leave history.jsonl the way Claude Code's own prune does it —
under its lock folder history.jsonl.lock, re-checked, rewritten to a temp file and renamed, mode kept — and
archived lines come back with `restore`. A real second process appends lines the way Claude Code does
(mkdir lock, append, rmdir) meanwhile: no line is ever lost.

Real files, real processes, the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import run_cli, run_json, wait_for, write_config
from tests.helpers.cachegen import DAY, make_session

# Appends history lines the way Claude Code does: take the proper-lockfile folder (taking over one stale
# for more than 10 s), append one line, remove the folder; writes its progress to a file after each line.
# It appends N lines, or (N = 0) until the file named by its 4th argument exists.
APPENDER = r"""
import itertools, json, os, sys, time
root, n, progress = sys.argv[1], int(sys.argv[2]), sys.argv[3]
stop = sys.argv[4] if len(sys.argv) > 4 else None
hist, lock = os.path.join(root, "history.jsonl"), os.path.join(root, "history.jsonl.lock")
for i in (range(n) if n else itertools.count()):
    if stop and os.path.exists(stop):
        break
    while True:
        try:
            os.mkdir(lock)
            break
        except FileExistsError:
            try:
                if time.time() - os.stat(lock).st_mtime > 10:
                    os.rmdir(lock)
                    continue
            except FileNotFoundError:
                continue
            time.sleep(0.002)
    line = {"display": f"live {i}", "pastedContents": {}, "timestamp": int(time.time() * 1000) * 1000 + i,
            "project": "/w/live", "sessionId": "11111111-1111-4111-8111-111111111111"}
    fd = os.open(hist, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(fd, (json.dumps(line) + "\n").encode())
    os.close(fd)
    os.rmdir(lock)
    with open(progress + ".tmp", "w") as f:
        f.write(str(i + 1))
    os.replace(progress + ".tmp", progress)
    time.sleep(0.001)
"""

# Holds the lock folder (refreshing it like proper-lockfile) until told to go, then appends one line and
# releases it.
HOLDER = r"""
import json, os, sys, time
root, go = sys.argv[1], sys.argv[2]
lock = os.path.join(root, "history.jsonl.lock")
os.mkdir(lock)
open(go + ".held", "w").close()
while not os.path.exists(go):
    os.utime(lock)
    time.sleep(0.2)
fd = os.open(os.path.join(root, "history.jsonl"), os.O_WRONLY | os.O_APPEND)
os.write(fd, (json.dumps({"display": "held", "timestamp": 9e15, "sessionId": "holder"}) + "\n").encode())
os.close(fd)
os.rmdir(lock)
"""


def line(sid: str, t: float, text: str) -> str:
    return (
        json.dumps(
            {"display": text, "pastedContents": {}, "timestamp": int(t * 1000), "project": "/w/p", "sessionId": sid}
        )
        + "\n"
    )


def history(root: Path) -> list[str]:
    return (root / "history.jsonl").read_text().splitlines(keepends=True)


@pytest.fixture
def two(root: Path, now: float):
    """An expired session and a fresh one, each with prompt-history lines, interleaved in time."""
    old = make_session(root, "/w/p", now - 40 * DAY)
    new = make_session(root, "/w/p", now - 1 * DAY)
    lines = [
        line(old.session_id, now - 45 * DAY, "old 1"),
        line(new.session_id, now - 44 * DAY, "new 1"),
        line(old.session_id, now - 41 * DAY, "old 2"),
        "not json\n",
        line(new.session_id, now - DAY, "new 2"),
    ]
    (root / "history.jsonl").write_text("".join(lines))
    os.chmod(root / "history.jsonl", 0o640)
    return old, new, lines


def sweep_args(root: Path, now: float, *more: str) -> list[str]:
    return ["sweep", "--json", "--claude-dir", str(root), "--now", str(now), *more]


def test_removed_sessions_lines_go_while_claude_code_appends(root, jenv, now, two, tmp_path):
    old, new, lines = two
    write_config(jenv, "[history]\nremoved_sessions = true\n")
    hold = tmp_path / "hold"
    hold.mkdir()
    progress = tmp_path / "progress"
    stop = tmp_path / "stop"
    app = subprocess.Popen([sys.executable, "-c", APPENDER, str(root), "0", str(progress), str(stop)])

    def count() -> int:
        try:
            return int(progress.read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    env = {**jenv, "JANITOR_TEST_PAUSE_AT": f"history-read:{hold}"}
    sw = subprocess.Popen(
        [sys.executable, "-m", "claude_janitor", *sweep_args(root, now)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_for(lambda: (hold / "history-read.reached").exists(), timeout=60)
        # Claude Code appends between the janitor's read and its taking the lock: those lines are kept.
        seen = count()
        assert wait_for(lambda: count() >= seen + 5, timeout=60)
        (hold / "history-read.go").touch()
        out, err = sw.communicate(timeout=120)  # the appender goes on meanwhile, and after
        done = count()
        assert wait_for(lambda: count() >= done + 5, timeout=60)
        stop.touch()
        assert app.wait(timeout=120) == 0
    finally:
        sw.kill()
        app.kill()
    assert sw.returncode == 0, err
    n = count()
    got = history(root)
    assert not any(old.session_id in x for x in got)
    want = [x for x in lines if old.session_id not in x]
    assert got[: len(want)] == want  # the kept lines, unchanged and in order
    live = [json.loads(x)["display"] for x in got[len(want) :]]
    assert live == [f"live {i}" for i in range(n)]  # every appended line, once, in order
    assert oct((root / "history.jsonl").stat().st_mode & 0o777) == oct(0o640)
    assert not (root / "history.jsonl.lock").exists()
    assert not list(root.glob("history.jsonl.tmp.*"))
    (h,) = json.loads(out)["history"]
    assert (h["result"], h["dropped_sessions"], h["dropped"]) == ("ok", 2, 2)


def test_the_janitor_holds_the_lock_and_claude_code_waits(root, jenv, now, two, tmp_path):
    old, _, _ = two
    write_config(jenv, "[history]\nremoved_sessions = true\n")
    hold = tmp_path / "hold"
    hold.mkdir()
    env = {**jenv, "JANITOR_TEST_PAUSE_AT": f"history-locked:{hold}"}
    sw = subprocess.Popen(
        [sys.executable, "-m", "claude_janitor", *sweep_args(root, now)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    progress = tmp_path / "progress"
    app = None
    try:
        assert wait_for(lambda: (hold / "history-locked.reached").exists(), timeout=60)
        assert (root / "history.jsonl.lock").is_dir()
        app = subprocess.Popen([sys.executable, "-c", APPENDER, str(root), "20", str(progress)])
        assert not wait_for(progress.exists, timeout=1.5)  # Claude Code waits for the janitor's lock
        (hold / "history-locked.go").touch()
        out, err = sw.communicate(timeout=120)
        assert app.wait(timeout=120) == 0
    finally:
        sw.kill()
        if app:
            app.kill()
    assert sw.returncode == 0, err
    got = history(root)
    assert not any(old.session_id in x for x in got)
    assert [json.loads(x)["display"] for x in got if "live" in x] == [f"live {i}" for i in range(20)]


def test_a_live_lock_is_waited_for_and_a_stale_one_taken_over(root, jenv, now, two, tmp_path):
    old, _, _ = two
    write_config(jenv, "[history]\nremoved_sessions = true\n")
    go = tmp_path / "go"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(root), str(go)])
    try:
        assert wait_for(lambda: Path(str(go) + ".held").exists(), timeout=60)
        sw = subprocess.Popen(
            [sys.executable, "-m", "claude_janitor", *sweep_args(root, now)],
            env=jenv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert not wait_for(lambda: sw.poll() is not None, timeout=2.0)  # waiting for Claude Code's lock
        assert any(old.session_id in x for x in history(root))
        go.touch()  # Claude Code appends its line and releases the lock
        out, err = sw.communicate(timeout=120)
        assert holder.wait(timeout=60) == 0
    finally:
        holder.kill()
    assert sw.returncode == 0, err
    got = history(root)
    assert not any(old.session_id in x for x in got) and '"holder"' in got[-1]

    # A lock folder left behind by a process that died (not refreshed for more than 10 s) is taken over.
    other = make_session(root, "/w/q", now - 50 * DAY)
    with open(root / "history.jsonl", "a") as f:
        f.write(line(other.session_id, now - 50 * DAY, "other"))
    (root / "history.jsonl.lock").mkdir()
    t = time.time() - 11
    os.utime(root / "history.jsonl.lock", (t, t))
    p, doc = run_json(sweep_args(root, now), jenv)
    assert p.returncode == 0, p.stderr
    assert not any(other.session_id in x for x in history(root))
    assert not (root / "history.jsonl.lock").exists()


def test_a_lock_held_too_long_keeps_the_file_and_says_why(root, jenv, now, two, tmp_path):
    old, _, lines = two
    write_config(jenv, "[history]\nremoved_sessions = true\n")
    go = tmp_path / "go"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(root), str(go)])
    try:
        assert wait_for(lambda: Path(str(go) + ".held").exists(), timeout=60)
        p, doc = run_json(sweep_args(root, now), jenv)
    finally:
        go.touch()
        holder.wait(timeout=60)
    assert p.returncode == 0, p.stderr
    (h,) = doc["history"]
    assert h["result"].startswith("kept: history.jsonl.lock is held"), h
    assert history(root)[: len(lines)] == lines  # nothing changed (the holder appended after)
    recs = [
        json.loads(x)
        for x in (Path(jenv["XDG_STATE_HOME"]) / "claude-janitor" / "log" / "audit.jsonl").read_text().splitlines()
    ]
    res = [r for r in recs if r["action"] == "prune-history" and r["phase"] == "result"]
    assert res and res[0]["result"] == "kept" and "new 1" not in json.dumps(recs)


def test_retention_drops_old_lines_keeps_malformed_and_dry_run_changes_nothing(root, jenv, now, two):
    _, new, lines = two
    write_config(jenv, '[history]\nretention = "30d"\n')
    before = (root / "history.jsonl").read_bytes()
    p, doc = run_json(sweep_args(root, now, "--dry-run"), jenv)
    assert p.returncode == 0 and (root / "history.jsonl").read_bytes() == before
    assert doc["history"][0]["result"] == "dry-run" and doc["history"][0]["dropped_age"] == 3
    p = run_cli(["sweep", "--claude-dir", str(root), "--now", str(now), "--older-than", "400d"], jenv)
    assert p.returncode == 0, p.stderr
    assert "history" in p.stdout and "dropped 3 of 5 lines" in p.stdout
    assert history(root) == ["not json\n", lines[-1]]  # the old session was not removed: by age only


def test_history_is_off_unless_asked(root, jenv, now, two):
    old, _, lines = two
    p = run_cli(["sweep", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert p.returncode == 0 and not old.paths[0].exists()
    assert history(root) == lines
    write_config(jenv, "[history]\nremoved_session = true\n")
    p = run_cli(["sweep", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert p.returncode == 2 and "did you mean 'removed_sessions'" in p.stderr


def test_archived_lines_go_into_the_archive_and_come_back_with_restore(root, jenv, now, two):
    old, new, lines = two
    write_config(jenv, 'action = "archive"\n[history]\nremoved_sessions = true\n')
    p, doc = run_json(sweep_args(root, now), jenv)
    assert p.returncode == 0, p.stderr
    assert not old.paths[0].exists()
    assert not any(old.session_id in x for x in history(root))
    (s,) = [x for x in doc["sessions"] if x["session_id"] == old.session_id]
    from claude_janitor.archive.reader import read_history, verify

    assert [x.decode() for x in read_history(Path(s["archive"]))] == [lines[0], lines[2]]
    verify(Path(s["archive"]))  # the extra member is in the manifest
    # Claude Code goes on appending meanwhile.
    with open(root / "history.jsonl", "a") as f:
        f.write(line(new.session_id, now, "new 3"))
    p = run_cli(["restore", old.session_id, "--claude-dir", str(root)], jenv)
    assert p.returncode == 0, p.stderr
    assert "prompt history: 2 lines put back" in p.stdout
    # Back in time order (a line without a time stays where it was; the next timed line bounds them).
    want = [lines[0], lines[1], lines[3], lines[2], lines[4], line(new.session_id, now, "new 3")]
    assert history(root) == want
    assert oct((root / "history.jsonl").stat().st_mode & 0o777) == oct(0o640)
    p = run_cli(["restore", old.session_id, "--claude-dir", str(root)], jenv)  # again: nothing doubled
    assert p.returncode == 0 and history(root) == want


@pytest.mark.parametrize("at", ["history-read", "history-locked", "history-written"])
def test_kill_9_while_pruning_loses_no_line(root, jenv, now, two, at):
    old, _, lines = two
    write_config(jenv, "[history]\nremoved_sessions = true\n")
    before = (root / "history.jsonl").read_bytes()
    p = run_cli(sweep_args(root, now), {**jenv, "JANITOR_TEST_KILL_AT": at})
    assert p.returncode == -9
    assert (root / "history.jsonl").read_bytes() == before  # the original is only ever replaced whole
    assert oct((root / "history.jsonl").stat().st_mode & 0o777) == oct(0o640)
    # What is left (a lock folder, a temp file) is what Claude Code itself leaves after a crash: the lock is
    # stale after 10 s, the temp file goes with the tmp-files store.
    assert len(list(root.glob("history.jsonl.tmp.*"))) == (at == "history-written")
    assert (root / "history.jsonl.lock").exists() == (at != "history-read")


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_a_hostile_history_file_is_left_alone(root, jenv, now, two, tmp_path, kind):
    old, _, lines = two
    write_config(jenv, "[history]\nremoved_sessions = true\n")
    (root / "history.jsonl").unlink()
    target = tmp_path / "elsewhere.jsonl"
    target.write_text("".join(lines))
    if kind == "symlink":
        (root / "history.jsonl").symlink_to(target)
    else:
        os.mkfifo(root / "history.jsonl")
    p, doc = run_json(sweep_args(root, now), jenv)
    assert p.returncode == 0, p.stderr
    assert not old.paths[0].exists()  # the session went; its lines could not be pruned, and that is said
    assert target.read_text() == "".join(lines)
    (h,) = doc["history"]
    assert h["result"].startswith("kept:"), h
