"""`janitor daemon` as a real process against a temp cache: real inotify, real signals, real sd_notify."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from claude_janitor.audit.records import iter_records
from claude_janitor.audit.verify import verify
from claude_janitor.config.paths import janitor_dirs
from claude_janitor.daemon.child import STOP_DEADLINE
from claude_janitor.fs.locks import SweepLock
from tests.helpers import run_cli, wait_for, write_config
from tests.helpers.cachegen import make_session
from tests.helpers.daemonproc import Daemon

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="inotify and signals as on Linux")

FAST = 'retention = "3s"\ngrace = "0s"\nsweep_interval = "1d"\n'


@pytest.fixture
def start(root, jenv, tmp_path):
    started: list[Daemon] = []

    def go(config: str = FAST, env: dict[str, str] | None = None, **kw) -> Daemon:
        write_config(jenv, config)
        (root / "projects").mkdir(exist_ok=True)
        d = Daemon(root, dict(jenv, **(env or {})), tmp_path, **kw)
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


def results(kind: str) -> list[tuple[str, str]]:
    return [(r["session_id"], r["result"]) for r in records(kind) if r["phase"] == "result"]


def test_daemon_indexes_new_sessions_expires_them_promptly_and_stops_cleanly(start, root, jenv, tmp_path):
    hold = tmp_path / "hold"
    hold.mkdir()
    d = start(notify=True, env={"JANITOR_TEST_PAUSE_AT": f"after-intent:{hold}"})
    assert "READY=1" in d.notices("READY=1")
    assert wait_for(d.ready, timeout=20), d.output()

    # A new session, written while the daemon runs: indexed through inotify, acted on ~3 s after its last
    # activity by the expiry wake-up (the full sweep interval is a day). The wake-up is held between its
    # intent record and its action, so what the daemon says of it is read however slow the machine is (the
    # 3 s it is indexed for are over before two `janitor status` calls end on a loaded machine).
    g = make_session(root, "/w/new", time.time())
    assert wait_for(lambda: (hold / "after-intent.reached").exists(), timeout=20), d.output()
    st = d.status()
    assert st["index_sessions"] == 1 and st["next_expiry"] and st["sweeping"]["kind"] == "incremental", st
    assert all(p.exists() for p in g.paths)
    (hold / "after-intent.go").touch()
    # Its result record comes after its files are gone (they are moved out first): wait for the record.
    assert wait_for(lambda: results("delete") == [(g.session_id, "ok")], timeout=20), d.output()
    assert not any(p.exists() for p in g.paths)
    assert wait_for(lambda: d.status()["last_sweep"]["kind"] == "incremental", timeout=10), d.output()
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
    p = run_cli(["status"], jenv)
    assert "not running" in p.stdout and p.returncode == 3  # as `systemctl is-active`
    assert verify(janitor_dirs().audit_log)[0]


LATENESS = 2.0  # the README's bound: acted on within this of its expiry, or of the end of the sweep in progress


def test_a_session_that_falls_due_during_a_wake_up_is_not_lost(start, root, jenv, tmp_path):
    # A wake-up that takes a while (here held at a test hook between its intent records and its action, as
    # a big archive would take): a session falling due meanwhile is acted on right after it, not at the next
    # full sweep a day later.
    hold = tmp_path / "hold"
    hold.mkdir()
    d = start(notify=True, env={"JANITOR_TEST_PAUSE_AT": f"after-intent:{hold}"})
    assert wait_for(d.ready, timeout=20), d.output()
    a = make_session(root, "/w/a", time.time(), side=False)
    assert wait_for(lambda: (hold / "after-intent.reached").exists(), timeout=20), d.output()
    b = make_session(root, "/w/b", time.time(), side=False)
    b_due = os.stat(b.paths[0]).st_mtime + 3
    assert wait_for(lambda: time.time() > b_due + 1.0 and d.status()["index_sessions"] == 2, timeout=20)
    st = d.status()
    assert st["sweeping"]["kind"] == "incremental" and st["next_expiry"]  # due, and why it waits
    released = time.time()
    (hold / "after-intent.go").touch()
    if not wait_for(lambda: not b.paths[0].exists(), timeout=20):
        d.proc.send_signal(signal.SIGABRT)
        d.proc.wait()
        raise AssertionError(d.output())
    assert time.time() - released < 10 * LATENESS, "acted on late"
    assert not a.paths[0].exists()
    assert wait_for(lambda: d.status()["next_expiry"] is None, timeout=10)
    assert "skipped: maximum number of running instances" not in d.output()
    assert d.stop() == 0


def test_sighup_reloads_the_config(start, root, jenv):
    g = make_session(root, "/w/a", time.time() - 600, side=False)
    d = start('retention = "1d"\ngrace = "0s"\n', notify=True)
    assert "READY=1" in d.notices("READY=1")
    assert wait_for(d.ready, timeout=20), d.output()
    assert g.paths[0].exists()
    with open(f"/proc/{d.proc.pid}/maps") as f:
        assert "zstandard" not in f.read()  # the daemon itself has not needed archive support yet
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


def told_to_stop(d: Daemon, child: int | None = None) -> bool:
    """The daemon took its SIGTERM and sent it on to its full sweep's process (any, or ``child``): once the
    kill has returned the signal is pending there, and taken before the process looks at a test hook again."""
    out = d.output()
    return "stopping: the sweep in hand stops between sessions (told process" in out and (
        child is None or f"(told process {child})" in out
    )


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
        # The signal is taken (and forwarded) while the sweep is between its intents and its first action.
        assert wait_for(lambda: told_to_stop(d), timeout=20), d.output()
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


# ---- the full sweep's own process ----------------------------------------------------------------------


def children(pid: int) -> list[int]:
    out: list[int] = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/children") as f:
            out += [int(x) for x in f.read().split()]
    return out


_born: dict[int, str] = {}  # pid -> its start time (track())


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return None


def track(pid: int) -> int:
    """Remember which process ``pid`` is now (its start time), for alive()."""
    fields = _stat(pid)
    if fields is not None:
        _born[pid] = fields[19]
    return pid


def alive(pid: int) -> bool:
    """Running (a zombie, or a pid that is gone, is not). A tracked pid must still be the same process (its
    start time): with pid_max at 32768 on a busy machine pids wrap within minutes, and a child waited for
    could seem alive again in another process."""
    fields = _stat(pid)
    if fields is None or (pid in _born and _born[pid] != fields[19]):
        return False
    return fields[0] != "Z"


def where(pid: int) -> str:
    """What a process that should have ended is doing (its state and kernel wait channel), for a failure."""
    try:
        with open(f"/proc/{pid}/status") as f:
            state = next((line.strip() for line in f if line.startswith("State:")), "?")
        with open(f"/proc/{pid}/wchan") as f:
            return f"process {pid}: {state}, waiting in {f.read() or '-'}\n"
    except OSError as e:
        return f"process {pid}: {e}\n"


def cmdline(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().decode().split("\0")


def paused_daemon(root: Path, jenv: dict[str, str], tmp_path: Path, at: str) -> tuple[Daemon, Path, int]:
    """A daemon whose first full sweep's process waits at the test hook ``at``; (daemon, hold dir, child pid)."""
    hold = tmp_path / "hold"
    hold.mkdir()
    env = dict(jenv, JANITOR_TEST_PAUSE_AT=f"{at}:{hold}")
    write_config(env, FAST)
    d = Daemon(root, env, tmp_path)
    name = at.partition("@")[0]
    assert wait_for(lambda: (hold / f"{name}.reached").exists(), timeout=20), d.output()
    kids = children(d.proc.pid)
    assert len(kids) == 1 and "_daemon-full-sweep" in cmdline(kids[0]), d.output()
    return d, hold, track(kids[0])


def orphaned_child(root: Path, jenv: dict[str, str], tmp_path: Path) -> tuple[list, Daemon, Path, int]:
    """Four expired sessions; a daemon whose full sweep's process waits before its second session; the
    daemon SIGKILLed. (sessions, daemon, hold dir, the orphaned child's pid)"""
    gs = [make_session(root, f"/w/p{i}", time.time() - 600) for i in range(4)]
    (root / "projects").mkdir(exist_ok=True)
    d, hold, child = paused_daemon(root, jenv, tmp_path, "before-session@2")
    d.proc.kill()
    d.proc.wait(timeout=10)
    return gs, d, hold, child


def assert_whole(gs: list) -> dict[str, str]:
    """No session is half removed, and every intent has its result; the results by session id."""
    for g in gs:
        there = [p.exists() for p in g.paths]
        assert all(there) or not any(there), "a session was left half done"
    recs = records("delete")
    intents = {r["session_id"] for r in recs if r["phase"] == "intent"}
    results = {r["session_id"]: r["result"] for r in recs if r["phase"] == "result"}
    assert intents == set(results)
    assert verify(janitor_dirs().audit_log)[0]
    return results


def test_sigterm_stops_the_full_sweeps_process_between_sessions(root, jenv, tmp_path):
    gs = [make_session(root, f"/w/p{i}", time.time() - 600) for i in range(4)]
    (root / "projects").mkdir(exist_ok=True)
    d, hold, child = paused_daemon(root, jenv, tmp_path, "before-session@2")
    try:
        assert child != d.proc.pid
        d.proc.send_signal(signal.SIGTERM)
        # The daemon forwards it while the child is between its first and second session.
        assert wait_for(lambda: told_to_stop(d, child), timeout=20), d.output()
        (hold / "before-session.go").touch()
        assert d.proc.wait(timeout=30) == 0, d.output()
        assert not alive(child)
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
        d.log.close()
    results = assert_whole(gs)
    assert sorted(results.values()) == ["cancelled", "cancelled", "cancelled", "ok"]
    gone = [g for g in gs if not g.paths[0].exists()]
    assert [g.session_id for g in gone] == [sid for sid, r in results.items() if r == "ok"]
    st = json.loads(janitor_dirs().daemon_state.read_text())
    assert st["stopped"] and st["last_sweep"]["process"] == child and st["last_sweep"]["acted"] == 1


def test_a_sigkilled_daemon_leaves_no_full_sweep_running(root, jenv, tmp_path):
    gs, d, hold, child = orphaned_child(root, jenv, tmp_path)
    try:
        assert alive(child)
        # The sweep lock is the child's too: no other sweep starts while it is still at work.
        assert run_cli(["sweep", "--claude-dir", str(root)], jenv).returncode == 3
        (hold / "before-session.go").touch()
        # PR_SET_PDEATHSIG: told to stop, it finishes the session in hand at most, and exits, quietly (no
        # BrokenPipeError traceback for the result nobody reads any more). Not a timing assertion: it exits
        # in well under a second, but what it still writes (audit records, the index) is fsynced, and a
        # disk shared with other test runs can stall an fsync for seconds.
        # Stuck instead, it would dump its stacks and exit after child.STOP_DEADLINE (120 s): waited for
        # longer, and failed below (the dump says where it was stuck).
        assert wait_for(lambda: not alive(child), timeout=STOP_DEADLINE + 60), where(child) + d.output()
        assert "Traceback" not in d.output() and "BrokenPipeError" not in d.output(), d.output()
        assert "Timeout (" not in d.output(), "it was stuck: " + d.output()
    finally:
        d.log.close()
    results = assert_whole(gs)
    assert sorted(results.values()) == ["cancelled", "cancelled", "cancelled", "ok"]
    # It held the sweep lock until it was gone; the next daemon finishes the job.
    with SweepLock(janitor_dirs().lock_file):
        pass
    d2 = Daemon(root, jenv, tmp_path)
    try:
        assert wait_for(lambda: not any(p.exists() for g in gs for p in g.paths), timeout=30), d2.output()
        assert d2.stop() == 0
    finally:
        if d2.proc.poll() is None:
            d2.proc.kill()
        d2.log.close()
    assert set(assert_whole(gs).values()) == {"ok"}


def test_a_burst_of_stop_signals_stops_the_full_sweeps_process_between_sessions(root, jenv, tmp_path):
    """Many SIGTERMs at once (systemd's to the whole service, the daemon's, the kernel's parent-death
    signal): the stop handler runs again inside itself. It once took a lock there (threading.Event.set) and
    a second handler waited for the first's lock for good. Now the process stops as for one signal."""
    gs, d, hold, child = orphaned_child(root, jenv, tmp_path)
    try:
        end = time.monotonic() + 3  # a stream of them: some come while the handler runs, which re-enters it
        while time.monotonic() < end:
            os.kill(child, signal.SIGTERM)
        (hold / "before-session.go").touch()
        assert wait_for(lambda: not alive(child), timeout=STOP_DEADLINE + 60), where(child) + d.output()
        assert "Timeout (" not in d.output(), "it was stuck: " + d.output()
    finally:
        d.log.close()
    results = assert_whole(gs)
    assert sorted(results.values()) == ["cancelled", "cancelled", "cancelled", "ok"]


@pytest.mark.timeout(STOP_DEADLINE + 120)
def test_a_full_sweep_process_stuck_after_its_daemon_died_dumps_its_stacks_and_exits(root, jenv, tmp_path):
    """Orphaned and stuck (here: held at a test hook that is never released), the full sweep's process does
    not keep the daemon's locks for good: past its stop deadline it writes every thread's stack to the log
    and exits; the next sweep finishes what it left."""
    jenv = dict(jenv, JANITOR_TEST_STOP_DEADLINE="2")
    gs, d, hold, child = orphaned_child(root, jenv, tmp_path)
    try:
        assert wait_for(lambda: not alive(child), timeout=50), where(child) + d.output()  # the hook holds 60 s
        out = d.output()
        assert "Timeout (0:00:02)!" in out and "testhooks.py" in out and "child_main" in out, out
    finally:
        d.log.close()
    # Its locks went with it: the next sweep recovers the interrupted run and removes the rest.
    assert run_cli(["sweep", "--claude-dir", str(root)], jenv).returncode == 0
    results = assert_whole(gs)
    assert all(not p.exists() for g in gs for p in g.paths)
    # The one it removed before it was stuck had no result record yet: the recovery records it interrupted.
    assert sorted(results.values()) == ["interrupted", "ok", "ok", "ok"], results


def test_a_crashed_full_sweep_is_reported_and_the_daemon_goes_on(root, jenv, tmp_path):
    gs = [make_session(root, f"/w/p{i}", time.time() - 600) for i in range(2)]
    (root / "projects").mkdir(exist_ok=True)
    d, hold, child = paused_daemon(root, jenv, tmp_path, "after-intent")
    try:
        os.kill(child, signal.SIGKILL)  # dies between its intents and its first action
        status = lambda: run_cli(["status", "--json"], jenv).stdout  # noqa: E731
        assert wait_for(lambda: "SIGKILL" in status(), timeout=20), d.output()
        st = json.loads(status())
        assert st["running"] and st["last_sweep"]["kind"] == "full" and st["index_trusted"] is False
        assert f"process {child} failed (killed by SIGKILL)" in st["last_sweep"]["error"]
        assert "full sweep failed" in d.output() and d.proc.poll() is None
        assert all(p.exists() for g in gs for p in g.paths)  # nothing was acted on
        # Still at work: a new transcript is indexed by its watcher.
        make_session(root, "/w/new", time.time() + 3600, side=False)
        assert wait_for(lambda: json.loads(status())["index_sessions"] == 1, timeout=10), d.output()
        assert d.proc.poll() is None
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(timeout=30) == 0, d.output()  # exit codes unchanged
        assert "Traceback" not in d.output()
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
        d.log.close()


@pytest.mark.timeout(1500)  # its own waits allow 600 s each: a loaded machine
def test_watchdog_pings_keep_flowing_during_a_full_sweep_of_a_big_cache(root, jenv, tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from gencache import generate

    cache = tmp_path / "big"
    # About half of them expired under 60d: a full sweep of some seconds, longer than two watchdog intervals
    # (its child loads the CPUs; the pings come from the daemon's own thread). 10k sessions took 45 s, 27 s
    # of them generating the cache.
    generate(cache, sessions=3_000, max_age_days=120, quiet=True)
    write_config(jenv, 'retention = "60d"\ngrace = "0s"\n')
    usec = 3_000_000  # systemd kills a service that stays silent this long
    d = Daemon(cache, dict(jenv, WATCHDOG_USEC=str(usec)), tmp_path, notify=True)
    try:

        def sweeping() -> bool:
            try:
                return any("_daemon-full-sweep" in cmdline(k) for k in children(d.proc.pid))
            except FileNotFoundError:  # it just ended
                return False

        start = end = None
        if wait_for(sweeping, timeout=600, interval=0.1):
            start = time.monotonic()
            if wait_for(lambda: not sweeping(), timeout=600, interval=0.1):
                end = time.monotonic()
        got = list(d.received)
        assert start is not None and end is not None, (got, d.output())
        pings = [t for t, m in got if m == "WATCHDOG=1" and start <= t <= end] + [end]
        gaps = [b - a for a, b in zip([start, *pings], pings, strict=False)]
        assert max(gaps) < usec / 1e6, (
            f"no ping for {max(gaps):.1f} s during a {end - start:.1f} s full sweep",
            d.output(),
        )
        assert len(pings) > 1
        assert d.stop() == 0
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
        d.log.close()


def test_one_sweeper_per_claude_dir_whatever_the_state_dir(root, jenv, tmp_path):
    gs = [make_session(root, f"/w/p{i}", time.time() - 600) for i in range(3)]
    (root / "projects").mkdir(exist_ok=True)
    other = dict(jenv, XDG_STATE_HOME=str(tmp_path / "other-state"))  # another setup, same cache
    d, hold, child = paused_daemon(root, jenv, tmp_path, "before-session@2")
    try:
        # A second daemon on the same Claude dir: refused (exit 3), whatever its state dir.
        p = run_cli(["daemon", "--claude-dir", str(root)], other, timeout=60)
        assert p.returncode == 3 and f"already sweeps {root}" in p.stderr, p.stderr
        # A one-shot sweep from that other setup while the daemon's full sweep runs: busy, exit 3.
        p = run_cli(["sweep", "--claude-dir", str(root)], other)
        assert p.returncode == 3 and f"a janitor daemon (pid {d.proc.pid}) already sweeps {root}" in p.stderr, p.stderr
        (hold / "before-session.go").touch()
        assert wait_for(lambda: not any(g.paths[0].exists() for g in gs), timeout=30), d.output()
        # Between the daemon's sweeps, a one-shot sweep with the daemon's own state dir may run (their
        # state dir's sweep lock keeps them apart); one from elsewhere never does while the daemon lives.
        assert wait_for(lambda: Daemon.status(d)["sweeping"] is None, timeout=20)
        p = run_cli(["sweep", "--claude-dir", str(root)], jenv)
        assert p.returncode == 0, p.stderr
        assert run_cli(["sweep", "--claude-dir", str(root)], other).returncode == 3
        assert d.stop() == 0
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
        d.log.close()
    assert_whole(gs)


def switches(pid: int) -> int:
    """Voluntary context switches of every thread of ``pid`` (each wake-up from a wait is one)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            total += next(int(ln.split()[1]) for ln in f if ln.startswith("voluntary_ctxt_switches"))
    return total


def test_pin_unpin_and_config_edits_reach_a_running_daemon(start, root, jenv):
    old = make_session(root, "/w/a", time.time() - 600, side=False)
    fresh = make_session(root, "/w/b", time.time(), side=False)
    assert run_cli(["pin", old.session_id], jenv).returncode == 0
    d = start('retention = "5m"\ngrace = "0s"\n')
    assert wait_for(d.ready, timeout=20), d.output()
    assert old.paths[0].exists()  # pinned
    # Idle: no wake-up at all, although the pins and config files are watched.
    time.sleep(0.5)
    before = switches(d.proc.pid)
    time.sleep(3)
    assert switches(d.proc.pid) == before, "the idle daemon woke up"
    assert run_cli(["pin", fresh.session_id], jenv).returncode == 0
    assert wait_for(lambda: f"pinned {fresh.session_id}" in d.output(), timeout=10), d.output()
    assert run_cli(["unpin", old.session_id], jenv).returncode == 0
    assert wait_for(lambda: f"unpinned {old.session_id}" in d.output(), timeout=10), d.output()
    assert wait_for(lambda: not old.paths[0].exists(), timeout=10), d.output()  # not at the next full sweep
    # An edited config is reloaded without a SIGHUP.
    assert run_cli(["unpin", fresh.session_id], jenv).returncode == 0
    write_config(jenv, 'retention = "1s"\ngrace = "0s"\n')
    assert wait_for(lambda: "the config changed on disk: reloading" in d.output(), timeout=10), d.output()
    assert wait_for(lambda: not fresh.paths[0].exists(), timeout=20), d.output()
    # A broken one is refused, and `janitor status` says so.
    write_config(jenv, 'retention = "soon"\n')
    assert wait_for(lambda: d.status().get("reload_refused"), timeout=10), d.output()
    text = run_cli(["status"], jenv).stdout
    assert "config reload refused" in text and "retention" in text
    assert d.stop() == 0


def test_a_recreated_projects_dir_and_a_late_claude_dir_are_watched_at_once(start, root, jenv, tmp_path):
    late = tmp_path / "late" / "claude"  # does not exist when the daemon starts
    write_config(jenv, FAST)
    d = Daemon(root, jenv, tmp_path)
    d2 = None
    try:
        (root / "projects").mkdir()
        assert wait_for(d.ready, timeout=20), d.output()
        shutil.rmtree(root / "projects")
        # The daemon notices, and rebuilds its index with a full sweep (which finds no projects/ to watch).
        done = 'Job "full sweep (projects/ removed)'
        assert wait_for(
            lambda: done in d.output() and "executed successfully" in d.output().split(done, 1)[1], timeout=30
        ), d.output()
        assert d.status()["watching"][str(root)] != "ok"
        g = make_session(root, "/w/a", time.time() - 600, side=False)  # projects/ made again, with a session
        # Not a timing assertion (the next periodic sweep is a day away): a loaded machine may take a while.
        assert wait_for(lambda: not g.paths[0].exists(), timeout=120), d.output()  # was: up to 600 s later
        assert d.status()["watching"][str(root)] == "ok"
        assert d.stop() == 0
        env2 = dict(jenv, XDG_STATE_HOME=str(tmp_path / "state2"))
        (tmp_path / "late-log").mkdir()
        d2 = Daemon(late, env2, tmp_path / "late-log")
        # Its first full sweep fails (no Claude dir); the retry would come 30 s later.
        assert wait_for(lambda: "full sweep failed" in d2.output(), timeout=20), d2.output()
        h = make_session(late, "/w/b", time.time() - 600, side=False)  # makes late/ and late/projects/
        assert wait_for(lambda: not h.paths[0].exists(), timeout=120), d2.output()
        # Removed by the full sweep the watcher asked for when the dir appeared, not by the retry.
        out = d2.output()
        runs = [out.find(f'Running job "full sweep ({why})') for why in ("watching again", "projects/ is back")]
        woke = [i for i in runs if i >= 0]
        retry = out.find('Running job "full sweep (retry)')
        assert woke and (retry < 0 or retry > min(woke)), out
        assert d2.stop() == 0
    finally:
        for x in (d, d2):
            if x is not None:
                if x.proc.poll() is None:
                    x.proc.kill()
                x.log.close()


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def test_big_wake_ups_run_in_a_process_of_their_own_and_leave_no_threads_behind(start, root, jenv):
    make_session(root, "/w/keep", time.time() + 3600, side=False)  # not every session at once: no guard
    d = start()
    assert wait_for(d.ready, timeout=20), d.output()
    base = threads(d.proc.pid)
    for n in (5, 300, 300):  # a small wake-up acts in the daemon, a big one in a process of its own
        t = time.time()
        gs = [make_session(root, f"/w/p{i % 7}", t, side=i % 2 == 0) for i in range(n)]
        paths = [p for g in gs for p in g.paths]
        assert wait_for(lambda: not any(p.exists() for p in paths), timeout=60), d.output()  # noqa: B023
        assert wait_for(lambda: d.status()["index_sessions"] == 1 and not d.status().get("sweeping"), timeout=20)
        assert threads(d.proc.pid) <= base, "threads left behind"
        assert not children(d.proc.pid)
    assert "wake-up: process" in d.output()
    results = [r["result"] for r in records("delete") if r["phase"] == "result"]
    assert results.count("ok") == 605 and len(results) == 605
    assert d.stop() == 0


def test_the_daemons_own_log_file_is_rotated(root, jenv, tmp_path):
    # launchd has no journal: the daemon writes its log file itself (`--log-file`, as the plist starts it) and
    # rotates it: PATH, PATH.1 … PATH.3, nothing older.
    write_config(jenv, FAST)
    (root / "projects").mkdir()
    log = tmp_path / "logs" / "daemon.log"
    log.parent.mkdir()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "claude_janitor",
            "daemon",
            "--claude-dir",
            str(root),
            "-v",
            "--log-file",
            str(log),
            "--log-max-bytes",
            "4096",
        ],
        env=jenv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for i in range(400):  # each new session: a few debug lines
            make_session(root, f"/w/p{i % 9}", time.time() + 3600, side=False)
            if i % 20 == 19 and wait_for(lambda: Path(f"{log}.3").exists(), timeout=1):
                break
        assert wait_for(lambda: Path(f"{log}.3").exists(), timeout=30)
        assert wait_for(lambda: run_cli(["status", "--json"], jenv).returncode == 0, timeout=20)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    names = sorted(p.name for p in log.parent.iterdir())
    assert names == ["daemon.log", "daemon.log.1", "daemon.log.2", "daemon.log.3"]
    for p in log.parent.iterdir():
        assert p.stat().st_size < 4096 + 2048  # rotated once past the limit (plus the record that crossed it)
    assert "daemon stopped" in log.read_text()  # the current file goes on after each rotation
