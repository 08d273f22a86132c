"""Symlinks and things swapped between scan and act: nothing outside the cache is ever touched."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import run_cli, run_json
from tests.helpers.cachegen import DAY, make_session, set_times
from tests.helpers.races import Paused, intact_or_gone, tree_state


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    o = tmp_path / "outside"
    (o / "sub").mkdir(parents=True)
    (o / "precious.txt").write_text("keep me")
    (o / "sub" / "deep.txt").write_text("me too")
    (o / "11111111-2222-3333-4444-555555555555.jsonl").write_text("{}\n")
    return o


def test_file_and_dir_symlinks_inside_expired_sessions_are_not_followed(root, jenv, now, outside):
    g = make_session(root, "/p", now - 90 * DAY)
    sid = g.session_id
    links = [
        root / "projects" / "-p" / sid / "dirlink",
        root / "projects" / "-p" / sid / "filelink",
        root / "file-history" / sid / "escape",
        root / "tasks" / sid / "up",
    ]
    os.symlink(outside, links[0])
    os.symlink(outside / "precious.txt", links[1])
    os.symlink(outside / "sub", links[2])
    os.symlink("../../..", links[3])
    for p in [*links, *g.paths[1:]]:
        set_times(p, now - 90 * DAY)
    # a transcript that is a symlink to a file outside, and a side-store entry that is a symlink
    os.symlink(
        outside / "11111111-2222-3333-4444-555555555555.jsonl",
        root / "projects" / "-p" / "11111111-2222-3333-4444-555555555555.jsonl",
    )
    os.symlink(outside, root / "file-history" / "11111111-2222-3333-4444-555555555555")
    before = tree_state(outside)
    p = run_cli(["sweep", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert p.returncode == 0, p.stderr
    assert intact_or_gone(g.paths) == "gone"
    assert tree_state(outside) == before
    assert (root / "projects" / "-p" / "11111111-2222-3333-4444-555555555555.jsonl").is_symlink()
    assert (root / "file-history" / "11111111-2222-3333-4444-555555555555").is_symlink()


@pytest.mark.parametrize("which", ["link", "slash", "home"])
def test_dangerous_roots_are_refused(root, jenv, now, tmp_path, which):
    make_session(root, "/p", now - 90 * DAY)
    if which == "link":
        target = tmp_path / "link"
        os.symlink(root, target)
        args = ["--claude-dir", str(target)]
    elif which == "slash":
        args = ["--claude-dir", "/"]
    else:
        home = tmp_path / "home"
        home.mkdir()
        jenv = dict(jenv, HOME=str(home))
        args = ["--claude-dir", str(home)]
    before = tree_state(root)
    for cmd in (["sweep", "--force"], ["report"]):
        p = run_cli([*cmd, *args, "--now", str(now)], jenv)
        assert p.returncode == 2, p.stdout
        assert "refus" in p.stderr
    assert tree_state(root) == before


def test_dir_swapped_for_symlink_between_scan_and_delete(root, jenv, now, outside, tmp_path):
    g = make_session(root, "/p", now - 90 * DAY)
    fh = root / "file-history" / g.session_id
    run = Paused(
        ["sweep", "--json", "--claude-dir", str(root), "--now", str(now)], jenv, "after-plan", tmp_path / "hook"
    )
    shutil.rmtree(fh)
    os.symlink(outside, fh)  # the scanned dir is now a link to precious data outside
    before = tree_state(outside)
    p = run.release()
    assert p.returncode == 0, p.stderr
    assert tree_state(outside) == before
    s = json.loads(p.stdout)["sessions"][0]
    assert s["result"] == "skipped" and "changed" in s["error"]
    assert g.paths[0].exists()  # the transcript was kept: the session was not half deleted


def test_project_dir_swapped_for_symlink_between_scan_and_delete(root, jenv, now, outside, tmp_path):
    g = make_session(root, "/p", now - 90 * DAY)
    run = Paused(["sweep", "--claude-dir", str(root), "--now", str(now)], jenv, "after-plan", tmp_path / "h")
    os.rename(root / "projects" / "-p", tmp_path / "moved-away")
    os.symlink(outside, root / "projects" / "-p")
    shutil.copy(tmp_path / "moved-away" / f"{g.session_id}.jsonl", outside / f"{g.session_id}.jsonl")
    before = tree_state(outside)
    p = run.release()
    assert p.returncode in (0, 1), p.stderr
    assert tree_state(outside) == before


@pytest.mark.parametrize("change", ["append", "replace", "touch"])
def test_file_changed_between_scan_and_act_is_skipped_and_reported(root, jenv, now, tmp_path, change):
    g = make_session(root, "/p", now - 90 * DAY)
    other = make_session(root, "/q", now - 90 * DAY)
    tr = g.paths[0]
    run = Paused(
        ["sweep", "--json", "--claude-dir", str(root), "--now", str(now)], jenv, "after-plan", tmp_path / "hook"
    )
    if change == "append":
        with open(tr, "a") as f:
            f.write('{"type":"user"}\n')
        set_times(tr, now - 90 * DAY)
    elif change == "replace":
        tmp = tr.with_suffix(".new")
        tmp.write_bytes(tr.read_bytes())
        set_times(tmp, now - 90 * DAY)
        os.replace(tmp, tr)
    else:
        set_times(tr, now - 89 * DAY)
    p = run.release()
    assert p.returncode == 0, p.stderr
    res = {s["session_id"]: s for s in json.loads(p.stdout)["sessions"]}
    assert res[g.session_id]["result"] == "skipped" and "changed since the scan" in res[g.session_id]["error"]
    assert intact_or_gone(g.paths) == "intact"
    assert res[other.session_id]["result"] == "ok" and intact_or_gone(other.paths) == "gone"
    _, doc = run_json(["sweep", "--dry-run", "--json", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert [s["session_id"] for s in doc["sessions"]] == [g.session_id]  # still due; a later run decides
