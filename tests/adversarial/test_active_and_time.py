"""Active sessions are never touched; time edge cases behave as documented."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.helpers import run_cli, run_json, write_config
from tests.helpers.cachegen import DAY, make_cache, make_session, set_times
from tests.helpers.races import HOLD, Paused, intact_or_gone, tree_state


@pytest.mark.parametrize("how", [("a", "open"), ("r", "flock"), ("r+", "open")])
def test_transcript_in_use_by_another_process_is_kept(root, jenv, now, how):
    g = make_session(root, "/p", now - 90 * DAY)
    other = make_session(root, "/q", now - 90 * DAY)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(g.paths[0]), *how], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        for cmd in (["report", "--format", "json"], ["sweep", "--json"]):
            p, doc = run_json([*cmd, "--claude-dir", str(root), "--now", str(now)], jenv)
            assert p.returncode == 0, p.stderr
            by = {s["session_id"]: s for s in doc["sessions"]}
            if cmd[0] == "report":
                assert by[g.session_id]["decision"] == "keep"
                assert f"process {holder.pid}" in by[g.session_id]["reason"]
            else:
                assert g.session_id not in by and by[other.session_id]["result"] == "ok"
        assert intact_or_gone(g.paths) == "intact"
        assert intact_or_gone(other.paths) == "gone"
    finally:
        holder.kill()
        holder.wait()


def test_file_open_for_writing_inside_session_folder_keeps_the_session(root, jenv, now):
    g = make_session(root, "/p", now - 90 * DAY)
    sub = root / "projects" / "-p" / g.session_id / "subagents" / "agent-a1.jsonl"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(sub), "a", "open"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        p = run_cli(["sweep", "--claude-dir", str(root), "--now", str(now)], jenv)
        assert p.returncode == 0, p.stderr
        assert intact_or_gone(g.paths) == "intact"
    finally:
        holder.kill()
        holder.wait()


def test_transcript_opened_for_writing_after_the_plan_is_kept(root, jenv, now, tmp_path):
    """Acting starts from the plan's view of /proc only while it is fresh (2 s); then it is read again."""
    g = make_session(root, "/p", now - 90 * DAY)
    other = make_session(root, "/q", now - 90 * DAY)
    run = Paused(
        ["sweep", "--json", "--claude-dir", str(root), "--now", str(now)], jenv, "after-plan", tmp_path / "hook"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(g.paths[0]), "a", "open"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        time.sleep(2.2)  # past the plan snapshot's freshness: the sweep must look at /proc again
        p = run.release()
        assert p.returncode == 0, p.stderr
        res = {s["session_id"]: s for s in json.loads(p.stdout)["sessions"]}
        assert res[g.session_id]["result"] == "skipped"
        assert f"process {holder.pid}" in res[g.session_id]["error"]
        assert res[other.session_id]["result"] == "ok"
        assert intact_or_gone(g.paths) == "intact"
    finally:
        holder.kill()
        holder.wait()


def test_session_modified_within_grace_is_kept_even_with_tiny_retention(root, jenv, now):
    write_config(jenv, 'retention = "1m"\ngrace = "1h"\n')
    recent = make_session(root, "/p", now - 30 * 60)
    old = make_session(root, "/p", now - 2 * 3600)
    _, doc = run_json(["report", "--format", "json", "--claude-dir", str(root), "--now", str(now)], jenv)
    by = {s["session_id"]: s for s in doc["sessions"]}
    assert by[recent.session_id]["decision"] == "keep" and "grace" in by[recent.session_id]["reason"]
    assert by[old.session_id]["decision"] == "delete"
    run_cli(["sweep", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert intact_or_gone(recent.paths) == "intact" and intact_or_gone(old.paths) == "gone"


def test_future_mtimes_and_timestamps_are_kept_as_clock_skew(root, jenv, now):
    g = make_session(root, "/p", now + 10 * DAY)  # records and mtimes in the future
    h = make_session(root, "/q", now - 90 * DAY)
    set_times(h.paths[-1], now + 3600)  # one side file from the future
    p, doc = run_json(["sweep", "--dry-run", "--json", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert doc["sessions"] == []
    _, rep = run_json(["report", "--format", "json", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert all("clock skew" in s["reason"] for s in rep["sessions"])
    assert intact_or_gone(g.paths) == "intact"


@pytest.mark.parametrize("offset,expected", [(-1, "keep"), (0, "keep"), (1, "delete")])
def test_one_second_either_side_of_the_cutoff(root, jenv, now, offset, expected):
    write_config(jenv, 'retention = "10d"\ngrace = "0s"\n')
    g = make_session(root, "/p", now - 10 * DAY, side=False)
    _, doc = run_json(["report", "--format", "json", "--claude-dir", str(root), "--now", str(now + offset)], jenv)
    assert doc["sessions"][0]["decision"] == expected
    assert g.paths[0].exists()


def test_clock_jump_of_a_year_trips_the_guard_and_deletes_nothing(root, jenv, now):
    make_cache(root, now, projects=3, per_project=4, seed=3, max_age_days=20)
    before = tree_state(root)
    later = now + 365 * DAY
    p = run_cli(["sweep", "--claude-dir", str(root), "--now", str(later)], jenv)
    assert p.returncode == 2
    assert "refusing to remove all 12 sessions" in p.stderr and "clock" in p.stderr and "--force" in p.stderr
    assert tree_state(root) == before
    # the dry run shows the same warning without failing
    _, doc = run_json(["report", "--format", "json", "--claude-dir", str(root), "--now", str(later)], jenv)
    assert any("refusing to remove all" in w for w in doc["warnings"])
    # a configured cap trips too, and --force goes ahead
    mid = now + 25 * DAY
    _, dry = run_json(["sweep", "--dry-run", "--json", "--claude-dir", str(root), "--now", str(mid)], jenv)
    n = len(dry["sessions"])
    assert 2 <= n < 12
    write_config(jenv, f"max_delete_count = {n - 1}\n")
    p = run_cli(["sweep", "--claude-dir", str(root), "--now", str(mid)], jenv)
    assert p.returncode == 2 and f"max_delete_count = {n - 1}" in p.stderr
    assert tree_state(root) == before
    p = run_cli(["sweep", "--force", "--claude-dir", str(root), "--now", str(later)], jenv)
    assert p.returncode == 0
    assert not list((root / "projects").glob("*/*.jsonl"))


def test_audit_intent_is_durable_before_the_action(root, jenv, now, tmp_path):
    gens = [make_session(root, "/p", now - 90 * DAY) for _ in range(3)]
    env = dict(jenv, JANITOR_TEST_KILL_AT="after-intent")
    p = run_cli(["sweep", "--claude-dir", str(root), "--now", str(now)], env)
    assert p.returncode == -9
    assert all(intact_or_gone(g.paths) == "intact" for g in gens)
    log = run_cli(["audit", "path"], jenv).stdout.strip()
    recs = [json.loads(x) for x in open(log)]
    assert [r["phase"] for r in recs] == ["intent"] * 3
    assert run_cli(["audit", "verify"], jenv).returncode == 0
    p = run_cli(["sweep", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert p.returncode == 0
    recs = [json.loads(x) for x in open(log)]
    # the killed run's intents get an honest result first (nothing was done: found present), then the run
    assert [r["phase"] for r in recs] == ["intent"] * 3 + ["result"] * 3 + ["intent"] * 3 + ["result"] * 3
    assert {(r["result"], r["found"]) for r in recs[3:6]} == {("interrupted", "present")}
    assert all(intact_or_gone(g.paths) == "gone" for g in gens)


def test_tampering_with_a_real_log_is_detected(root, jenv, now):
    make_session(root, "/p", now - 90 * DAY)
    run_cli(["sweep", "--claude-dir", str(root), "--now", str(now)], jenv)
    log = run_cli(["audit", "path"], jenv).stdout.strip()
    text = open(log).read()
    assert run_cli(["audit", "verify"], jenv).returncode == 0
    open(log, "w").write(text.replace('"result": "ok"', '"result": "failed"'))
    p = run_cli(["audit", "verify"], jenv)
    assert p.returncode == 1 and "edited" in p.stderr
