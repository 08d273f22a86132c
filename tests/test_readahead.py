"""The scan's readers (cache/readahead.py): forked processes that read transcripts and walk session folders
ahead of the scan. What a scan reports must not depend on them: not on their number, not on a file written
after a reader read it, not on a reader killed mid-scan. Real CLI runs paused inside the scan."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import struct
import termios
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers import NOW, run_cli, wait_for
from tests.helpers.cachegen import make_cache, record
from tests.helpers.races import Paused

DAY = 86400.0


def report(root: Path, env: dict[str, str], readers: int) -> dict:
    p = run_cli(
        ["report", "--format", "json", "--claude-dir", str(root), "--now", str(NOW)],
        dict(env, JANITOR_SCAN_READERS=str(readers)),
    )
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def children(pid: int) -> dict[int, str]:
    """pid → state letter of each process whose parent is ``pid`` (read from /proc)."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            out[int(d.name)] = fields[0]
    return out


def paused_report(root: Path, env: dict[str, str], folder: Path, readers: int = 3) -> Paused:
    """A report stopped before the scan's first project, its readers forked (and, given the time, done:
    a small cache's answers fit in their pipes)."""
    run = Paused(
        ["report", "--format", "json", "--claude-dir", str(root), "--now", str(NOW)],
        dict(env, JANITOR_SCAN_READERS=str(readers)),
        "scan-project@1",
        folder,
    )
    assert wait_for(lambda: len(children(run.proc.pid)) == readers, timeout=60), children(run.proc.pid)
    return run


def by_id(rep: dict) -> dict[str, dict]:
    return {s["session_id"]: s for s in rep["sessions"]}


def test_a_scan_with_readers_reports_what_a_scan_without_them_does(root: Path, jenv: dict[str, str]) -> None:
    make_cache(root, NOW, projects=5, per_project=30)
    serial = report(root, jenv, 0)
    assert len(serial["sessions"]) == 150
    for n in (1, 2, 3):
        assert report(root, jenv, n) == serial, n


def test_a_transcript_written_after_its_reader_read_it_is_read_again(
    root: Path, jenv: dict[str, str], tmp_path: Path
) -> None:
    """The reader's answer names the file it read (inode, size, times): the scan's own lstat sees the
    append, and the scan reads the transcript itself, so the report has the record written last."""
    gens = make_cache(root, NOW, projects=3, per_project=20, max_age_days=200)
    old = min(gens, key=lambda g: g.last)
    assert old.last < NOW - 100 * DAY
    run = paused_report(root, jenv, tmp_path / "pause")
    assert wait_for(lambda: set(children(run.proc.pid).values()) == {"Z"}, timeout=60)  # every answer sent
    transcript = root / "projects" / old.project / f"{old.session_id}.jsonl"
    with open(transcript, "a") as f:
        f.write(json.dumps(record(old.session_id, old.cwd, NOW - 3600, 99)) + "\n")
    os.utime(transcript, (old.last, old.last))  # only the record says it is new (a copy keeping mtimes, say)
    p = run.release()
    assert p.returncode == 0, p.stderr
    got = by_id(json.loads(p.stdout))[old.session_id]
    assert got["last_activity"] == datetime.fromtimestamp(NOW - 3600, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert got["decision"] == "keep", got


def test_a_file_added_to_a_folder_after_its_reader_walked_it_is_counted(
    root: Path, jenv: dict[str, str], tmp_path: Path
) -> None:
    """A folder's answer names its inode and times: a file created in it afterwards changes them, and the
    scan walks the folder itself (deeper changes are what the removal's own check of the folder catches)."""
    gens = make_cache(root, NOW, projects=3, per_project=20)
    g = gens[7]
    run = paused_report(root, jenv, tmp_path / "pause")
    assert wait_for(lambda: set(children(run.proc.pid).values()) == {"Z"}, timeout=60)
    before = report(root, jenv, 0)
    (root / "file-history" / g.session_id / "big@v2").write_bytes(b"x" * 100_000)
    p = run.release()
    assert p.returncode == 0, p.stderr
    assert by_id(json.loads(p.stdout))[g.session_id]["bytes"] == by_id(before)[g.session_id]["bytes"] + 100_000


def test_claude_codes_title_file_is_read_whether_a_reader_walked_its_folder_before_or_after_it_came(
    root: Path, jenv: dict[str, str], tmp_path: Path
) -> None:
    """A reader that walks a session folder says whether it holds custom-title.json; the scan opens the file
    only where one may be. Folders with one before the scan get its title with readers as without; a title
    file written into a folder after its reader walked it changes the folder's times, and is read too."""
    gens = make_cache(root, NOW, projects=3, per_project=20)
    folders = [g for g in gens if (root / "projects" / g.project / g.session_id).is_dir()]
    assert len(folders) >= 10
    for g in folders[:5]:
        (root / "projects" / g.project / g.session_id / "custom-title.json").write_text(
            json.dumps({"customTitle": f"renamed {g.session_id[:8]}"})
        )
    serial = report(root, jenv, 0)
    assert [by_id(serial)[g.session_id]["title"] for g in folders[:5]] == [
        f"renamed {g.session_id[:8]}" for g in folders[:5]
    ]
    assert report(root, jenv, 2) == serial
    late = folders[7]
    run = paused_report(root, jenv, tmp_path / "pause", readers=2)
    assert wait_for(lambda: set(children(run.proc.pid).values()) == {"Z"}, timeout=60)  # every folder walked
    (root / "projects" / late.project / late.session_id / "custom-title.json").write_text(
        json.dumps({"customTitle": "renamed late"})
    )
    p = run.release()
    assert p.returncode == 0, p.stderr
    assert by_id(json.loads(p.stdout))[late.session_id]["title"] == "renamed late"


def test_readers_killed_mid_scan_change_nothing_in_the_report(root: Path, jenv: dict[str, str], tmp_path: Path) -> None:
    make_cache(root, NOW, projects=4, per_project=25)
    serial = report(root, jenv, 0)
    run = paused_report(root, jenv, tmp_path / "pause")
    for pid in children(run.proc.pid):
        os.kill(pid, signal.SIGKILL)
    p = run.release()
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == serial
    assert children(run.proc.pid) == {}


def test_a_cache_too_small_to_be_worth_it_forks_no_reader(root: Path, jenv: dict[str, str], tmp_path: Path) -> None:
    make_cache(root, NOW, projects=2, per_project=5)
    env = {k: v for k, v in jenv.items() if k != "JANITOR_SCAN_READERS"}
    run = Paused(["report", "--claude-dir", str(root), "--now", str(NOW)], env, "scan-project@1", tmp_path / "pause")
    assert children(run.proc.pid) == {}
    assert run.release().returncode == 0


def test_a_readers_answer_carries_every_field_read_transcript_sets(tmp_path: Path) -> None:
    """FIELDS is the readers' copy of what read_transcript sets on a session: a field it starts setting
    that FIELDS lacks would be lost whenever a reader read the transcript. Every slot read_transcript
    changes, on a transcript that gives it a title, an entrypoint, a cwd, replies and a last record."""
    from claude_janitor.cache.readahead import FIELDS
    from claude_janitor.cache.transcript import read_transcript
    from claude_janitor.model import Session

    sid = "0b6c3a52-5f0e-4d5e-9d0e-6a1f2b3c4d5e"
    path = tmp_path / f"{sid}.jsonl"
    lines = [
        record(sid, "/home/u/app", NOW - DAY + i, i, kind, text, "cli")
        for i, (kind, text) in enumerate(
            [("user", "first prompt"), ("assistant", "ok"), ("user", "second prompt"), ("assistant", "done")]
        )
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    fresh = Session(session_id=sid, root=str(tmp_path), project="p")
    s = Session(session_id=sid, root=str(tmp_path), project="p")
    read_transcript(s, str(path), os.lstat(path))
    changed = {f for f in Session.__slots__ if getattr(s, f) != getattr(fresh, f)}
    assert {"last_record_time", "project_path", "entrypoint", "title_text"} <= changed, changed
    assert changed <= set(FIELDS), changed - set(FIELDS)


def test_a_reader_ahead_of_a_stopped_one_waits_in_its_pipe_not_in_the_scans_memory(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two readers; one is stopped (SIGSTOP) as the scan asks its first question, and let go once the other
    is done or blocked writing to its pipe. The scan waits for the stopped one's answers; what the other
    sends meanwhile must stay in its pipe once HOLD_MAX of its answers are held (it was all taken in: on
    10k sessions, with one reader slower than the other, 13,711 answers were held at once). The answers
    held of each reader, after every question the scan asks, stay within HOLD_MAX + CHUNK; and the scan
    reports what a scan without readers does."""
    from claude_janitor.cache import readahead, scan

    make_cache(root, NOW, projects=1, per_project=2000, side=False, extras=False)
    held: list[int] = []
    get = readahead.Ahead.get

    def let_go(ahead_pid: int, pipe: int, stopped: int) -> None:
        def waiting() -> bool:  # the reader is done (exited, not reaped yet) or blocked on its full pipe
            try:
                state = Path(f"/proc/{ahead_pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                blocked = Path(f"/proc/{ahead_pid}/wchan").read_text().endswith("pipe_write")
                queued = struct.unpack("i", fcntl.ioctl(pipe, termios.FIONREAD, b"\0" * 4))[0]
            except OSError:
                return True
            return state == "Z" or blocked or queued >= 60 << 10

        wait_for(waiting, timeout=60)
        os.kill(stopped, signal.SIGCONT)

    def counting_get(self: readahead.Ahead, *a: object) -> object:
        if not held:
            os.kill(self.pids[1], signal.SIGSTOP)
            args = (self.pids[0], next(iter(self.pipes)), self.pids[1])
            threading.Thread(target=let_go, args=args, daemon=True).start()
        got = get(self, *a)  # type: ignore[arg-type]
        held.append(max(self.holding.values()))
        return got

    monkeypatch.setattr(readahead.Ahead, "get", counting_get)
    monkeypatch.setenv(readahead.READERS_ENV, "2")
    with_readers = scan.scan_root(root)
    assert len(held) >= 2000  # every transcript was asked for (the readers were forked)
    assert max(held) <= readahead.HOLD_MAX + readahead.CHUNK, max(held)
    monkeypatch.setenv(readahead.READERS_ENV, "0")
    assert with_readers.sessions == scan.scan_root(root).sessions
