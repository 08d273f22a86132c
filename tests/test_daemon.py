"""The daemon's logic in-process, on real files with real inotify (the scheduler is not started: the tests
call the jobs themselves). The daemon as a real process is in test_daemon_process.py."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from claude_janitor.audit.records import iter_records
from claude_janitor.config.paths import janitor_dirs
from claude_janitor.daemon import clock as dclock
from claude_janitor.daemon import instance, notify, schedule, state, work
from claude_janitor.daemon import main as dm
from claude_janitor.daemon.batch import Change
from claude_janitor.daemon.index import Entry, count_sessions
from claude_janitor.errors import ConfigError, LockBusy
from claude_janitor.fs.locks import SweepLock
from claude_janitor.model import Action, Policy, Rule, Window
from claude_janitor.sweep.plan import Env
from tests.helpers import run_cli, wait_for, write_config
from tests.helpers.cachegen import DAY, make_session, set_times
from tests.helpers.races import HOLD, intact_or_gone

H = 3600.0
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")


class Clock(dclock.Clock):
    """The daemon's "now": real time, moved ahead by a test instead of waiting for a due time."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def time(self) -> float:
        return time.time() + self.ahead

    def reach(self, t: float | None) -> None:
        self.ahead = max(self.ahead, (t or 0.0) - time.time() + 0.05)


@pytest.fixture
def mkdaemon(jenv, root):
    made = []

    def make(config: str = 'retention = "1h"\ngrace = "0s"\n', *, watch: bool = True) -> dm.Daemon:
        write_config(jenv, config)
        (root / "projects").mkdir(exist_ok=True)
        d = dm.Daemon(Env(roots=[root], dirs=janitor_dirs()), debounce=0.05, clock=Clock())
        if watch:
            assert d.watcher.start() == {}
        made.append(d)
        return d

    yield make
    for d in made:
        d.watcher.stop()
        d.index.close()


def audit(kind: str | None = None) -> list[dict]:
    recs = list(iter_records(janitor_dirs().audit_log))
    return [r for r in recs if kind is None or r.get("action") == kind]


def indexed(d: dm.Daemon, sid: str) -> Entry | None:
    return next((e for e in d.index.all() if e.session_id == sid), None)


def test_full_sweep_builds_the_index_and_incremental_sweeps_act_on_due_sessions(mkdaemon, root, monkeypatch):
    now = time.time()
    old = make_session(root, "/w/a", now - 2 * H)
    soon = make_session(root, "/w/a", now - H + 2)  # expires in 2 s
    other = make_session(root, "/w/b", now - 120)
    d = mkdaemon()
    d.full_sweep()
    assert not old.paths[0].exists() and soon.paths[0].exists()
    assert d.untrusted is None and d.last_sweep["kind"] == "full" and d.last_sweep["acted"] == 1
    e = indexed(d, soon.session_id)
    assert e.due == pytest.approx(now + 2, abs=1)  # exactly when it expires
    assert indexed(d, old.session_id) is None and d.index.count() == 2
    d.clock.reach(e.due)
    seen: list = []
    real = work.rescan
    monkeypatch.setattr(work, "rescan", lambda root, wanted: seen.append(sorted(wanted)) or real(root, wanted))
    d.wake()
    assert seen == [[(soon.project, soon.session_id)]]  # only the due session was read again
    assert not any(p.exists() for p in soon.paths)
    assert other.paths[0].exists()
    assert d.last_sweep["kind"] == "incremental" and d.last_sweep["acted"] == 1
    assert indexed(d, soon.session_id) is None
    results = [r for r in audit("delete") if r["phase"] == "result"]
    assert {r["session_id"] for r in results} == {old.session_id, soon.session_id}
    assert all(r["result"] == "ok" for r in results)
    d.judge_gone()
    assert audit("external-delete") == []  # the janitor's own deletions are not external


def test_a_wake_up_keeps_the_due_sessions_other_processes_lock_or_write(mkdaemon, root):
    """A wake-up reads what other processes use on a thread of its own, while it re-reads the due sessions
    (activity.scan_in_use_ahead): a transcript locked (flock) or open for writing by another process, and a
    file locked deep in a session's folder, keep their sessions; the free one due with them goes. Fails if
    the snapshot the wake-up decides with misses /proc/locks or /proc/*/fd."""
    now = time.time()
    d = mkdaemon()
    gs = [make_session(root, f"/w/{c}", now - H + 3) for c in "abcd"]  # all four due in 3 s
    deep = root / "projects" / gs[2].project / gs[2].session_id / "subagents" / "agent-a1.jsonl"
    deep.parent.mkdir(parents=True, exist_ok=True)
    deep.write_text("{}\n")
    d.full_sweep()
    assert all(indexed(d, g.session_id) is not None for g in gs)
    holders = [
        subprocess.Popen([sys.executable, "-c", HOLD, str(path), *how], stdout=subprocess.PIPE, text=True)
        for path, how in ((gs[0].paths[0], ("r", "flock")), (gs[1].paths[0], ("a", "open")), (deep, ("r", "flock")))
    ]
    try:
        for h in holders:
            assert h.stdout is not None and h.stdout.readline().strip() == "ready"
        d.clock.reach(max(indexed(d, g.session_id).due for g in gs))
        d.wake()
    finally:
        for h in holders:
            h.kill()
            h.wait()
    assert d.last_sweep["kind"] == "incremental" and d.last_sweep["acted"] == 1
    assert [intact_or_gone(g.paths) for g in gs] == ["intact", "intact", "intact", "gone"]
    assert indexed(d, gs[3].session_id) is None
    assert all(indexed(d, g.session_id) is not None for g in gs[:3])


def test_new_transcripts_are_indexed_with_a_lower_bound_of_their_expiry(mkdaemon, root):
    d = mkdaemon('retention = "2h"\ngrace = "0s"\n\n[[rule]]\nproject = "/w/short*"\nretention = "30m"\n')
    d.full_sweep()
    t0 = time.time()
    g = make_session(root, "/w/long", t0, side=False)
    assert wait_for(lambda: indexed(d, g.session_id) is not None)
    e = indexed(d, g.session_id)
    # The project is not known before its transcript is read: the shortest window anywhere is assumed.
    assert e.due == pytest.approx(t0 + 1800, abs=2) and e.rel == f"projects/{g.project}/{g.session_id}.jsonl"
    d.wake()  # not due yet: nothing read, nothing changed
    assert indexed(d, g.session_id).due == pytest.approx(t0 + 1800, abs=2)
    d.index.put([dataclasses.replace(e, due=time.time() - 1)])
    d.wake()  # due: read and decided for real; now due exactly at its 2h expiry
    assert indexed(d, g.session_id).due == pytest.approx(t0 + 2 * H, abs=2)
    assert g.paths[0].exists()


def test_a_removal_a_sweep_announced_is_awaited_for_the_patience_then_judged(mkdaemon, root):
    from claude_janitor.daemon.gone import GONE_PATIENCE
    from claude_janitor.sweep.execute import audit_log

    a = make_session(root, "/w/a", time.time() - 60, side=False)
    d = mkdaemon()
    d.full_sweep()
    # A janitor sweep says it is about to delete it, and says nothing more (slow, or killed): the transcript
    # goes meanwhile. Its result is waited for, for GONE_PATIENCE of the daemon's clock.
    audit_log(d.env).append(
        [
            {
                "action": "delete",
                "phase": "intent",
                "session_id": a.session_id,
                "root": str(root),
                "project": a.project,
                "paths": [],
                "bytes": 0,
                "reason": "x",
                "result": "pending",
            }
        ]
    )
    a.paths[0].unlink()
    assert wait_for(lambda: bool(d.gone))
    d.judge_gone()
    assert audit("external-delete") == [] and d.gone  # awaited
    d.clock.reach(d.clock.time() + GONE_PATIENCE - 5)
    d.judge_gone()
    assert audit("external-delete") == [] and d.gone  # still awaited
    d.clock.reach(d.clock.time() + 10)
    d.judge_gone()
    # Judged: not someone else's (a sweep said it meant to remove it; recovery settles that intent).
    assert not d.gone and audit("external-delete") == []


def test_deletions_by_others_are_audited_as_external_once(mkdaemon, root):
    now = time.time()
    a = make_session(root, "/w/a", now - 60)
    b = make_session(root, "/w/a", now - 60)
    d = mkdaemon()
    d.full_sweep()
    for p in a.paths:  # Claude Code's own cleanup removes the session
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    assert wait_for(lambda: bool(d.gone))
    d.judge_gone()
    ext = audit("external-delete")
    assert [r["session_id"] for r in ext] == [a.session_id]
    assert ext[0]["detected_by"] == "watch" and ext[0]["paths"] == [f"projects/{a.project}/{a.session_id}.jsonl"]
    assert ext[0]["bytes"] > 0 and indexed(d, a.session_id).rel is None
    # What may be left of it is looked at again: nothing is, so it leaves the index without another record.
    d.clock.reach(indexed(d, a.session_id).due)
    d.wake()
    d.judge_gone()
    assert indexed(d, a.session_id) is None and len(audit("external-delete")) == 1
    # Gone while unwatched: the full scan finds it.
    d.watcher.stop()
    b.paths[0].unlink()
    d.full_sweep()
    d.judge_gone()
    ext = audit("external-delete")
    assert [(r["session_id"], r["detected_by"]) for r in ext] == [(a.session_id, "watch"), (b.session_id, "full scan")]
    d.full_sweep()
    d.judge_gone()
    assert len(audit("external-delete")) == 2


def test_a_one_shot_sweeps_deletions_are_not_external(mkdaemon, root, jenv):
    now = time.time()
    a = make_session(root, "/w/a", now - 1800)
    d = mkdaemon()
    d.full_sweep()
    assert indexed(d, a.session_id) is not None
    p = run_cli(["sweep", "--claude-dir", str(root), "--older-than", "10m"], jenv)
    assert p.returncode == 0, p.stdout + p.stderr
    assert not a.paths[0].exists()
    assert wait_for(lambda: bool(d.gone))
    d.judge_gone()
    assert audit("external-delete") == [] and indexed(d, a.session_id) is None


def test_a_moved_transcript_is_not_a_deletion(mkdaemon, root):
    now = time.time()
    a = make_session(root, "/w/a", now - 60, side=False)
    d = mkdaemon()
    d.full_sweep()
    dest = root / "projects" / "-w-elsewhere"
    dest.mkdir()
    os.rename(a.paths[0], dest / a.paths[0].name)
    assert wait_for(lambda: bool(d.gone) and any(e.project == "-w-elsewhere" for e in d.index.all()))
    d.judge_gone()
    assert audit("external-delete") == []
    assert [e.project for e in d.index.find_sid(str(root), a.session_id) if e.rel] == ["-w-elsewhere"]
    d.clock.reach(d.index.next_due() or 0)
    d.wake()  # the old place is looked at again: nothing left there
    d.judge_gone()
    assert [e.project for e in d.index.find_sid(str(root), a.session_id)] == ["-w-elsewhere"]
    assert audit("external-delete") == []


def test_keep_last_sessions_are_looked_at_again_when_a_newer_one_appears(mkdaemon, root):
    now = time.time()
    a = make_session(root, "/w/a", now - 3 * H, side=False)
    d = mkdaemon('retention = "1h"\ngrace = "0s"\nkeep_last = 1\n')
    d.full_sweep()
    assert a.paths[0].exists() and indexed(d, a.session_id).keep_last
    assert indexed(d, a.session_id).due is None
    b = make_session(root, "/w/a", now, side=False)
    assert wait_for(lambda: indexed(d, b.session_id) is not None)
    assert wait_for(lambda: indexed(d, a.session_id).due is not None)
    d.clock.reach(indexed(d, a.session_id).due)
    d.wake()
    assert not a.paths[0].exists() and b.paths[0].exists()


def test_a_lost_event_stream_makes_the_next_wake_up_a_full_scan(mkdaemon, root):
    d = mkdaemon()
    d.full_sweep()
    assert d.untrusted is None
    d.on_overflow()
    assert d.untrusted
    d.wake()
    assert d.last_sweep["kind"] == "full" and d.untrusted is None


def test_without_file_events_the_daemon_relies_on_full_scans(jenv, root):
    write_config(jenv, 'retention = "1h"\ngrace = "0s"\n')
    (root / "projects").mkdir()
    a = make_session(root, "/w/a", time.time() - 2 * H, side=False)
    d = dm.Daemon(Env(roots=[root], dirs=janitor_dirs()), observer_factory=NoInotify)
    try:
        assert "limit" in d.watcher.start()[str(root)]
        d.wake()
        assert d.last_sweep["kind"] == "full" and d.untrusted  # still not trusted: not watched
        assert not a.paths[0].exists()
        d.write_state()
        st = json.loads(janitor_dirs().daemon_state.read_text())
        assert "limit" in st["watching"][str(root)] and st["index_trusted"] is False
    finally:
        d.watcher.stop()
        d.index.close()


class NoInotify:
    def __init__(self) -> None:
        raise OSError(24, "inotify instance limit reached")


def test_the_mass_removal_guard_holds_the_daemon_back(mkdaemon, root):
    now = time.time()
    gs = [make_session(root, f"/w/p{i}", now - 5 * H, side=False) for i in range(6)]
    d = mkdaemon()
    d.full_sweep()
    assert all(g.paths[0].exists() for g in gs)
    assert all(indexed(d, g.session_id).due is None for g in gs)  # left to a person (or the next full sweep)
    assert audit("delete") == []


def test_the_guard_holds_a_wake_up_that_would_remove_every_indexed_session(mkdaemon, root):
    now = time.time()
    gs = [make_session(root, f"/w/p{i}", now - H + 2, side=False) for i in range(6)]
    d = mkdaemon()
    d.full_sweep()
    d.clock.reach(d.index.next_due())
    d.wake()  # all of them due at once, and nothing else indexed: the sign of a clock that jumped
    assert all(g.paths[0].exists() for g in gs) and audit("delete") == []


def test_a_full_sweep_accounts_for_its_own_audit_records(mkdaemon, root, jenv):
    now = time.time()
    a = make_session(root, "/w/a", now - 2 * H)
    b = make_session(root, "/w/a", now - 60)
    d = mkdaemon('retention = "1h"\ngrace = "0s"\naction = "archive"\n')
    d.full_sweep()
    assert not a.paths[0].exists()
    # The follower stands at the end of the log: the next wake-up reads nothing back...
    log = janitor_dirs().audit_log
    assert d.follower.pos == log.stat().st_size and d.index.get_meta("audit_pos").endswith(f":{d.follower.pos}")
    assert d.follower.acts == {}  # nothing parsed back, yet its removals are not taken for someone else's
    d.watcher.flush()
    d.judge_gone()
    assert audit("external-delete") == []
    # ...and a restore written after it is still seen (the restored session is not archived again at once).
    p = run_cli(["restore", "--claude-dir", str(root), "--no-pin", a.session_id], jenv)
    assert p.returncode == 0, p.stderr
    assert wait_for(lambda: indexed(d, a.session_id) is not None)
    d.wake()
    assert a.paths[0].exists() and b.paths[0].exists()


def test_a_busy_lock_is_retried_later_not_waited_for(mkdaemon, root):
    a = make_session(root, "/w/a", time.time() - 2 * H, side=False)
    d = mkdaemon()
    with SweepLock(janitor_dirs().lock_file):
        t = time.monotonic()
        d.full_sweep()
        assert time.monotonic() - t < 1.0
        assert a.paths[0].exists() and d.backoff.not_before > d.clock.time()
    d.full_sweep()
    assert not a.paths[0].exists() and d.backoff.not_before == 0.0


def test_a_broken_settings_file_keeps_what_depends_on_it_and_the_daemon_goes_on(mkdaemon, root):
    a = make_session(root, "/w/a", time.time() - 40 * 24 * H, side=False)  # Claude Code's window: 30 days
    b = make_session(root, "/w/b", time.time() - 2 * H, side=False)  # a rule's window: not Claude Code's
    (root / "settings.json").write_text("{ not json")
    d = mkdaemon('grace = "0s"\n[[rule]]\nproject = "/w/b"\nretention = "1h"\n')
    d.full_sweep()
    assert a.paths[0].exists() and not b.paths[0].exists() and d.backoff.failures == 0
    (root / "settings.json").write_text("{}")
    d.full_sweep()
    assert not a.paths[0].exists() and d.backoff.failures == 0


# ---- settings, state, notification ---------------------------------------------------------------


def test_load_settings(jenv, root):
    env = Env(roots=[root], dirs=janitor_dirs())
    write_config(jenv, 'sweep_interval = "6h"\n')
    assert schedule.load_settings(env)[1] == schedule.Schedule(6 * H)
    write_config(jenv, 'sweep_cron = "30 3 * * *"\n')
    sched = schedule.load_settings(env)[1]
    assert sched.cron == "30 3 * * *" and "cron" in sched.describe()
    fields = {f.name: str(f) for f in sched.trigger().fields}
    assert (fields["hour"], fields["minute"]) == ("3", "30")
    write_config(jenv, "")
    assert schedule.load_settings(env)[1] == schedule.Schedule(86400.0)
    write_config(jenv, 'sweep_cron = "61 * * * *"\n')
    with pytest.raises(ConfigError, match="sweep_cron"):
        schedule.load_settings(env)
    write_config(jenv, 'sweep_cron = "0 3 * * *"\nsweep_interval = "1d"\n')
    with pytest.raises(ConfigError, match="not both"):
        schedule.load_settings(env)
    write_config(jenv, 'sweep_interval = "often"\n')
    with pytest.raises(ConfigError, match="sweep_interval"):
        schedule.load_settings(env)


def test_managed_policy_sets_the_whole_schedule(jenv, root):
    env = Env(roots=[root], dirs=janitor_dirs())
    write_config(jenv, 'sweep_interval = "6h"\n')
    managed = Path(jenv["CLAUDE_JANITOR_POLICY"])
    managed.parent.mkdir(parents=True, exist_ok=True)
    managed.write_text('sweep_cron = "15 2 * * *"\n')
    sched = schedule.load_settings(env)[1]
    assert sched.cron == "15 2 * * *" and sched.interval is None  # the user's interval is not mixed in
    managed.write_text('sweep_cron = "99 * * * *"\n')
    with pytest.raises(ConfigError, match=str(managed)):
        schedule.load_settings(env)


def test_shortest_expiry():
    assert work.shortest_expiry(Policy(grace=0)) == 86400.0  # Claude Code's window is at least a day
    assert work.shortest_expiry(Policy(grace=7200, retention=Window(60, "x"))) == 7200
    assert work.shortest_expiry(Policy(grace=0, retention=Window(None, "x"))) is None
    pol = Policy(
        grace=0,
        retention=Window(None, "x"),
        rules=[Rule("/a/*", 600.0, retention_set=True), Rule("/b/*", None, retention_set=True)],
    )
    assert work.shortest_expiry(pol) == 600.0
    assert work.uses_keep_last(Policy(rules=[Rule("/a", None, Action.DELETE, keep_last=2)]))


def test_sd_notify(tmp_path, monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify.sd_notify("READY=1") is False
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert notify.sd_notify("READY=1") is True
        assert s.recv(100) == b"READY=1"
    name = f"janitor-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify.sd_notify("STOPPING=1") is True
        assert s.recv(100) == b"STOPPING=1"
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert notify.sd_notify("READY=1") is False


def test_a_state_change_waits_for_room_in_a_full_manager_queue_and_a_status_line_does_not(tmp_path, monkeypatch):
    """A manager slow to read (under load) lets its short datagram queue fill: READY=1 dropped there left
    the unit "activating" until systemd killed it. It waits for room; STATUS= is dropped at once."""
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        queued = 0
        while notify.sd_notify(f"STATUS=filler {queued}"):  # fill the queue: the first refused is dropped
            queued += 1
            assert queued < 100_000
        sent: list[bool] = []
        t = threading.Thread(target=lambda: sent.append(notify.sd_notify("READY=1")))
        t.start()
        t.join(0.2)
        assert t.is_alive() and not sent  # waiting for room, not dropped
        got = [s.recv(100) for _ in range(queued + 1)]  # room made: READY=1 goes in behind the fillers
        t.join(10)
        assert sent == [True]
        assert got[:queued] == [f"STATUS=filler {i}".encode() for i in range(queued)]
        assert got[queued] == b"READY=1"


def test_status_and_the_daemon_lock(jenv):
    dirs = janitor_dirs()
    st = state.status(dirs)
    assert st["running"] is False and st["index_sessions"] is None
    lock = instance.DaemonLock(dirs)
    lock.acquire()
    try:
        assert instance.running_pid(dirs) == os.getpid()
        assert state.status(dirs)["running"] is True
        with pytest.raises(LockBusy, match="already running"):
            instance.DaemonLock(dirs).acquire()
    finally:
        lock.release()
    assert instance.running_pid(dirs) is None


def test_old_sessions_of_a_quiet_cache_need_no_wake_up(mkdaemon, root):
    make_session(root, "/w/a", time.time() - 10 * DAY, side=False)
    d = mkdaemon('retention = "forever"\n')
    d.full_sweep()
    assert d.index.count() == 1 and d.index.next_due() is None


def test_plan_for_decides_like_a_full_sweep(jenv, root):
    from claude_janitor.sweep import plan as sweep
    from tests.helpers.cachegen import make_cache

    now = time.time()
    make_cache(root, now, projects=3, per_project=4)
    write_config(jenv, 'retention = "30d"\ngrace = "1h"\nkeep_last = 1\n')
    env = Env(roots=[root], dirs=janitor_dirs())
    plan, pol, _ = sweep.build_plan(env, now)
    sessions = [d.session for d in plan.decisions]
    for s in sessions:
        s.pinned, s.in_use = False, None
    again = work.plan_for(env, sessions, now, schedule.load_settings(env)[0])
    assert [(d.session.key, d.action, d.reason, d.expires_at) for d in again.decisions] == [
        (d.session.key, d.action, d.reason, d.expires_at) for d in plan.decisions
    ]


def test_the_daemon_archives_when_the_action_is_archive(mkdaemon, root):
    now = time.time()
    a = make_session(root, "/w/a", now - 2 * H)
    b = make_session(root, "/w/a", now - H + 2)
    d = mkdaemon('retention = "1h"\ngrace = "0s"\naction = "archive"\n')
    d.full_sweep()
    d.clock.reach(indexed(d, b.session_id).due)
    d.wake()
    assert not a.paths[0].exists() and not b.paths[0].exists()
    done = [r for r in audit("archive") if r["phase"] == "result"]
    assert {r["session_id"] for r in done} == {a.session_id, b.session_id}
    assert all(r["result"] == "ok" and Path(r["archive"]).is_file() for r in done)


def test_the_guard_judges_a_wake_up_against_every_indexed_session(mkdaemon, root):
    now = time.time()
    keep = [make_session(root, f"/w/k{i}", now, side=False) for i in range(2)]
    due = [make_session(root, f"/w/d{i}", now - H + 2, side=False) for i in range(5)]
    d = mkdaemon()
    d.full_sweep()
    d.clock.reach(d.index.next_due())
    d.wake()  # the 5 due sessions are all of the wake-up's plan, but not all of the cache: not a mass removal
    assert not any(g.paths[0].exists() for g in due) and all(g.paths[0].exists() for g in keep)


def test_a_restored_session_waits_for_the_next_full_sweep(mkdaemon, root, jenv):
    a = make_session(root, "/w/a", time.time() - 2 * H)
    d = mkdaemon('retention = "1h"\ngrace = "0s"\naction = "archive"\n')
    d.full_sweep()
    assert not a.paths[0].exists()
    p = run_cli(["restore", "--claude-dir", str(root), "--no-pin", a.session_id], jenv)
    assert p.returncode == 0, p.stderr
    assert a.paths[0].exists()
    assert wait_for(lambda: indexed(d, a.session_id) is not None)
    d.wake()  # just restored: not archived again at once
    assert a.paths[0].exists()
    d.full_sweep()  # restored with the restore time: a fresh window, as `janitor sweep` would give it
    assert a.paths[0].exists() and indexed(d, a.session_id).due > time.time() + 3000


def test_the_full_sweep_runs_in_a_process_of_its_own(mkdaemon, root):
    d = mkdaemon()
    a = make_session(root, "/w/a", time.time() - 2 * H)  # written while watched: indexed by the watcher
    assert wait_for(lambda: indexed(d, a.session_id) is not None)
    d.full_sweep()
    assert not any(p.exists() for p in a.paths)
    child = d.last_sweep["process"]
    assert child != os.getpid() and d.children.proc is None and d.last_sweep["acted"] == 1
    assert not os.path.exists(f"/proc/{child}")  # waited for: not even a zombie
    results = [r for r in audit("delete") if r["phase"] == "result"]
    assert [(r["session_id"], r["result"]) for r in results] == [(a.session_id, "ok")]
    d.watcher.flush()
    d.judge_gone()  # the watcher saw the transcript go: the sweep's own removal, not an external one
    assert audit("external-delete") == [] and not d.gone and d.index.count() == 0


def test_the_in_process_full_sweep_does_the_same(mkdaemon, jenv, root):
    write_config(jenv, 'retention = "1h"\ngrace = "0s"\n')
    (root / "projects").mkdir(exist_ok=True)
    a = make_session(root, "/w/a", time.time() - 2 * H)
    b = make_session(root, "/w/a", time.time() - 60)
    d = dm.Daemon(Env(roots=[root], dirs=janitor_dirs()), debounce=0.05, full_in_child=False)
    try:
        d.full_sweep()
        assert "process" not in d.last_sweep and d.last_sweep["acted"] == 1
        assert not a.paths[0].exists() and indexed(d, b.session_id) is not None
    finally:
        d.index.close()


def test_what_goes_while_the_full_sweeps_process_runs_is_judged(mkdaemon, root, tmp_path, monkeypatch):
    import threading

    now = time.time()
    make_session(root, "/w/a", now - 2 * H)
    kept = make_session(root, "/w/b", now - 60)
    d = mkdaemon()
    d.full_sweep()  # indexes every session (and removes the old ones)
    new = [make_session(root, "/w/a", now - 2 * H) for _ in range(2)]
    assert wait_for(lambda: all(indexed(d, g.session_id) for g in new))
    hold = tmp_path / "hold"
    hold.mkdir()
    monkeypatch.setenv("JANITOR_TEST_PAUSE_AT", f"before-session@2:{hold}")  # the child's, not this process's
    handed: list[Change] = []  # what the watcher handed to the daemon, once the daemon is done with it
    take = d.watcher.batches.on_changes
    d.watcher.batches.on_changes = lambda batch: (take(batch), handed.extend(batch))
    t = threading.Thread(target=d.full_sweep)
    t.start()
    try:
        assert wait_for(lambda: (hold / "before-session.reached").exists(), timeout=20)
        assert d.in_full
        kept.paths[0].unlink()  # someone else removes a session the sweep scanned and keeps
        # seen by the watcher meanwhile (handed over and handled), and left to the sweep
        assert wait_for(lambda: any(c.kind == "gone" and kept.session_id in c.rel for c in handed), timeout=20)
    finally:
        (hold / "before-session.go").touch()
        t.join(30)
    assert not d.in_full and d.last_sweep["acted"] == 2 and not any(g.paths[0].exists() for g in new)
    assert audit("external-delete") == []
    d.judge_gone()
    ext = audit("external-delete")
    assert [(r["session_id"], r["detected_by"]) for r in ext] == [(kept.session_id, "full scan")]


def test_the_full_sweep_command_on_its_own(jenv, root):
    write_config(jenv, 'retention = "1h"\ngrace = "0s"\n')
    (root / "projects").mkdir()
    a = make_session(root, "/w/a", time.time() - 2 * H)
    b = make_session(root, "/w/a", time.time() - 60)
    args = ["_daemon-full-sweep", "--claude-dir", str(root), "--now", repr(time.time())]
    # Its parent is not the one it was started for (the daemon died before it ran): it does nothing.
    p = run_cli([*args, "--parent-pid", "1"], jenv, input="")
    assert p.returncode == 0 and json.loads(p.stdout)["stopped"] == "start" and a.paths[0].exists()
    with SweepLock(janitor_dirs().lock_file):
        p = run_cli([*args, "--parent-pid", str(os.getpid())], jenv, input="")
        assert p.returncode == 3 and json.loads(p.stdout)["busy"] and a.paths[0].exists()
    p = run_cli([*args, "--parent-pid", str(os.getpid())], jenv, input="")  # no policy sent: it loads the config
    res = json.loads(p.stdout)
    assert p.returncode == 0 and (res["acted"], res["indexed"], res["gone"]) == (1, 1, [])
    assert not a.paths[0].exists() and b.paths[0].exists()
    assert res["audit_pos"].endswith(f":{janitor_dirs().audit_log.stat().st_size}")
    assert count_sessions(janitor_dirs().index_db) == 1
    assert "_daemon" not in run_cli(["--help"], jenv).stdout  # hidden


def test_an_emptied_project_dir_goes_with_a_full_sweep_and_its_watch_with_it(mkdaemon, root):
    old = make_session(root, "/w/gone", time.time() - 2 * H, side=False)
    keep = make_session(root, "/w/kept", time.time(), side=False)
    d = mkdaemon()
    watches = d.watcher.watch_count
    assert watches == 3  # projects/ and its two project dirs
    d.full_sweep()  # removes the old session, and its project dir is empty now (but fresh: kept)
    assert not old.paths[0].exists() and old.paths[0].parent.is_dir()
    set_times(old.paths[0].parent, time.time() - 2 * H)  # emptied long ago
    d.full_sweep()
    assert not old.paths[0].parent.exists() and keep.paths[0].exists()
    assert wait_for(lambda: d.watcher.watch_count == 2, timeout=10)  # the inotify watch went with the dir
