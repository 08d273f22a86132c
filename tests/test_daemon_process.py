"""`janitor daemon` as a real process against a temp cache: real inotify, real signals, real sd_notify."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cachegen import make_session
from conftest import run_cli, wait_for, write_config

from janitor.audit import iter_records, verify
from janitor.paths import janitor_dirs
from janitor.safefs import SweepLock

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="inotify and signals as on Linux")

FAST = 'retention = "3s"\ngrace = "0s"\nsweep_interval = "1d"\n'


class Daemon:
    def __init__(self, root: Path, env: dict[str, str], tmp: Path, *, notify: bool = False) -> None:
        self.env = dict(env)
        self.sock = None
        if notify:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            name = f"janitor-test-{os.getpid()}-{time.monotonic_ns()}"
            self.sock.bind("\0" + name)
            self.sock.settimeout(20)
            self.env["NOTIFY_SOCKET"] = "@" + name
        self.log = open(tmp / "daemon.log", "w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "janitor", "daemon", "--claude-dir", str(root), "-v"],
                                     env=self.env, stdout=self.log, stderr=subprocess.STDOUT)

    def notices(self, until: str) -> list[str]:
        """Messages sent to $NOTIFY_SOCKET, up to and including ``until`` (or the end)."""
        assert self.sock is not None
        got: list[str] = []
        try:
            while until not in got:
                got.append(self.sock.recv(4096).decode())
        except (TimeoutError, OSError):
            pass
        return got

    def status(self) -> dict:
        p = run_cli(["status", "--json"], self.env)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    def ready(self) -> bool:
        st = self.status()
        return st["running"] and st.get("pid") == self.proc.pid and bool(st.get("last_full_sweep"))

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        finally:
            if self.sock:
                self.sock.close()


@pytest.fixture
def start(root, jenv, tmp_path):
    started: list[Daemon] = []

    def go(config: str = FAST, **kw) -> Daemon:
        write_config(jenv, config)
        (root / "projects").mkdir(exist_ok=True)
        d = Daemon(root, jenv, tmp_path, **kw)
        started.append(d)
        return d

    yield go
    for d in started:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
        d.log.close()


def records(kind: str) -> list[dict]:
    return [r for r in iter_records(janitor_dirs().audit_log) if r.get("action") == kind]


def test_daemon_indexes_new_sessions_expires_them_promptly_and_stops_cleanly(start, root, jenv):
    d = start(notify=True)
    assert "READY=1" in d.notices("READY=1")
    assert wait_for(d.ready, timeout=20), d.output()

    # A new session, written while the daemon runs: indexed through inotify, acted on ~3 s after its last
    # activity by the expiry wake-up (the full sweep interval is a day).
    g = make_session(root, "/w/new", time.time())
    assert wait_for(lambda: d.status()["index_sessions"] == 1, timeout=10), d.output()
    assert d.status()["next_expiry"]
    assert wait_for(lambda: not any(p.exists() for p in g.paths), timeout=20), d.output()
    done = [r for r in records("delete") if r["phase"] == "result"]
    assert [(r["session_id"], r["result"]) for r in done] == [(g.session_id, "ok")]
    st = d.status()
    assert st["last_sweep"]["kind"] == "incremental" and st["last_sweep"]["acted"] == 1
    assert st["index_sessions"] == 0

    # Someone else removes a session the daemon knows: audited as external.
    h = make_session(root, "/w/other", time.time() + 3600, side=False)  # "future": not due for an hour
    assert wait_for(lambda: d.status()["index_sessions"] == 1, timeout=10), d.output()
    h.paths[0].unlink()
    assert wait_for(lambda: records("external-delete"), timeout=10), d.output()
    assert records("external-delete")[0]["session_id"] == h.session_id

    # One daemon per state dir.
    p = run_cli(["daemon", "--claude-dir", str(root)], jenv, timeout=30)
    assert p.returncode == 3 and "already running" in p.stderr

    text = run_cli(["status"], jenv).stdout
    assert f"running (pid {d.proc.pid})" in text and "next sweep" in text and "index: " in text

    d.proc.send_signal(signal.SIGTERM)
    assert "STOPPING=1" in d.notices("STOPPING=1")
    assert d.stop() == 0, d.output()
    st = json.loads(janitor_dirs().daemon_state.read_text())
    assert st["stopped"] and st["next_sweep"] is None
    assert "not running" in run_cli(["status"], jenv).stdout
    assert verify(janitor_dirs().audit_log)[0]


def test_sighup_reloads_the_config(start, root, jenv):
    g = make_session(root, "/w/a", time.time() - 600, side=False)
    d = start('retention = "1d"\ngrace = "0s"\n', notify=True)
    assert "READY=1" in d.notices("READY=1")
    assert wait_for(d.ready, timeout=20), d.output()
    assert g.paths[0].exists()
    write_config(jenv, 'retention = "5m"\ngrace = "0s"\n')
    d.proc.send_signal(signal.SIGHUP)
    got = d.notices("READY=1")
    assert any(n.startswith("RELOADING=1\nMONOTONIC_USEC=") for n in got) and got[-1] == "READY=1"
    assert wait_for(lambda: not g.paths[0].exists(), timeout=20), d.output()
    # A broken config is refused on reload; the daemon keeps going with the previous one.
    write_config(jenv, 'retention = "soon"\n')
    d.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "config not reloaded" in d.output(), timeout=10)
    assert d.proc.poll() is None
    assert d.stop(signal.SIGINT) == 0  # Ctrl-C in a terminal stops it as cleanly as SIGTERM
    assert "SIGINT: stopping" in d.output() and "Traceback" not in d.output()


def test_the_daemon_waits_politely_for_a_one_shot_sweep(start, root, jenv):
    g = make_session(root, "/w/a", time.time() - 600, side=False)
    with SweepLock(janitor_dirs().lock_file):
        d = start()
        assert wait_for(lambda: "another sweep holds" in d.output(), timeout=20), d.output()
        assert g.paths[0].exists()
        # ...and a one-shot sweep started meanwhile is told the lock is busy (exit 3), not blocked.
        p = run_cli(["sweep", "--claude-dir", str(root)], jenv)
        assert p.returncode == 3
    assert wait_for(lambda: not g.paths[0].exists(), timeout=20), d.output()
    assert d.stop() == 0


def test_sigterm_mid_sweep_leaves_no_session_half_done(start, root, jenv, tmp_path):
    gs = [make_session(root, "/w/a", time.time() - 600) for _ in range(3)]
    hold = tmp_path / "hold"
    hold.mkdir()
    jenv = dict(jenv, JANITOR_TEST_PAUSE_AT=f"after-intent:{hold}")
    write_config(jenv, FAST)
    d = Daemon(root, jenv, tmp_path)
    try:
        assert wait_for(lambda: (hold / "after-intent.reached").exists(), timeout=20), d.output()
        d.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)  # the signal is taken while the sweep is between its intents and its first action
        (hold / "after-intent.go").touch()
        assert d.proc.wait(timeout=30) == 0, d.output()
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
        d.log.close()
    recs = records("delete")
    intents = {r["session_id"] for r in recs if r["phase"] == "intent"}
    results = {r["session_id"]: r["result"] for r in recs if r["phase"] == "result"}
    assert intents == set(results) == {g.session_id for g in gs}  # every intent has its result
    for g in gs:
        gone = [p.exists() for p in g.paths]
        assert all(gone) or not any(gone), "a session was left half done"
    assert set(results.values()) <= {"ok", "cancelled"} and "cancelled" in results.values()
    assert verify(janitor_dirs().audit_log)[0]


def test_a_bad_config_stops_the_daemon_at_start(root, jenv):
    write_config(jenv, 'sweep_cron = "every tuesday"\n')
    p = run_cli(["daemon", "--claude-dir", str(root)], jenv, timeout=30)
    assert p.returncode == 2 and "sweep_cron" in p.stderr
