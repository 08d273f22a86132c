"""Faults during a real sweep: permission denied, files vanishing, concurrent sweeps, signals."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.helpers import run_cli, run_json
from tests.helpers.cachegen import DAY, make_session
from tests.helpers.races import ROOT_ONLY, Paused, intact_or_gone


def audit_records(jenv) -> list[dict]:
    log = Path(run_cli(["audit", "path"], jenv).stdout.strip())
    return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []


@ROOT_ONLY
def test_permission_denied_is_logged_and_the_rest_continues(root, jenv, now):
    bad = make_session(root, "/p", now - 90 * DAY)
    good = [make_session(root, "/q", now - 90 * DAY) for _ in range(3)]
    victim = root / "file-history" / bad.session_id / "abc@v1"
    if subprocess.run(["chattr", "+i", str(victim)], capture_output=True).returncode:
        pytest.skip("chattr +i not supported here")
    try:
        p, doc = run_json(["sweep", "--json", "--claude-dir", str(root), "--now", str(now)], jenv)
        assert p.returncode == 1
        res = {s["session_id"]: s for s in doc["sessions"]}
        assert res[bad.session_id]["result"] == "failed"
        assert "not permitted" in res[bad.session_id]["error"]
        assert all(res[g.session_id]["result"] == "ok" for g in good)
        assert all(intact_or_gone(g.paths) == "gone" for g in good)
        assert bad.paths[0].exists() and victim.exists()  # transcript goes last: the session is findable
        failed = [r for r in audit_records(jenv) if r["phase"] == "result" and r["result"] == "failed"]
        assert [r["session_id"] for r in failed] == [bad.session_id] and failed[0]["error"]
        text = run_cli(["sweep", "--claude-dir", str(root), "--now", str(now)], jenv)
        assert text.returncode == 1 and f"failed: {bad.session_id}" in text.stdout
    finally:
        subprocess.run(["chattr", "-i", str(victim)])


def test_session_vanishing_mid_sweep_is_not_an_error(root, jenv, now, tmp_path):
    gone = make_session(root, "/p", now - 90 * DAY)
    partly = make_session(root, "/p", now - 90 * DAY)
    stays = make_session(root, "/q", now - 90 * DAY)
    run = Paused(
        ["sweep", "--json", "--claude-dir", str(root), "--now", str(now)], jenv, "after-plan", tmp_path / "hook"
    )
    for p in gone.paths:  # e.g. Claude Code's own cleanup got there first
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    (root / "debug" / f"{partly.session_id}.txt").unlink()
    p = run.release()
    res = {s["session_id"]: s for s in json.loads(p.stdout)["sessions"]}
    assert p.returncode == 0, p.stdout
    assert res[gone.session_id]["result"] == "vanished"
    assert res[stays.session_id]["result"] == "ok"
    # a session that lost a piece since the scan is left for the next run to judge as a whole
    assert res[partly.session_id]["result"] == "skipped"
    assert partly.paths[0].exists()


def test_two_sweeps_at_once_second_exits_3_or_waits(root, jenv, now, tmp_path):
    gens = [make_session(root, "/p", now - 90 * DAY) for _ in range(2)]
    first = Paused(["sweep", "--claude-dir", str(root), "--now", str(now)], jenv, "after-plan", tmp_path / "h")
    second = run_cli(["sweep", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert second.returncode == 3 and "another sweep is running" in second.stderr
    assert all(intact_or_gone(g.paths) == "intact" for g in gens)
    waiting = subprocess.Popen(
        [*first.proc.args[:3], "sweep", "--wait", "60", "--claude-dir", str(root), "--now", str(now)],
        env=jenv,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    p = first.release()
    assert p.returncode == 0, p.stderr
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    assert all(intact_or_gone(g.paths) == "gone" for g in gens)
    # dry runs never need the lock
    assert run_cli(["sweep", "--dry-run", "--claude-dir", str(root), "--now", str(now)], jenv).returncode == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_sweep_stops_between_sessions(root, jenv, now, tmp_path, sig):
    gens = [make_session(root, f"/p{i}", now - 90 * DAY) for i in range(6)]
    make_session(root, "/recent", now - DAY)  # not every session expires: the mass-removal guard stays quiet
    run = Paused(
        ["sweep", "--json", "--claude-dir", str(root), "--now", str(now)], jenv, "before-session@3", tmp_path / "hook"
    )
    run.proc.send_signal(sig)
    p = run.release()
    assert p.returncode == 128 + sig, p.stderr
    assert "nothing is half done" in p.stderr
    states = [intact_or_gone(g.paths) for g in gens]
    assert states.count("gone") == 2 and states.count("intact") == 4 and "PARTIAL" not in states
    recs = audit_records(jenv)
    results = [r["result"] for r in recs if r["phase"] == "result"]
    assert sorted(results) == ["cancelled"] * 4 + ["ok"] * 2
    assert run_cli(["audit", "verify"], jenv).returncode == 0
    p = run_cli(["sweep", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert p.returncode == 0 and all(intact_or_gone(g.paths) == "gone" for g in gens)
