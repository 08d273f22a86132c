"""Archive and restore through the real CLI, on real files: one verified archive per session, restore puts
every piece back (with the restore time; the original times stay in the manifest), archives are never
overwritten, hostile archives are refused, write errors keep the originals, archive retention prunes, and
the Claude Code race is warned about."""

from __future__ import annotations

import json
import os
import random
import resource
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from claude_janitor.archive.format import FORMAT, PARTIAL, VERSION, project_dir_name
from claude_janitor.archive.reader import verify
from claude_janitor.archive.store import archive_actor
from claude_janitor.model import Action, Policy, Rule, Window
from claude_janitor.sweep.plan import warnings_for
from tests.helpers import run_cli, run_json, write_config
from tests.helpers.archivetools import archive_files, craft, entries, leftovers, manifest_entries, tar_member, timeless
from tests.helpers.cachegen import DAY, make_session, set_times

CFG = 'action = "archive"\nretention = "20d"\n'


def adir_of(jenv: dict[str, str]) -> Path:
    return Path(jenv["XDG_DATA_HOME"]) / "claude-janitor" / "archives"


def audit_records(jenv: dict[str, str]) -> list[dict]:
    p = run_cli(["audit", "path"], jenv)
    path = Path(p.stdout.strip())
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def sessions(root: Path, now: float):
    """Two expired sessions (one alone in its project) and one recent one, with every side store."""
    rng = random.Random(3)
    old_a = make_session(root, "/home/dev/src/app", now - 40 * DAY, rng=rng)
    old_b = make_session(root, "/home/dev/src/lonely", now - 50 * DAY, rng=rng)
    new = make_session(root, "/home/dev/src/app", now - 2 * DAY, rng=rng)
    # Varied modes, and a dir mtime that differs from its files'.
    os.chmod(root / "debug" / f"{old_a.session_id}.txt", 0o640)
    set_times(root / "debug" / f"{old_a.session_id}.txt", now - 45 * DAY)
    return old_a, old_b, new


def sweep(root: Path, jenv: dict[str, str], now: float, *extra: str):
    return run_json(["sweep", "--json", "--claude-dir", str(root), "--now", str(now), *extra], jenv)


def test_archive_holds_every_piece_and_restore_puts_it_back(sessions, root, jenv, now):
    old_a, old_b, new = sessions
    write_config(jenv, CFG)
    before = {g.session_id: entries(root, g.session_id) for g in sessions}
    assert len(before[old_a.session_id]) >= 10  # transcript, subagents, tool-results, side stores…

    p, doc = sweep(root, jenv, now)
    assert p.returncode == 0, p.stderr
    by_id = {s["session_id"]: s for s in doc["sessions"]}
    assert set(by_id) == {old_a.session_id, old_b.session_id}
    adir = adir_of(jenv)
    for g in (old_a, old_b):
        s = by_id[g.session_id]
        assert s["decision"] == "archive" and s["result"] == "ok"
        apath = Path(s["archive"])
        assert apath.is_file() and adir in apath.parents and root not in apath.parents
        assert stat.S_IMODE(apath.stat().st_mode) == 0o600
        assert stat.S_IMODE(apath.parent.stat().st_mode) == 0o700
        info = verify(apath)
        assert info.header["session_id"] == g.session_id and info.header["root"] == str(root)
        # every file and dir, with relative paths, modes, exact mtimes, sizes and sha256
        assert manifest_entries(info.manifest) == before[g.session_id]
        assert entries(root, g.session_id) == {}  # originals gone only after that
    assert stat.S_IMODE(adir.stat().st_mode) == 0o700
    assert entries(root, new.session_id) == before[new.session_id]

    # The lonely session's project dir is now empty: remove it, restore must recreate it.
    lonely = root / "projects" / old_b.project
    assert not any(lonely.iterdir())
    lonely.rmdir()
    for g in (old_a, old_b):
        t0 = time.time_ns()
        r = run_cli(["restore", "--claude-dir", str(root), g.session_id], jenv)
        assert r.returncode == 0, r.stderr
        assert "restored session" in r.stdout and f"claude --resume {g.session_id}" in r.stdout
        got = entries(root, g.session_id)
        assert timeless(got) == timeless(before[g.session_id])  # contents and modes (dirs too)
        # every file and dir carries the restore time (Claude Code's cleanup ages each by its mtime); the
        # original ones stay in the archive's manifest
        assert all(t0 <= v[2] <= time.time_ns() for v in got.values()), got
        assert "original times" in r.stdout and "stay in the archive's manifest" in r.stdout
    assert leftovers(root) == []

    # Claude Code (and the janitor) see it again, active now: a fresh window, not pinned.
    _, rep = run_json(["report", "--format", "json", "--claude-dir", str(root)], jenv)
    got = {s["session_id"]: s for s in rep["sessions"]}[old_a.session_id]
    assert got["decision"] == "keep" and not got["pinned"], got
    later = time.time() + 21 * DAY
    _, rep = run_json(["report", "--format", "json", "--claude-dir", str(root), "--now", str(later)], jenv)
    assert {s["session_id"]: s["decision"] for s in rep["sessions"]}[old_a.session_id] == "archive"

    recs = audit_records(jenv)
    arch = [r for r in recs if r["action"] == "archive"]
    assert {(r["session_id"], r["phase"], r["result"]) for r in arch} >= {
        (old_a.session_id, "intent", "pending"),
        (old_a.session_id, "result", "ok"),
    }
    assert all(r.get("archive") for r in arch if r["phase"] == "result")
    rest = [r for r in recs if r["action"] == "restore"]
    assert [(r["phase"], r["result"]) for r in rest if r["session_id"] == old_a.session_id] == [
        ("intent", "pending"),
        ("result", "ok"),
    ]
    assert run_cli(["audit", "verify"], jenv).returncode == 0


def test_restore_refuses_to_overwrite_a_live_file(sessions, root, jenv, now):
    old_a = sessions[0]
    write_config(jenv, CFG)
    assert sweep(root, jenv, now)[0].returncode == 0
    live = root / "projects" / old_a.project / f"{old_a.session_id}.jsonl"
    live.write_text('{"type": "user", "message": "a new live session with the same id"}\n')
    r = run_cli(["restore", "--claude-dir", str(root), old_a.session_id], jenv)
    assert r.returncode == 1
    assert "refusing to overwrite a live file" in r.stderr
    assert live.read_text().startswith('{"type": "user", "message": "a new live')
    assert set(entries(root, old_a.session_id)) == {str(live.relative_to(root))}  # nothing else written
    assert leftovers(root) == []
    assert [r["result"] for r in audit_records(jenv) if r["action"] == "restore"] == []


def test_restored_session_expiring_unchanged_reuses_its_archive(sessions, root, jenv, now):
    old_a = sessions[0]
    write_config(jenv, CFG)
    p, doc = sweep(root, jenv, now)
    first = Path(next(s["archive"] for s in doc["sessions"] if s["session_id"] == old_a.session_id))
    first_bytes = first.read_bytes()
    assert run_cli(["restore", "--claude-dir", str(root), "--no-pin", old_a.session_id], jenv).returncode == 0
    again = run_cli(["restore", "--claude-dir", str(root), "--no-pin", old_a.session_id], jenv)
    assert again.returncode == 0 and "already in place" in again.stdout

    p, doc = sweep(root, jenv, time.time() + 21 * DAY)  # a fresh window from the restore
    assert p.returncode == 0, p.stderr
    s = next(s for s in doc["sessions"] if s["session_id"] == old_a.session_id)
    assert s["result"] == "ok" and s["archive"] == str(first)  # no second copy of the same bytes
    assert [a for a in archive_files(adir_of(jenv)) if old_a.session_id in a.name] == [first]
    assert first.read_bytes() == first_bytes and entries(root, old_a.session_id) == {}


def test_a_changed_session_gets_a_new_archive_and_the_old_one_is_never_overwritten(sessions, root, jenv, now):
    old_a = sessions[0]
    write_config(jenv, CFG)
    p, doc = sweep(root, jenv, now)
    first = Path(next(s["archive"] for s in doc["sessions"] if s["session_id"] == old_a.session_id))
    first_bytes = first.read_bytes()
    assert run_cli(["restore", "--claude-dir", str(root), "--no-pin", old_a.session_id], jenv).returncode == 0
    tr = root / "projects" / old_a.project / f"{old_a.session_id}.jsonl"
    with open(tr, "a") as f:
        f.write('{"type": "user", "message": "one more line"}\n')
    changed = entries(root, old_a.session_id)

    p, doc = sweep(root, jenv, time.time() + 21 * DAY)
    assert p.returncode == 0, p.stderr
    second = Path(next(s["archive"] for s in doc["sessions"] if s["session_id"] == old_a.session_id))
    assert second != first
    assert first.read_bytes() == first_bytes
    assert manifest_entries(verify(second).manifest) == changed
    # restore takes the newest archive
    r, out = run_json(["restore", "--claude-dir", str(root), old_a.session_id, "--json"], jenv)
    assert r.returncode == 0 and out["archive"] == str(second)
    assert timeless(entries(root, old_a.session_id)) == timeless(changed)


def test_archive_list_shows_archives_and_never_temp_files(sessions, root, jenv, now):
    old_a, old_b, _ = sessions
    write_config(jenv, CFG)
    assert sweep(root, jenv, now)[0].returncode == 0
    adir = adir_of(jenv)
    proj = adir / project_dir_name(old_a.project)
    partial = proj / f".{old_a.session_id}.20260101T000000Z{PARTIAL}abc123"
    partial.write_bytes(b"half an archive")

    p, doc = run_json(["archive", "list", "--json"], jenv)
    assert p.returncode == 0, p.stderr
    assert doc["archive_dir"] == str(adir)
    got = {a["session_id"]: a for a in doc["archives"]}
    assert set(got) == {old_a.session_id, old_b.session_id}
    assert got[old_b.session_id]["project_path"] == "/home/dev/src/lonely"
    assert got[old_a.session_id]["archived_at"] == "2026-09-21T14:13:20Z"
    assert not any(PARTIAL in a["path"] for a in doc["archives"])
    t = run_cli(["archive", "list"], jenv)
    assert old_a.session_id in t.stdout and "/home/dev/src/lonely" in t.stdout and "2 archives" in t.stdout

    # A corrupt archive is listed as such (exit 1 with --verify), never silently skipped.
    bad = proj / f"{'0' * 8}-0000-0000-0000-{'0' * 12}.20260101T000000Z.tar.zst"
    good = Path(got[old_a.session_id]["path"]).read_bytes()
    bad.write_bytes(good[: len(good) // 2])
    p, doc = run_json(["archive", "list", "--json", "--verify"], jenv)
    assert p.returncode == 1
    by_path = {a["path"]: a for a in doc["archives"]}
    assert by_path[str(bad)]["verified"] is False and by_path[str(bad)]["error"]
    assert by_path[got[old_a.session_id]["path"]]["verified"] is True

    # The next sweep removes the temp file (and never the corrupt archive).
    p, doc = sweep(root, jenv, now)
    assert [x["result"] for x in doc["archives"]["partials"]] == ["removed"]
    assert not partial.exists() and bad.exists()


def test_dry_run_archives_nothing(sessions, root, jenv, now):
    write_config(jenv, 'retention = "20d"\n')  # action from the command line
    before = {g.session_id: entries(root, g.session_id) for g in sessions}
    p, doc = sweep(root, jenv, now, "--dry-run", "--action", "archive")
    assert p.returncode == 0
    assert {(s["decision"], s["result"]) for s in doc["sessions"]} == {("archive", "dry-run")}
    assert not adir_of(jenv).exists()
    assert {g.session_id: entries(root, g.session_id) for g in sessions} == before


def test_action_archive_from_the_command_line_and_from_a_rule(sessions, root, jenv, now):
    old_a, old_b, _ = sessions
    write_config(jenv, 'retention = "20d"\n[[rule]]\nproject = "/home/dev/src/lonely"\naction = "archive"\n')
    p, doc = sweep(root, jenv, now)
    assert {s["session_id"]: s["decision"] for s in doc["sessions"]} == {
        old_a.session_id: "delete",
        old_b.session_id: "archive",
    }
    assert [p.name.split(".")[0] for p in archive_files(adir_of(jenv))] == [old_b.session_id]


def test_session_with_a_symlink_inside_is_kept_not_archived(sessions, root, jenv, now, tmp_path):
    old_a = sessions[0]
    write_config(jenv, CFG)
    sdir = root / "projects" / old_a.project / old_a.session_id
    os.symlink(tmp_path, sdir / "escape")
    set_times(sdir / "escape", now - 40 * DAY)  # the link's own mtime (else it counts as activity)
    set_times(sdir, now - 40 * DAY)
    before = entries(root, old_a.session_id)
    p, doc = sweep(root, jenv, now)
    assert p.returncode == 1
    s = next(s for s in doc["sessions"] if s["session_id"] == old_a.session_id)
    assert s["result"] == "failed" and "symlink" in s["error"]
    assert entries(root, old_a.session_id) == before
    assert not any(old_a.session_id in a.name for a in archive_files(adir_of(jenv)))
    assert leftovers(adir_of(jenv)) == []


def test_write_error_keeps_the_original_and_removes_the_partial_archive(root, jenv, now):
    """A file-size limit (RLIMIT_FSIZE) makes the archive write fail part-way, like a full disk."""
    g = make_session(root, "/home/dev/src/big", now - 40 * DAY)
    big = root / "projects" / g.project / g.session_id / "tool-results" / "blob.bin"
    big.write_bytes(random.Random(5).randbytes(3 << 20))  # incompressible: the archive must exceed 1 MiB
    set_times(big, now - 40 * DAY)
    set_times(big.parent, now - 40 * DAY)
    write_config(jenv, CFG)
    before = entries(root, g.session_id)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    p = subprocess.run(
        [sys.executable, "-m", "claude_janitor", "sweep", "--claude-dir", str(root), "--now", str(now)],
        env=jenv,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit,
    )
    assert p.returncode == 1, p.stdout + p.stderr
    assert "archive not written, originals kept: File too large" in p.stdout
    assert entries(root, g.session_id) == before
    assert archive_files(adir_of(jenv)) == [] and leftovers(adir_of(jenv)) == []
    res = [r for r in audit_records(jenv) if r["action"] == "archive" and r["phase"] == "result"]
    assert [r["result"] for r in res] == ["failed"] and "File too large" in res[0]["error"]


def test_archive_dir_inside_the_swept_tree_is_refused(sessions, root, jenv, now):
    write_config(jenv, CFG + f'archive_dir = "{root}/archives"\n')
    p = run_cli(["sweep", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert p.returncode == 2 and "inside the swept tree" in p.stderr
    assert not (root / "archives").exists()
    # The default archive dir (platformdirs data dir) is checked too.
    write_config(jenv, CFG)
    env = dict(jenv, XDG_DATA_HOME=str(root / "data"))
    p = run_cli(["sweep", "--claude-dir", str(root), "--now", str(now)], env)
    assert p.returncode == 2 and "inside the swept tree" in p.stderr


def test_configured_archive_dir_is_used_by_sweep_list_and_restore(sessions, root, jenv, now, tmp_path):
    old_a = sessions[0]
    elsewhere = tmp_path / "vault" / "nested"
    write_config(jenv, CFG + f'archive_dir = "{elsewhere}"\n')
    assert sweep(root, jenv, now)[0].returncode == 0
    assert len(archive_files(elsewhere)) == 2 and not adir_of(jenv).exists()
    assert stat.S_IMODE((tmp_path / "vault").stat().st_mode) == 0o700
    _, doc = run_json(["archive", "list", "--json"], jenv)
    assert doc["archive_dir"] == str(elsewhere) and len(doc["archives"]) == 2
    assert run_cli(["restore", "--claude-dir", str(root), old_a.session_id], jenv).returncode == 0
    assert entries(root, old_a.session_id)


def test_retention_prunes_old_archives_audited_and_dry_run_only_reports(sessions, root, jenv, now):
    write_config(jenv, CFG + 'archive_retention = "7d"\n')
    p, doc = sweep(root, jenv, now)
    made = archive_files(adir_of(jenv))
    assert len(made) == 2 and doc["archives"] is None  # no archive dir before this run: nothing to prune

    p, doc = sweep(root, jenv, now + 7 * DAY)  # exactly 7 days old: kept
    assert doc["archives"]["pruned"] == [] and archive_files(adir_of(jenv)) == made

    p, doc = sweep(root, jenv, now + 8 * DAY, "--dry-run")
    assert p.returncode == 0
    assert sorted(x["archive"] for x in doc["archives"]["pruned"]) == [str(m) for m in made]
    assert {x["result"] for x in doc["archives"]["pruned"]} == {"dry-run"}
    assert archive_files(adir_of(jenv)) == made
    t = run_cli(["report", "--claude-dir", str(root), "--now", str(now + 8 * DAY)], jenv)
    assert "archives: would prune 2 past archive_retention" in t.stdout

    p, doc = sweep(root, jenv, now + 8 * DAY)
    assert p.returncode == 0
    assert {x["result"] for x in doc["archives"]["pruned"]} == {"ok"}
    assert archive_files(adir_of(jenv)) == []
    pr = [r for r in audit_records(jenv) if r["action"] == "prune-archive"]
    assert sorted((r["phase"], r["result"]) for r in pr) == [("intent", "pending")] * 2 + [("result", "ok")] * 2
    assert all("archive_retention 7d" in r["reason"] for r in pr)
    assert run_cli(["audit", "verify"], jenv).returncode == 0


# ---- hostile archives -------------------------------------------------------------------------------

SID = "11111111-2222-3333-4444-555555555555"
PROJ = "-home-dev-src-app"


def _header(root: Path, pieces: list[tuple[str, bool]]) -> dict:
    return {
        "format": FORMAT,
        "version": VERSION,
        "session_id": SID,
        "root": str(root),
        "project": PROJ,
        "project_path": "/home/dev/src/app",
        "archived_at": 1.7e9,
        "pieces": [{"rel": r, "store": "x", "is_dir": d} for r, d in pieces],
    }


TR = f"projects/{PROJ}/{SID}.jsonl"
SD = f"projects/{PROJ}/{SID}"


def _hostile(kind: str, root: Path, outside: Path) -> tuple[dict, list, list | None, str]:
    ok_file = (tar_member(TR), b'{"type":"user"}\n')
    if kind == "absolute":
        return (_header(root, [(TR, False)]), [(tar_member(str(outside / "evil")), b"x")], None, "is absolute")
    if kind == "dotdot":
        return (
            _header(root, [(SD, True)]),
            [(tar_member(SD, tarfile.DIRTYPE, 0o700), None), (tar_member(f"{SD}/../../../../evil"), b"x")],
            None,
            "'..'",
        )
    if kind == "symlink":
        return (
            _header(root, [(SD, True)]),
            [
                (tar_member(SD, tarfile.DIRTYPE, 0o700), None),
                (tar_member(f"{SD}/link", tarfile.SYMTYPE, linkname=str(outside)), None),
            ],
            None,
            "link or special file",
        )
    if kind == "hardlink":
        return (
            _header(root, [(TR, False), (SD, True)]),
            [
                ok_file,
                (tar_member(SD, tarfile.DIRTYPE, 0o700), None),
                (tar_member(f"{SD}/h", tarfile.LNKTYPE, linkname="/etc/passwd"), None),
            ],
            None,
            "link",
        )
    if kind == "foreign-place":  # a piece where no session file lives: Claude Code's own settings
        return (
            _header(root, [("settings.json", False)]),
            [(tar_member("settings.json"), b'{"hooks": {}}')],
            None,
            "not a place",
        )
    if kind == "foreign-sibling":  # a file beside a transcript, but another session's
        other = TR.rsplit("/", 1)[0] + "/99999999-0000-4000-8000-000000000000.precompact.json"
        return (
            _header(root, [(TR, False), (other, False)]),
            [ok_file, (tar_member(other), b"{}")],
            None,
            "not a place",
        )
    if kind == "outside-pieces":
        return (
            _header(root, [(TR, False)]),
            [ok_file, (tar_member("debug/other.txt"), b"x")],
            None,
            "outside the session's pieces",
        )
    if kind == "missing-piece":
        return (_header(root, [(TR, False), (SD, True)]), [ok_file], None, "not in the archive")
    if kind == "tampered":
        good = {"path": TR, "type": "file", "mode": 0o600, "mtime_ns": int(1.7e18), "size": 16, "sha256": "0" * 64}
        return (_header(root, [(TR, False)]), [ok_file], [good], "does not match the manifest")
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "absolute",
        "dotdot",
        "symlink",
        "hardlink",
        "foreign-place",
        "foreign-sibling",
        "outside-pieces",
        "missing-piece",
        "tampered",
    ],
)
def test_restore_refuses_hostile_archives(kind, root, jenv, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    header, members, mm, why = _hostile(kind, root, outside)
    bad = craft(tmp_path / "bad.tar.zst", header, members, manifest_members=mm)
    p = run_cli(["restore", "--claude-dir", str(root), SID, "--archive", str(bad)], jenv)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "not usable" in p.stderr and why in p.stderr and "nothing was restored" in p.stderr
    assert list(root.rglob("*")) == [] and list(outside.iterdir()) == []
    assert not (tmp_path / "evil").exists()


def test_crafted_but_well_formed_archive_restores(root, jenv, tmp_path):
    """The hand-made archives above fail only for the reason each one tests."""
    header, members, _, _ = _hostile("outside-pieces", root, tmp_path)
    ok = craft(tmp_path / "ok.tar.zst", header, members[:1])
    t0 = time.time()
    p = run_cli(["restore", "--claude-dir", str(root), SID, "--archive", str(ok)], jenv)
    assert p.returncode == 0, p.stderr
    assert (root / TR).read_bytes() == b'{"type":"user"}\n'
    assert (root / TR).stat().st_mtime >= t0  # the restore time; 1_700_000_000 stays in the manifest


def test_restore_needs_the_project_when_an_id_was_archived_from_two_places(root, jenv, now):
    sid = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    make_session(root, "/home/dev/one", now - 40 * DAY, sid=sid, side=False)
    make_session(root, "/home/dev/two", now - 40 * DAY, sid=sid, side=False)
    write_config(jenv, CFG)
    assert sweep(root, jenv, now)[0].returncode == 0
    assert len(archive_files(adir_of(jenv))) == 2
    p = run_cli(["restore", "--claude-dir", str(root), sid], jenv)
    assert p.returncode == 2 and "more than one place" in p.stderr and "--project" in p.stderr
    p = run_cli(["restore", "--claude-dir", str(root), sid, "--project", "/home/dev/two"], jenv)
    assert p.returncode == 0, p.stderr
    assert (root / "projects" / "-home-dev-two" / f"{sid}.jsonl").exists()
    assert not (root / "projects" / "-home-dev-one" / f"{sid}.jsonl").exists()
    missing = run_cli(["restore", "--claude-dir", str(root), "99999999-bbbb-cccc-dddd-eeeeeeeeeeee"], jenv)
    assert missing.returncode == 1 and "no archive of session" in missing.stderr


# ---- the race with Claude Code's own cleanup --------------------------------------------------------


def _pol(root: Path, **kw) -> Policy:
    pol = Policy(**kw)
    pol.claude_root_windows[str(root)] = Window(30 * DAY, "Claude Code default (30 days)")
    return pol


@pytest.mark.parametrize(
    "kw,warns",
    [
        ({"action": Action.ARCHIVE}, "archives them only after 30 days"),  # follows Claude's own window: a tie
        ({"action": Action.ARCHIVE, "retention": Window(30 * DAY, "cfg")}, "only after 30 days"),
        ({"action": Action.ARCHIVE, "retention": Window(40 * DAY, "cfg")}, "only after 40 days"),
        ({"action": Action.ARCHIVE, "retention": Window(None, "cfg")}, "never (retention forever)"),
        ({"action": Action.ARCHIVE, "retention": Window(20 * DAY, "cfg"), "grace": 35 * DAY}, "35 days"),
        ({"action": Action.ARCHIVE, "retention": Window(20 * DAY, "cfg")}, None),
        ({"action": Action.DELETE, "retention": Window(40 * DAY, "cfg")}, None),
        (
            {
                "retention": Window(20 * DAY, "cfg"),
                "rules": [Rule("/x/*", 45 * DAY, Action.ARCHIVE, retention_set=True)],
            },
            "rule #1 (/x/*)",
        ),
        (
            {
                "retention": Window(20 * DAY, "cfg"),
                "rules": [Rule("/x/*", 20 * DAY, Action.ARCHIVE, retention_set=True)],
            },
            None,
        ),
    ],
)
def test_warnings_for_the_claude_code_race(root, kw, warns):
    got = warnings_for(_pol(root, **kw), [root])
    if warns is None:
        assert got == []
    else:
        assert len(got) == 1 and warns in got[0]
        assert "Claude Code may delete sessions before they are archived" in got[0]
        assert "Fix: set a shorter retention" in got[0] and "cleanupPeriodDays" in got[0]


def test_warning_uses_the_shortest_project_window(root):
    pol = _pol(root, action=Action.ARCHIVE, retention=Window(20 * DAY, "cfg"))
    pol.claude_windows[(str(root), "-p")] = Window(10 * DAY, "cleanupPeriodDays in /p/.claude/settings.json")
    got = warnings_for(pol, [root])
    assert len(got) == 1 and "10 days old (cleanupPeriodDays in /p/.claude/settings.json)" in got[0]


def test_race_warning_is_shown_by_report_and_sweep(sessions, root, jenv, now):
    write_config(jenv, 'action = "archive"\n')  # no retention: the janitor follows Claude Code's 30 days
    (root / "settings.json").write_text(json.dumps({"cleanupPeriodDays": 14}))
    want = "Claude Code deletes sessions in"
    t = run_cli(["report", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert t.returncode == 0 and f"warning: {want}" in t.stdout and "14 days" in t.stdout
    _, rep = run_json(["report", "--format", "json", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert any(want in w and "settings.json" in w for w in rep["warnings"])
    _, sw = sweep(root, jenv, now, "--dry-run")
    assert any(want in w for w in sw["warnings"])
    s = run_cli(["sweep", "--dry-run", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert f"warning: {want}" in s.stdout
    # Fixed as the warning says: no warning.
    write_config(jenv, 'action = "archive"\nretention = "10d"\n')
    _, rep = run_json(["report", "--format", "json", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert not any(want in w for w in rep["warnings"])


def test_execute_alone_binds_the_archive_action(sessions, root, jenv, now):
    """Callers that plan and execute themselves (the daemon) pass the plain archive_actor: execute binds it
    to the configured archive dir and the plan's time."""
    from claude_janitor.config.paths import janitor_dirs
    from claude_janitor.sweep.act import delete_session
    from claude_janitor.sweep.execute import execute
    from claude_janitor.sweep.plan import Env, build_plan

    old_a, old_b, _ = sessions
    write_config(jenv, CFG)
    env = Env(roots=[root], dirs=janitor_dirs())
    plan, pol, _ = build_plan(env, now)
    outs = execute(plan, pol, env, dry_run=False, actors={Action.DELETE: delete_session, Action.ARCHIVE: archive_actor})
    assert sorted((o.decision.session.session_id, o.result) for o in outs) == sorted(
        [(old_a.session_id, "ok"), (old_b.session_id, "ok")]
    )
    for o in outs:
        info = verify(Path(o.archive))
        assert Path(o.archive).parent.parent == adir_of(jenv) and info.archived_at == now


def test_many_sessions_are_archived_in_batches_by_the_workers_one_verified_archive_each(root, jenv, now):
    """Enough sessions for the sweep's forked workers (sweep.run.MIN_PROCESSES), archived a chunk at a time
    (one sync pass per chunk): each session still gets exactly one archive of its own, verified, holding
    all of it, restorable alone."""
    rng = random.Random(5)
    gens = [
        make_session(root, f"/home/dev/src/p{i % 3}", now - (40 + i % 30) * DAY, rng=rng, side=i % 2 == 0)
        for i in range(80)
    ]
    keep = make_session(root, "/home/dev/src/p0", now - DAY, rng=rng)
    want = {g.session_id: entries(root, g.session_id) for g in gens}
    write_config(jenv, CFG)
    p, doc = sweep(root, jenv, now)
    assert p.returncode == 0, p.stderr
    assert doc["totals"]["results"] == {"ok": 80}
    adir = adir_of(jenv)
    held: dict[str, list] = {}
    for path in archive_files(adir):
        info = verify(path)
        held.setdefault(info.session_id, []).append(manifest_entries(info.manifest))
    assert sorted(held) == sorted(want)
    for sid, w in want.items():
        assert held[sid] == [w]
        assert entries(root, sid) == {}
    assert leftovers(adir) == []
    assert entries(root, keep.session_id)
    sid = gens[41].session_id
    r = run_cli(["restore", "--claude-dir", str(root), sid], jenv)
    assert r.returncode == 0, r.stdout + r.stderr
    assert timeless(entries(root, sid)) == timeless(want[sid])


@pytest.mark.parametrize(
    ("stop_at", "archived"),
    [
        ("archive-published@2", True),  # two archives published when the stop comes: the batch is in hand
        ("archive-written@2", False),  # two written, none published: nothing is archived, nothing removed
    ],
)
def test_a_stop_during_a_chunk_leaves_no_archive_beside_a_session_reported_untouched(
    stop_at, archived, root, jenv, now, tmp_path, monkeypatch
):
    """A stop (a removal worker's SIGTERM raises its stop flag) that comes while a chunk's archives are
    made: sessions whose archive is published are finished (archived, originals removed), the others are
    cancelled with no archive and no temp file. Before, published ones were reported cancelled, kept, and
    archived a second time by the next sweep."""
    import threading
    from multiprocessing.sharedctypes import RawValue

    from claude_janitor import testhooks
    from claude_janitor.config.paths import janitor_dirs
    from claude_janitor.fs.safefs import Root
    from claude_janitor.sweep.act import delete_session
    from claude_janitor.sweep.execute import with_archive
    from claude_janitor.sweep.plan import Env, build_plan
    from claude_janitor.sweep.workers import act_chunk
    from tests.helpers import wait_for

    gens = [make_session(root, "/home/dev/src/app", now - (40 + i) * DAY) for i in range(3)]
    want = {g.session_id: entries(root, g.session_id) for g in gens}
    write_config(jenv, CFG)
    env = Env(roots=[root], dirs=janitor_dirs())
    plan, pol, _ = build_plan(env, now)
    assert len(plan.to_act) == 3
    actors = with_archive({Action.DELETE: delete_session}, pol, env, plan.now)
    hold = tmp_path / "hold"
    hold.mkdir()
    testhooks.arm(pause=f"{stop_at}:{hold}")  # this process's act_chunk stops there (counted from zero)
    flag = RawValue("b", 0)
    roots = {d.session.root: Root(d.session.root) for d in plan.to_act}
    outs: list = []
    t = threading.Thread(target=lambda: outs.extend(act_chunk(plan.to_act, roots, actors, flag)))
    t.start()
    try:
        name = stop_at.partition("@")[0]
        assert wait_for(lambda: (hold / f"{name}.reached").exists(), timeout=60)
        flag.value = 1  # what remover_main's SIGTERM handler does
    finally:
        (hold / f"{name}.go").touch()
        t.join(120)
        testhooks.arm()  # disarmed again for the other tests of this process
        for r in roots.values():
            r.close()
    assert not t.is_alive()
    results = sorted(o.result for o in outs)
    held = {}
    for path in archive_files(adir_of(jenv)):
        info = verify(path)
        held.setdefault(info.session_id, []).append(path)
    assert not leftovers(adir_of(jenv))
    if archived:
        assert results == ["ok", "ok", "ok"]
        assert sorted(held) == sorted(want) and all(len(v) == 1 for v in held.values())
        assert all(not entries(root, sid) for sid in want)
    else:
        assert results == ["cancelled", "cancelled", "cancelled"]
        assert held == {}
        assert all(entries(root, sid) == w for sid, w in want.items())
