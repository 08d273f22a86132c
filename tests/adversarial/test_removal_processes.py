"""A big real sweep removes sessions in forked worker processes (sweep.workers.Procs): signals to the whole
process group, and a worker killed mid-run, still leave every session whole or gone and the report true."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import run_cli, wait_for
from tests.helpers.cachegen import DAY, make_session
from tests.helpers.races import intact_or_gone

BIG = 1500  # well over sweep.MIN_PROCESSES, and enough that a run is still going when it is interrupted


def audit_records(jenv) -> list[dict]:
    log = Path(run_cli(["audit", "path"], jenv).stdout.strip())
    return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []


def big_cache(root: Path, now: float, n: int = BIG) -> dict[str, list[Path]]:
    gens = [make_session(root, f"/p{i % 20}", now - 90 * DAY) for i in range(n)]
    make_session(root, "/recent", now - DAY)  # not every session expires: the mass-removal guard stays quiet
    return {g.session_id: g.paths for g in gens}


def start(root: Path, jenv, now: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "claude_janitor", "sweep", "--json", "--claude-dir", str(root), "--now", str(now)],
        env=jenv,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def removing(proc: subprocess.Popen[str], root: Path, n: int) -> bool:
    """Wait until the run has removed something (its debug logs go first)."""
    return (
        wait_for(lambda: len(os.listdir(root / "debug")) < n + 1 or proc.poll() is not None, timeout=60, interval=0.001)
        and proc.poll() is None
    )


def children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_a_big_sweep_removes_everything_due_and_reports_in_plan_order(root, jenv, now):
    gens = big_cache(root, now, 300)
    proc = start(root, jenv, now)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    sessions = json.loads(out)["sessions"]
    done = [s for s in sessions if s["decision"] == "delete"]
    assert len(done) == 300 and {s["result"] for s in done} == {"ok"}
    assert all(intact_or_gone(gens[s["session_id"]]) == "gone" for s in done)
    assert (root / "projects" / "-recent").is_dir() and len(os.listdir(root / "debug")) == 1
    recs = audit_records(jenv)
    intents = [r["session_id"] for r in recs if r["phase"] == "intent"]
    results = [r["session_id"] for r in recs if r["phase"] == "result"]
    assert intents == results == [s["session_id"] for s in done]  # one order: the plan's
    assert run_cli(["audit", "verify"], jenv).returncode == 0


def test_sigint_to_the_process_group_leaves_every_session_whole_or_gone(root, jenv, now):
    gens = big_cache(root, now)
    proc = start(root, jenv, now)
    assert removing(proc, root, BIG), proc.communicate()
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's ^C does: the workers get it too
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT, err
    assert "nothing is half done" in err
    # result: ok, cancelled (handed out, not begun), or none (its batch was never begun)
    res = {s["session_id"]: s.get("result") for s in json.loads(out)["sessions"] if s["decision"] == "delete"}
    states = {sid: intact_or_gone(paths) for sid, paths in gens.items()}
    assert "PARTIAL" not in states.values()
    assert {sid for sid, st in states.items() if st == "gone"} == {sid for sid, r in res.items() if r == "ok"}
    intact = [res[sid] for sid, st in states.items() if st == "intact"]
    assert intact and set(intact) <= {"cancelled", None}
    assert 0 < list(res.values()).count("ok") < BIG
    recs = audit_records(jenv)
    assert sorted(r["result"] for r in recs if r["phase"] == "result") == sorted(r for r in res.values() if r)
    assert run_cli(["audit", "verify"], jenv).returncode == 0


def test_a_removal_worker_killed_mid_run_fails_only_its_sessions(root, jenv, now):
    gens = big_cache(root, now)
    proc = start(root, jenv, now)
    assert removing(proc, root, BIG), proc.communicate()
    workers = children(proc.pid)
    assert len(workers) > 1, "a big sweep removes in worker processes"
    os.kill(workers[0], signal.SIGKILL)
    t = time.monotonic()
    out, err = proc.communicate(timeout=120)  # never hangs on the dead worker
    assert proc.returncode == 1, err
    res = {s["session_id"]: s for s in json.loads(out)["sessions"] if s["decision"] == "delete"}
    died = {sid for sid, s in res.items() if s["result"] == "failed"}
    assert died and all("the process removing it died" in res[sid]["error"] for sid in died)
    assert {s["result"] for s in res.values()} == {"ok", "failed"}  # the other workers went on to the end
    states = {sid: intact_or_gone(paths) for sid, paths in gens.items()}
    assert all(states[sid] == "gone" for sid, s in res.items() if s["result"] == "ok")
    partial = [sid for sid, st in states.items() if st == "PARTIAL"]
    assert len(partial) <= 1 and set(partial) <= died  # at most the session it had in hand
    assert run_cli(["audit", "verify"], jenv).returncode == 0
    assert time.monotonic() - t < 60
    assert not any(
        Path(f"/proc/{w}").exists() and "janitor" in Path(f"/proc/{w}/cmdline").read_text() for w in workers
    )  # no worker is left behind


def test_removal_workers_fit_the_cpus_and_what_is_running():
    from claude_janitor.sweep.workers import MIN_WORKERS, PROCESSES, removal_processes

    assert removal_processes(2, 0) == PROCESSES  # an idle machine: discards overlapped by the most workers
    assert removal_processes(2, 2) == MIN_WORKERS  # two CPU burners: fewer, never none
    assert removal_processes(1, 9) == MIN_WORKERS
    assert removal_processes(2, 1) < PROCESSES
