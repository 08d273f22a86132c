"""A session Claude Code is running is kept whatever the policy: Claude Code holds no file open and no lock
on its transcript, only its registry record sessions/<pid>.json says it is live."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from claude_janitor.config.paths import janitor_dirs
from tests.helpers import run_cli, run_json, wait_for, write_config
from tests.helpers.claude import age_tree

from .fakeapi import current_prompt, scripted

DAY = 86400.0
WINDOW = 2  # seconds


def session_paths(cfg: Path, sid: str) -> list[Path]:
    """Every top-level entry of the config dir's stores carrying the id (not the registry)."""
    out = []
    for top in cfg.iterdir():
        if top.name in ("sessions",) or not top.is_dir():
            continue
        for p in (
            [q for d in top.iterdir() if d.is_dir() for q in d.iterdir()]
            if top.name == "projects"
            else list(top.iterdir())
        ):
            if sid in p.name:
                out.append(p)
    return out


def age_session(cfg: Path, sid: str, t: float) -> None:
    for p in session_paths(cfg, sid):
        age_tree(p, t)


def held_turn(claude, prompt: str, *args: str, cwd: Path):
    """Start a `claude -p` turn whose model reply the fake API holds; returns (process, hold) once the
    request arrived (the prompt is in the transcript by then)."""
    h = claude.api.hold(lambda b: prompt in current_prompt(b)[0])
    proc = claude.start(prompt, *args, cwd=cwd)
    assert h.arrived.wait(60), proc.stderr.read() if proc.poll() is not None else "no request"
    return proc, h


def registry(cfg: Path) -> dict[int, dict]:
    return {int(p.stem): json.loads(p.read_text()) for p in (cfg / "sessions").glob("*.json")}


def test_a_live_turn_survives_a_sweep_with_grace_zero(claude, jenv):
    cfg, w = claude.config, claude.project("live")
    claude.api.reply = scripted({})
    first = claude.run("FIRST words", cwd=w)["session_id"]
    old = claude.run("old one", cwd=w)["session_id"]
    stale = claude.run("stale one", cwd=w)["session_id"]
    reused = claude.run("reused pid", cwd=w)["session_id"]

    proc, h = held_turn(claude, "SECOND words", "--resume", first, cwd=w)
    asked = time.time()
    try:
        assert "FIRST words" in json.dumps(h.body)  # resuming sends the earlier turn
        reg = registry(cfg)
        assert reg[proc.pid]["sessionId"] == first, reg
        # Stale records: a dead pid, and a live pid (this test's) whose start time is not the recorded one.
        rec = reg[proc.pid]
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        (cfg / "sessions" / f"{dead.pid}.json").write_text(json.dumps({**rec, "pid": dead.pid, "sessionId": stale}))
        (cfg / "sessions" / f"{os.getpid()}.json").write_text(
            json.dumps({**rec, "pid": os.getpid(), "sessionId": reused, "procStart": "1"})
        )
        # Files two months old; the turn's prompt (its last record) older than the 2 s window when the
        # sweep runs: a reply that takes a while, with a short window and no grace.
        for sid in (first, old, stale, reused):
            age_session(cfg, sid, time.time() - 60 * DAY)
        assert wait_for(lambda: time.time() > asked + WINDOW + 0.5, timeout=10)
        write_config(jenv, 'grace = "0s"\n')
        _, rep = run_json(["report", "--format", "json", "--older-than", f"{WINDOW}s", "--claude-dir", str(cfg)], jenv)
        by = {s["session_id"]: s for s in rep["sessions"]}
        assert by[first]["decision"] == "keep", by[first]
        assert f"Claude Code is running it, pid {proc.pid}" in by[first]["reason"]
        p, rep = run_json(["sweep", "--json", "--older-than", f"{WINDOW}s", "--claude-dir", str(cfg)], jenv)
        assert p.returncode == 0, p.stderr
        by = {s["session_id"]: s for s in rep["sessions"]}
        assert first not in by, by[first]
        for sid in (old, stale, reused):
            assert by[sid]["decision"] == "delete" and by[sid]["result"] == "ok", by[sid]
            assert session_paths(cfg, sid) == []
        assert session_paths(cfg, first)
    finally:
        h.release.set()
    out = claude.finish(proc)
    assert out["session_id"] == first
    tr = next((cfg / "projects").glob(f"*/{first}.jsonl")).read_text()
    assert "FIRST words" in tr and "SECOND words" in tr  # nothing of the conversation was lost


def indexed_reason(sid: str) -> str | None:
    """What the daemon last decided about a session (its index row), read-only."""
    db = sqlite3.connect(f"file:{janitor_dirs().index_db}?mode=ro", uri=True, timeout=10)
    try:
        row = db.execute("SELECT reason FROM sessions WHERE session_id = ? AND decided IS NOT NULL", (sid,)).fetchone()
    except sqlite3.Error:
        return None
    finally:
        db.close()
    return row[0] if row else None


def test_a_live_turn_survives_the_daemon(claude, jenv, tmp_path):
    cfg, w = claude.config, claude.project("daemon")
    claude.api.reply = scripted({})
    old = claude.run("old one", cwd=w)["session_id"]
    age_session(cfg, old, time.time() - 60 * DAY)
    write_config(jenv, 'retention = "3s"\ngrace = "0s"\nsweep_interval = "1d"\n')
    log = open(tmp_path / "daemon.log", "w+")
    d = subprocess.Popen(
        [sys.executable, "-m", "claude_janitor", "daemon", "--claude-dir", str(cfg), "-v"],
        env=jenv,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    h = None

    def output() -> str:
        log.seek(0)
        return log.read()

    def full_sweeps() -> str | None:
        p = run_cli(["status", "--json"], jenv)
        return json.loads(p.stdout).get("last_full_sweep") if p.returncode == 0 else None

    try:
        assert wait_for(lambda: session_paths(cfg, old) == [], timeout=60), output()  # the daemon acts
        first_full = full_sweeps()
        assert first_full, output()
        # A turn started while the daemon runs: its new transcript is indexed and, 3 s after its prompt,
        # due. The expiry wake-up re-reads it and keeps it: Claude Code is running it.
        proc, h = held_turn(claude, "HELD turn", cwd=w)
        live = registry(cfg)[proc.pid]["sessionId"]
        assert wait_for(lambda: "Claude Code is running it" in (indexed_reason(live) or ""), timeout=60), (
            indexed_reason(live),
            output(),
        )
        assert "incremental sweep:" in output()
        # A full sweep (SIGHUP re-plans with one) keeps it too, its files two months old.
        age_session(cfg, live, time.time() - 60 * DAY)
        d.send_signal(signal.SIGHUP)
        assert wait_for(lambda: full_sweeps() not in (None, first_full), timeout=60), output()
        assert "Claude Code is running it" in (indexed_reason(live) or ""), indexed_reason(live)
        assert session_paths(cfg, live), output()
    finally:
        if h is not None:
            h.release.set()
        d.send_signal(signal.SIGTERM)
        assert d.wait(timeout=30) == 0, output()
        log.close()
    out = claude.finish(proc)
    tr = next((cfg / "projects").glob(f"*/{live}.jsonl"))
    assert out["session_id"] == live and "HELD turn" in tr.read_text()
