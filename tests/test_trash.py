"""The trash and undo (issue 15 item 4): delete moves a session, whole, into the janitor's trash by renames
(staging's transaction, committed entry moved instead of purged); restore / undo put it back; a later sweep
purges it. Real files, the real CLI in subprocesses."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from claude_janitor.audit.records import iter_records
from claude_janitor.config.paths import janitor_dirs
from tests.helpers import run_cli, write_config
from tests.helpers.cachegen import DAY, make_session


def args(root: Path, now: float, *more: str) -> list[str]:
    return [*more, "--claude-dir", str(root), "--now", str(now)]


def tree(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """rel → (inode, content) of everything under root but the janitor's staging dir."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".janitor-removing"]
        for n in filenames + dirnames:
            p = Path(dirpath) / n
            out[str(p.relative_to(root))] = (p.lstat().st_ino, p.read_bytes() if p.is_file() else None)
    return out


def trash_dir() -> Path:
    return janitor_dirs().data / "trash"


def records(action: str) -> list[dict]:
    return [r for r in iter_records(janitor_dirs().audit_log) if r.get("action") == action]


def test_delete_moves_sessions_into_the_trash_by_rename_and_undo_puts_them_back(root, jenv, now):
    write_config(jenv, 'trash = "7d"\n')
    old = [
        make_session(root, "/home/dev/app", now - 40 * DAY, entrypoint="sdk-cli", prompts=[f"run {i}"])
        for i in range(3)
    ]
    new = make_session(root, "/home/dev/app", now - 1 * DAY)
    before = tree(root)
    t = json.loads(run_cli(args(root, now, "report", "--format", "json"), jenv).stdout)["totals"]
    assert t["bytes_reclaimable"] == 0 and t["bytes_to_trash"] == sum(
        sum(f.stat().st_size for f in [p, *p.rglob("*")] if f.is_file()) for g in old for p in g.paths
    )
    p = run_cli(args(root, now, "sweep"), jenv)
    assert p.returncode == 0, p.stderr
    assert "go to the trash: not freed until purged after 7d" in p.stdout
    assert not any(path.exists() for g in old for path in g.paths) and all(path.exists() for path in new.paths)
    entries = sorted(trash_dir().iterdir())
    assert len(entries) == 3
    # a rename, not a copy: the same inodes, now in the trash
    moved_inodes = {ino for _, (ino, _) in tree(trash_dir()).items()}
    for g in old:
        assert before[str(g.paths[0].relative_to(root))][0] in moved_inodes
    done = [r for r in records("delete") if r["phase"] == "result"]
    assert sorted(Path(r["trash"]).parent for r in done) == [trash_dir()] * 3
    meta = json.loads((entries[0] / "trash.json").read_text())
    assert "run" not in json.dumps(meta)  # no transcript content beside it

    # reports: trash is not freed space; du and show name it
    du = run_cli(args(root, now, "du"), jenv).stdout
    assert "trash: 3 sessions" in du and str(trash_dir()) in du
    du_json = json.loads(run_cli(args(root, now, "du", "--format", "json"), jenv).stdout)
    assert du_json["trash"]["sessions"] == 3 and du_json["trash"]["bytes"] > 0
    p = run_cli(args(root, now, "show", old[0].session_id), jenv)
    assert p.returncode == 0 and "is not in the cache" in p.stdout and "in the trash: " in p.stdout

    # undo: everything the sweep removed comes back, contents and names as they were, with fresh times
    p = run_cli(["undo", "--claude-dir", str(root)], jenv)
    assert p.returncode == 0, p.stderr
    assert p.stdout.count(": restored: from the trash") == 3
    after = tree(root)
    assert {k: v[1] for k, v in after.items()} == {k: v[1] for k, v in before.items()}
    assert os.path.getmtime(old[0].paths[0]) > now  # the restore time (Claude Code's cleanup goes by it)
    assert list(trash_dir().iterdir()) == []
    assert [r["result"] for r in records("restore-trash") if r["phase"] == "result"] == ["ok"] * 3
    # once more: nothing left to put back, nothing overwritten
    p = run_cli(["undo", "--claude-dir", str(root)], jenv)
    assert p.returncode == 0 and p.stdout.count("no longer in the trash") == 3
    assert tree(root) == after


def test_restore_from_the_trash_never_overwrites(root, jenv, now):
    write_config(jenv, 'trash = "7d"\n')
    g = make_session(root, "/home/dev/app", now - 40 * DAY)
    assert run_cli(args(root, now, "sweep"), jenv).returncode == 0
    tr = g.paths[0]
    tr.write_text("a new transcript with the same name\n")  # something is in the way
    p = run_cli(["restore", g.session_id, "--claude-dir", str(root)], jenv)
    assert p.returncode == 1, p.stderr
    assert "something is in the way; not overwritten" in p.stdout
    assert tr.read_text() == "a new transcript with the same name\n"
    assert (root / "file-history" / g.session_id).is_dir()  # the other pieces came back
    (entry,) = trash_dir().iterdir()
    assert [n for n in os.listdir(entry) if n.endswith(".jsonl")]  # the transcript stays in the trash
    tr.unlink()
    p = run_cli(["restore", g.session_id, "--claude-dir", str(root)], jenv)
    assert p.returncode == 0, p.stderr
    assert tr.read_text().startswith("{") and not entry.exists()


def test_a_later_sweep_purges_old_trash_and_audits_it(root, jenv, now):
    write_config(jenv, 'trash = "7d"\n')
    g = make_session(root, "/home/dev/app", now - 40 * DAY)
    assert run_cli(args(root, now, "sweep"), jenv).returncode == 0
    (entry,) = trash_dir().iterdir()
    assert run_cli(args(root, now + 6 * DAY, "sweep"), jenv).returncode == 0
    assert entry.exists()  # within the period
    p = run_cli(args(root, now + 8 * DAY, "sweep", "--dry-run"), jenv)
    assert entry.exists()
    assert run_cli(args(root, now + 8 * DAY, "sweep"), jenv).returncode == 0
    assert not entry.exists()
    (rec,) = [r for r in records("purge-trash") if r["phase"] == "result"]
    assert rec["session_id"] == g.session_id and rec["result"] == "ok"
    p = run_cli(["restore", g.session_id, "--claude-dir", str(root)], jenv)
    assert p.returncode == 1 and "no archive" in p.stderr.lower()  # purged: gone for good


def test_many_deletions_go_to_the_trash_too(root, jenv, now):
    """Past MIN_PROCESSES deletions a sweep forks removal workers, which only delete: with the trash on,
    sessions must still go to the trash."""
    write_config(jenv, 'trash = "7d"\n')
    gs = [make_session(root, f"/home/dev/p{i % 5}", now - 40 * DAY, side=False) for i in range(80)]
    make_session(root, "/home/dev/keep", now - DAY, side=False)
    p = run_cli(args(root, now, "sweep"), jenv)
    assert p.returncode == 0, p.stderr
    assert len(list(trash_dir().iterdir())) == 80
    assert not any(g.paths[0].exists() for g in gs)


def test_trash_on_another_filesystem_falls_back_to_archive(root, jenv, now, tmp_path):
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on a filesystem of its own")
    data = Path(os.environ["XDG_DATA_HOME"])
    other = shm / f"janitor-trash-test-{os.getpid()}-{tmp_path.name}"
    other.mkdir()
    try:
        jenv = dict(jenv, XDG_DATA_HOME=str(other))
        write_config(jenv, f'trash = "7d"\narchive_dir = "{data}/archives"\n')
        g = make_session(root, "/home/dev/app", now - 40 * DAY)
        p = run_cli(args(root, now, "sweep", "--json"), jenv)
        assert p.returncode == 0, p.stderr
        (s,) = json.loads(p.stdout)["sessions"]
        assert s["result"] == "ok" and s["archive"].endswith(".tar.zst") and "trash" not in s
        assert "is on another filesystem than" in s["error"] and "archived instead" in s["error"]
        assert not g.paths[0].exists() and Path(s["archive"]).exists()
        p = run_cli(
            [
                "undo",
                "--claude-dir",
                str(root),
                "--config",
                str(Path(jenv["XDG_CONFIG_HOME"]) / "claude-janitor" / "config.toml"),
            ],
            jenv,
        )
        assert p.returncode == 0, p.stdout + p.stderr
        assert g.paths[0].exists()
    finally:
        shutil.rmtree(other, ignore_errors=True)


def test_bad_trash_setting_is_refused(root, jenv, now):
    g = make_session(root, "/home/dev/app", now - 40 * DAY)
    write_config(jenv, 'trash = "a week"\n')
    p = run_cli(args(root, now, "sweep"), jenv)
    assert p.returncode == 2 and "trash" in p.stderr and g.paths[0].exists()
    p = run_cli(["undo", "--claude-dir", str(root)], jenv)
    assert p.returncode == 2 and "nothing to undo" in p.stderr


def test_the_record_of_a_sweep_of_90k_sessions_is_written_whole_and_read_back_for_undo(jenv):
    """A sweep's record for undo (trash.record_last_sweep) is written a session at a time, and read back
    whatever its size: at ~200 B a session, 90k removed sessions are past the 16 MB every other state
    file is bounded by, and undo refused such a record."""
    from claude_janitor.model import Action, Decision, Outcome, Result, Session
    from claude_janitor.removal import trash

    dirs = janitor_dirs()
    sids = [f"{n:08x}-1111-2222-3333-444455556666" for n in range(90_000)]
    project = ("/home/dev/.claude", "-home-dev-src-some-project", "/home/dev/src/x")
    outcomes = [
        Outcome(
            Decision(Session(sid, *project), Action.DELETE, ""),
            Result.OK if n % 10 else Result.FAILED,
            trash=f"{sid}.t" if n % 3 else None,
        )
        for n, sid in enumerate(sids)
    ]
    trash.record_last_sweep(dirs, 1_796_000_000.5, outcomes)
    assert (dirs.state / trash.LAST_SWEEP).stat().st_size > 16 << 20
    got = trash.last_sweep(dirs)
    assert got is not None and got["at"] == 1_796_000_000.5
    assert [r["session_id"] for r in got["removed"]] == [s for n, s in enumerate(sids) if n % 10]
    assert [r["trash"] for r in got["removed"][:3]] == [f"{sids[1]}.t", f"{sids[2]}.t", None]
    assert not list(dirs.state.glob(".*.tmp"))
