"""Session discovery and last-activity reading on real files."""

from __future__ import annotations

import json
import os
from pathlib import Path

from claude_janitor.cache.scan import scan_root
from claude_janitor.cache.transcript import read_tail
from tests.helpers.cachegen import DAY, make_session, record, set_times


def sessions_by_id(root: Path):
    res = scan_root(root)
    return {s.session_id: s for s in res.sessions}, res


def test_session_gathers_every_piece_keyed_by_id(root: Path, now: float):
    g = make_session(root, "/home/a/proj", now - 3 * DAY)
    got, res = sessions_by_id(root)
    s = got[g.session_id]
    stores = sorted(p.store for p in s.pieces)
    assert stores == sorted(["transcript", "session-dir", "file-history", "session-env", "tasks", "todos", "debug"])
    assert s.project == "-home-a-proj" and s.project_path == "/home/a/proj"
    assert s.bytes == sum(
        f.stat().st_size for p in g.paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file()
    )
    assert res.unknown == []


def test_last_activity_from_tail_timestamp_beats_older_mtime(root: Path, now: float):
    g = make_session(root, "/p", now - 10 * DAY, side=False)
    tr = g.paths[0]
    set_times(tr, now - 50 * DAY)  # mtime older than the records
    s = sessions_by_id(root)[0][g.session_id]
    assert abs(s.last_activity - (now - 10 * DAY)) < 1


def test_malformed_non_utf8_and_untimestamped_lines_are_tolerated(root: Path, now: float):
    proj = root / "projects" / "-p"
    proj.mkdir(parents=True)
    tr = proj / "11111111-1111-1111-1111-111111111111.jsonl"
    good = json.dumps(record("x", "/p", now - 2 * DAY, 0))
    tr.write_bytes(
        good.encode()
        + b"\n{not json\n\xff\xfe\x00garbage\n"
        + json.dumps({"type": "last-prompt"}).encode()
        + b"\n[1,2]\n"
    )
    set_times(tr, now - 40 * DAY)
    s = sessions_by_id(root)[0]["11111111-1111-1111-1111-111111111111"]
    assert s.unreadable is None
    assert abs(s.last_record_time - (now - 2 * DAY)) < 1


def test_tail_read_is_bounded_for_huge_transcripts(tmp_path: Path, now: float):
    big = tmp_path / "big.jsonl"
    line = json.dumps(record("x", "/p", now - DAY, 0, text="y" * 1000)).encode() + b"\n"
    with open(big, "wb") as f:
        f.write(line * 20_000)  # ~20 MB
    fd = os.open(big, os.O_RDONLY)
    try:
        info = read_tail(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)
    assert info.last_time is not None and abs(info.last_time - (now - DAY)) < 1
    assert info.bytes_read <= 64 * 1024


def test_tail_without_any_timestamp_falls_back_to_mtime_and_head_cwd(root: Path, now: float):
    proj = root / "projects" / "-p"
    proj.mkdir(parents=True)
    tr = proj / "22222222-2222-2222-2222-222222222222.jsonl"
    tr.write_text(json.dumps({"type": "summary", "cwd": "/the/cwd"}) + "\n" + "x" * 300_000 + "\n")
    set_times(tr, now - 7 * DAY)
    s = sessions_by_id(root)[0]["22222222-2222-2222-2222-222222222222"]
    assert s.last_record_time is None
    assert s.project_path == "/the/cwd"
    assert abs(s.last_activity - (now - 7 * DAY)) < 1


def test_memory_history_and_unknown_files(root: Path, now: float):
    make_session(root, "/p", now - DAY)
    mem = root / "projects" / "-p" / "memory"
    mem.mkdir()
    (mem / "MEMORY.md").write_text("x")
    (root / "history.jsonl").write_text("{}\n")
    (root / "projects" / "-p" / "notes.txt").write_text("mine")
    (root / "projects" / "-p" / "not-a-session-dir").mkdir()
    (root / "debug" / "random.log").write_text("?")
    got, res = sessions_by_id(root)
    paths = [p.rel for s in got.values() for p in s.pieces]
    assert not any(p.endswith("/memory") or p == "history.jsonl" for p in paths)
    assert any("notes.txt" in u for u in res.unknown)
    assert any("not-a-session-dir" in u for u in res.unknown)
    assert any("debug/random.log" in u for u in res.unknown)


def test_orphaned_side_files_form_their_own_session(root: Path, now: float):
    sid = "33333333-3333-3333-3333-333333333333"
    (root / "file-history" / sid).mkdir(parents=True)
    (root / "file-history" / sid / "f@v1").write_text("x")
    (root / "debug").mkdir()
    (root / "debug" / f"{sid}.txt").write_text("d")
    s = sessions_by_id(root)[0][sid]
    assert s.project == "" and s.transcript is None
    assert sorted(p.store for p in s.pieces) == ["debug", "file-history"]


def test_symlinks_are_not_followed_when_scanning(root: Path, tmp_path: Path, now: float):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jsonl").write_text("{}\n")
    g = make_session(root, "/p", now - DAY)
    os.symlink(outside / "secret.jsonl", root / "projects" / "-p" / "44444444-4444-4444-4444-444444444444.jsonl")
    os.symlink(outside, root / "projects" / "-linked")
    os.symlink(outside, root / "projects" / "-p" / g.session_id / "escape")
    got, res = sessions_by_id(root)
    assert "44444444-4444-4444-4444-444444444444" not in got
    assert any("-linked" in u and "symlink" in u for u in res.unknown)
    # the symlink's target is not counted in the session's size
    assert got[g.session_id].bytes < 10_000
