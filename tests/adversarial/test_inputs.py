"""Hostile and broken input, through the real CLI: settings files that are FIFOs, devices, huge or nested;
a transcript line no parser expected; ids in upper case; one id in two projects; a crafted archive header;
a managed-settings.d nobody may read; symlinked stores. No input may hang, crash or stall a sweep, and
none may make it act on what the policy did not ask for."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from claude_janitor.archive.format import FORMAT, VERSION
from claude_janitor.cache.rescan import rescan
from tests.helpers import run_cli, wait_for, write_config
from tests.helpers.archivetools import craft, tar_member
from tests.helpers.cachegen import DAY, make_session, record, set_times
from tests.helpers.races import tree_state as _tree_state


def tree_state(top: Path) -> dict:
    """The tree's state, without any lock file of the janitor's own in the Claude dir."""
    return {k: v for k, v in _tree_state(top).items() if not k.startswith(".claude-janitor")}


MEM_LIMIT = 1 << 30  # the code under test must never need this much; on old code it stops a runaway read


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEM_LIMIT, MEM_LIMIT))


def cli(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """run_cli with an address-space cap, so a runaway read fails fast instead of eating the machine."""
    return run_cli(args, env, timeout=timeout, preexec_fn=_limit_memory)


def args(root: Path, now: float, *more: str) -> list[str]:
    return [*more, "--claude-dir", str(root), "--now", str(now)]


def decisions(stdout: str) -> dict[str, dict]:
    return {s["session_id"]: s for s in json.loads(stdout)["sessions"]}


def lock_is_free(jenv: dict[str, str], root: Path, now: float) -> bool:
    p = run_cli(["sweep", "--dry-run", *args(root, now)], jenv)
    q = run_cli(["sweep", "--wait", "0", *args(root, now, "--older-than", "99999d")], jenv)
    return p.returncode != 3 and q.returncode == 0


# ---- 11.4: settings files that are not plain, bounded files -------------------------------------------


def test_fifo_settings_never_block_a_sweep(root, jenv, tmp_path, now):
    """FIFOs as the user's settings.json and as a project's .claude/settings.json (a path the transcript's
    cwd chose): the sweep neither blocks nor guesses; it keeps what depends on them, names them, and ends."""
    proj = tmp_path / "proj"
    (proj / ".claude").mkdir(parents=True)
    os.mkfifo(proj / ".claude" / "settings.json")
    os.mkfifo(root / "settings.json")
    a = make_session(root, str(proj), now - 90 * DAY)
    b = make_session(root, "/elsewhere", now - 90 * DAY)
    p = subprocess.Popen(
        [sys.executable, "-m", "claude_janitor", "sweep", "--json", *args(root, now)],
        env=jenv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 0, err
    doc = json.loads(out)
    assert any("a FIFO" in w and str(root / "settings.json") in w for w in doc["warnings"]), doc["warnings"]
    assert a.paths[0].exists() and b.paths[0].exists()  # both windows come from the FIFO'd user settings
    # with a window of the janitor's own, the FIFO'd project settings stop nothing
    p = cli(["sweep", "--json", *args(root, now, "--older-than", "30d")], jenv)
    assert p.returncode == 0, p.stderr
    assert not a.paths[0].exists() and not b.paths[0].exists()
    assert lock_is_free(jenv, root, now)


def test_sigterm_stops_a_sweep_at_once_before_it_acts_and_releases_the_lock(root, jenv, now, tmp_path):
    """However long the read-only part takes (a slow disk, a huge cache, anything it waits on), SIGTERM
    ends a sweep promptly with nothing changed, and the sweep lock is free again."""
    old = make_session(root, "/p", now - 90 * DAY)
    before = tree_state(root)
    folder = tmp_path / "pause"
    folder.mkdir()
    env = dict(jenv, JANITOR_TEST_PAUSE_AT=f"after-plan:{folder}")
    p = subprocess.Popen(
        [sys.executable, "-m", "claude_janitor", "sweep", *args(root, now)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_for(lambda: (folder / "after-plan.reached").exists() or p.poll() is not None, 60)
        assert p.poll() is None, p.communicate()
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=30)  # the pause itself lasts 60 s: only a prompt stop passes
    finally:
        (folder / "after-plan.go").touch()
        p.kill()
    assert p.returncode == 128 + signal.SIGTERM, err
    assert "nothing was changed" in err
    assert tree_state(root) == before and old.paths[0].exists()
    assert lock_is_free(jenv, root, now)


@pytest.mark.parametrize("where", ["user", "project", "managed"])
def test_dev_zero_behind_a_symlink_is_refused_not_read(root, jenv, tmp_path, now, where):
    proj = tmp_path / "proj"
    (proj / ".claude").mkdir(parents=True)
    target = {
        "user": root / "settings.json",
        "project": proj / ".claude" / "settings.json",
        "managed": Path(jenv["CLAUDE_JANITOR_MANAGED_DIR"]) / "managed-settings.d" / "50-x.json",
    }[where]
    target.parent.mkdir(parents=True, exist_ok=True)
    os.symlink("/dev/zero", target)
    a = make_session(root, str(proj), now - 90 * DAY)
    p = cli(["report", "--format", "json", *args(root, now)], jenv)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert any("character device" in w and str(target) in w for w in doc["warnings"]), doc["warnings"]
    assert decisions(p.stdout)[a.session_id]["decision"] == "keep"
    assert str(target) in decisions(p.stdout)[a.session_id]["reason"]
    p = cli(["sweep", *args(root, now)], jenv)
    assert p.returncode == 0 and a.paths[0].exists(), p.stderr
    d = cli(["doctor", "--json", *args(root, now)[:2]], jenv)
    assert d.returncode == 2 and any(str(target) in x for x in json.loads(d.stdout)["settings_problems"])


def test_huge_settings_file_is_refused_by_its_size(root, jenv, now):
    s = root / "settings.json"
    with open(s, "wb") as f:
        f.write(b'{"cleanupPeriodDays": 1, "pad": "')
        f.truncate(1 << 30)  # sparse: 1 GiB of "content" that costs no disk
    a = make_session(root, "/p", now - 90 * DAY)
    p = cli(["report", "--format", "json", *args(root, now)], jenv)
    assert p.returncode == 0, p.stderr
    assert any("bytes, more than" in w for w in json.loads(p.stdout)["warnings"])
    assert decisions(p.stdout)[a.session_id]["decision"] == "keep"
    p = cli(["sweep", *args(root, now, "--older-than", "30d")], jenv)  # a window of its own: acted on
    assert p.returncode == 0 and not a.paths[0].exists(), p.stderr


def test_deeply_nested_settings_are_a_named_problem_not_a_crash(root, jenv, now):
    (root / "settings.json").write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    a = make_session(root, "/p", now - 90 * DAY)
    p = cli(["report", "--format", "json", *args(root, now)], jenv)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert any("nested too deeply" in w for w in json.loads(p.stdout)["warnings"])
    assert decisions(p.stdout)[a.session_id]["decision"] == "keep"
    d = cli(["doctor", *args(root, now)[:2]], jenv)
    assert d.returncode == 2 and "nested too deeply" in d.stdout and "settings_unknowable" in d.stdout, d.stderr


def test_deeply_nested_janitor_config_is_exit_2_one_line(root, jenv, now):
    write_config(jenv, "retention = " + "[" * 100_000)
    make_session(root, "/p", now - 90 * DAY)
    before = tree_state(root)
    for cmd in (["sweep"], ["report"]):
        p = cli([*cmd, *args(root, now)], jenv)
        assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
        assert "invalid TOML" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    d = cli(["doctor", *args(root, now)[:2]], jenv)
    assert d.returncode == 2 and "invalid TOML" in d.stdout
    assert tree_state(root) == before


# ---- 11.11: an unreadable managed-settings.d (as another user: root reads everything) ----------------

NO_DAC = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]


def without_dac(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The CLI as root without the capabilities that let root read any dir: file modes apply to it."""
    return subprocess.run(
        [*NO_DAC, sys.executable, "-m", "claude_janitor", *cmd], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_unreadable_managed_settings_dir_is_named_never_a_crash(root, jenv, now):
    managed = Path(jenv["CLAUDE_JANITOR_MANAGED_DIR"])
    old = make_session(root, "/p", now - 90 * DAY)
    (managed / "managed-settings.d").mkdir(parents=True)
    (managed / "managed-settings.d" / "10-org.json").write_text('{"cleanupPeriodDays": 7}')
    os.chmod(managed / "managed-settings.d", 0)  # cannot be listed (without CAP_DAC_*)
    try:
        d = without_dac(["doctor", "--json", "--claude-dir", str(root)], jenv)
        assert d.returncode == 2 and "Traceback" not in d.stderr, d.stderr
        probs = json.loads(d.stdout)["settings_problems"]
        assert any("managed-settings.d" in x and "cannot list" in x for x in probs), probs
        t = without_dac(["doctor", "--claude-dir", str(root)], jenv)
        assert t.returncode == 2 and "cannot list" in t.stdout and "Traceback" not in t.stderr
        p = without_dac(["report", "--format", "json", *args(root, now)], jenv)
        assert p.returncode == 0, p.stderr
        assert "cannot list" in decisions(p.stdout)[old.session_id]["reason"]
        p = without_dac(["sweep", *args(root, now)], jenv)
        assert p.returncode == 0 and old.paths[0].exists(), p.stderr  # the org's window is unknowable: kept
        p = without_dac(["sweep", *args(root, now, "--older-than", "30d")], jenv)
        assert p.returncode == 0 and not old.paths[0].exists(), p.stderr
    finally:
        os.chmod(managed / "managed-settings.d", 0o700)


# ---- 12.7: a malformed settings.json stops only what depends on it ------------------------------------


def test_malformed_settings_keep_only_the_sessions_whose_window_depends_on_them(root, jenv, tmp_path, now):
    (root / "settings.json").write_text('{"cleanupPeriodDays": 7,')
    good = tmp_path / "good"
    (good / ".claude").mkdir(parents=True)
    (good / ".claude" / "settings.json").write_text('{"cleanupPeriodDays": 10}')  # decides its own window
    dep = make_session(root, "/dep", now - 90 * DAY)
    ruled = make_session(root, "/ruled", now - 90 * DAY)
    own = make_session(root, str(good), now - 90 * DAY)
    fresh = make_session(root, "/dep", now - 2 * DAY)
    write_config(jenv, '[[rule]]\nproject = "/ruled"\nretention = "30d"\n')
    p = cli(["report", "--format", "json", *args(root, now)], jenv)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert len(doc["sessions"]) == 4
    assert any("invalid JSON" in w and str(root / "settings.json") in w for w in doc["warnings"])
    dec = decisions(p.stdout)
    assert dec[dep.session_id]["decision"] == "keep" and "invalid JSON" in dec[dep.session_id]["reason"]
    assert dec[ruled.session_id]["decision"] == "delete"
    assert dec[own.session_id]["decision"] == "delete" and str(good) in dec[own.session_id]["reason"]
    t = cli(["report", *args(root, now)], jenv)
    assert t.returncode == 0 and "invalid JSON" in t.stdout + t.stderr
    p = cli(["sweep", *args(root, now)], jenv)
    assert p.returncode == 0, p.stderr
    assert dep.paths[0].exists() and fresh.paths[0].exists()
    assert not ruled.paths[0].exists() and not own.paths[0].exists()
    p = cli(["sweep", *args(root, now, "--older-than", "30d")], jenv)  # now the window is the janitor's
    assert p.returncode == 0 and not dep.paths[0].exists() and fresh.paths[0].exists(), p.stderr


def test_config_retention_acts_despite_malformed_settings(root, jenv, now):
    (root / "settings.json").write_text("{nope")
    old = make_session(root, "/p", now - 90 * DAY)
    write_config(jenv, 'retention = "30d"\n')
    p = cli(["sweep", *args(root, now)], jenv)
    assert p.returncode == 0 and not old.paths[0].exists(), p.stderr


@pytest.mark.parametrize(
    "content,reason",
    [
        ("{oops", "settings_unknowable"),
        ('{"cleanupPeriodDays": 0}', "settings_invalid_key_set"),
        ('{"desktopSessionCleanupPeriodDays": -1}', "settings_invalid_key_set"),
    ],
)
def test_doctor_says_when_claude_codes_own_sweep_skips_itself(root, jenv, now, content, reason):
    (root / "settings.json").write_text(content)
    d = cli(["doctor", "--json", "--claude-dir", str(root)], jenv)
    rep = json.loads(d.stdout)
    skips = rep["claude"][0]["own_sweep_skips"]
    assert [s["reason"] for s in skips if not s.get("conditional")] == [reason], skips
    t = cli(["doctor", "--claude-dir", str(root)], jenv)
    assert "SKIPPED" in t.stdout and reason in t.stdout
    # a managed cleanupPeriodDays bypasses Claude Code's error checks: it sweeps, with the managed window
    managed = Path(jenv["CLAUDE_JANITOR_MANAGED_DIR"])
    managed.mkdir(parents=True, exist_ok=True)
    (managed / "managed-settings.json").write_text('{"cleanupPeriodDays": 20}')
    rep = json.loads(cli(["doctor", "--json", "--claude-dir", str(root)], jenv).stdout)
    assert rep["claude"][0]["own_sweep_skips"] == []


def test_doctor_notes_setting_sources(root, jenv):
    d = cli(["doctor", "--claude-dir", str(root)], jenv)
    assert "--setting-sources" in d.stdout and "user_source_disabled" in d.stdout
    assert d.returncode == 0, d.stdout


# ---- 11.5: no transcript line can stop a sweep --------------------------------------------------------

HOSTILE_LINES = [
    b'{"timestamp": 1' + b"0" * 400 + b"}",
    b'{"timestamp": 1e400}',
    b'{"timestamp": -1e400}',
    b'{"timestamp": NaN}',
    b'{"timestamp": Infinity}',
    b'{"timestamp": 1e300}',
    b'{"timestamp": "9999-12-31T23:59:59-23:59"}',
    b'{"timestamp": "0001-01-01T00:00:00+23:59"}',
    b'{"timestamp": "2026-02-30T00:00:00Z"}',
    b'{"cwd": "\\u0000/evil", "timestamp": "2020-01-01T00:00:00Z"}',
    b'{"cwd": "/a\\ud800b"}',
    b'{"cwd": "relative/dir"}',
    b'{"x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    b"\xff\xfe{not utf8",
]


def test_one_hostile_transcript_line_stops_nothing(root, jenv, now):
    """Each hostile line ends a transcript of its own (the tail reader reads it first): none stops the
    report or the sweep, none counts as a time, so each session goes by its real (old) times."""
    hostile = []
    for i, line in enumerate(HOSTILE_LINES):
        g = make_session(root, f"/p{i}", now - 90 * DAY, side=False)
        with open(g.paths[0], "ab") as f:
            f.write(line + b"\n")
        set_times(g.paths[0], now - 90 * DAY)
        hostile.append(g)
    other = make_session(root, "/q", now - 90 * DAY)
    p = cli(["report", "--format", "json", *args(root, now)], jenv)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    dec = decisions(p.stdout)
    assert {g.session_id: dec[g.session_id]["decision"] for g in hostile} == dict.fromkeys(
        (g.session_id for g in hostile), "delete"
    )
    t = cli(["report", *args(root, now)], jenv)
    assert t.returncode == 0 and "Traceback" not in t.stderr, t.stderr
    p = cli(["sweep", "--force", *args(root, now)], jenv)  # every session is old: the guard would refuse
    assert p.returncode == 0, p.stderr
    assert not any(g.paths[0].exists() for g in hostile) and not other.paths[0].exists()


def test_overflow_line_does_not_stop_the_daemons_full_sweep(root, jenv, now):
    hostile = make_session(root, "/p", now - 90 * DAY)
    with open(hostile.paths[0], "ab") as f:
        f.write(b'{"timestamp": 1' + b"0" * 400 + b"}\n")
    set_times(hostile.paths[0], now - 90 * DAY)
    other = make_session(root, "/q", now - 90 * DAY)
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "claude_janitor",
            "_daemon-full-sweep",
            "--claude-dir",
            str(root),
            "--now",
            str(now),
            "--parent-pid",
            str(os.getpid()),
        ],
        env=jenv,
        input="",
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit_memory,
    )
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    result = json.loads(p.stdout.strip().splitlines()[-1])
    assert not result.get("error"), result
    assert not hostile.paths[0].exists() and not other.paths[0].exists()


# ---- 11.7: upper-case ids ----------------------------------------------------------------------------

UPPER = "ABCDEF01-2345-4678-9ABC-DEF012345678"


def test_pinning_an_upper_case_id_protects_it(root, jenv, now):
    s = make_session(root, "/p", now - 90 * DAY, sid=UPPER)
    p = cli(["pin", UPPER, "--claude-dir", str(root)], jenv)
    assert p.returncode == 0 and "no transcript found" not in p.stdout, p.stdout
    p = cli(["sweep", "--json", *args(root, now)], jenv)
    assert p.returncode == 0 and all(x.exists() for x in s.paths), p.stdout
    p = cli(["pin", UPPER.lower(), "--claude-dir", str(root)], jenv)
    assert "already pinned" in p.stdout
    assert cli(["unpin", UPPER], jenv).returncode == 0
    assert cli(["sweep", *args(root, now)], jenv).returncode == 0
    assert not s.paths[0].exists()


def test_restores_pin_protects_an_upper_case_session(root, jenv, now):
    s = make_session(root, "/p", now - 90 * DAY, sid=UPPER)
    write_config(jenv, 'action = "archive"\n')
    assert cli(["sweep", *args(root, now)], jenv).returncode == 0
    assert not s.paths[0].exists()
    p = cli(["restore", "--pin", "--claude-dir", str(root), UPPER.lower()], jenv)  # any case finds it
    assert p.returncode == 0 and "pinned" in p.stdout, p.stderr
    assert s.paths[0].exists()
    p = cli(["sweep", *args(root, now)], jenv)
    assert p.returncode == 0 and s.paths[0].exists(), p.stdout  # pinned, so not archived again


# ---- 11.8: the same id in two projects ---------------------------------------------------------------


def test_side_stores_of_an_id_in_two_projects_stay_while_a_copy_is_kept(root, jenv, now):
    sid = "abcdefab-1111-4222-8333-444455556666"
    expired = make_session(root, "/a", now - 90 * DAY, sid=sid)  # projects/-a: alphabetically first
    live = root / "projects" / "-b" / f"{sid}.jsonl"
    live.parent.mkdir(parents=True)
    live.write_text(json.dumps(record(sid, "/b", now - 3600, 0)) + "\n")
    set_times(live, now - 3600)
    side = [p for p in expired.paths if "projects" not in str(p)]
    assert side  # file-history/S, session-env/S, tasks/S, todos, debug: all old
    before = {p: tree_state(p) if p.is_dir() else p.read_bytes() for p in side}
    p = cli(["report", "--format", "json", *args(root, now)], jenv)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    copies = [s for s in doc["sessions"] if s["session_id"] == sid]
    assert any("more than one project" in s["reason"] and s["decision"] == "keep" for s in copies), copies
    assert all(any("also in" in n for n in s.get("notes", [])) for s in copies if s["project"])
    p = cli(["sweep", *args(root, now)], jenv)
    assert p.returncode == 0, p.stderr
    assert not expired.paths[0].exists() and live.exists()
    assert {p: tree_state(p) if p.is_dir() else p.read_bytes() for p in side} == before
    # the daemon's wake-up reads the due copy alone: it must not take the side stores either
    expired2 = make_session(root, "/a", now - 90 * DAY, sid=sid, side=False)
    got = rescan(str(root), [("-a", sid)])[("-a", sid)]
    assert got is not None and {p.store for p in got.pieces} <= {"transcript", "session-dir"}
    assert expired2.paths[0].exists()


# ---- 11.10: restore goes only where every command goes -------------------------------------------------


def test_restore_ignores_the_root_a_crafted_header_names(root, jenv, tmp_path):
    sid = "0b6f3c1e-7a2d-4c8e-9f10-2b3c4d5e6f70"
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "projects").mkdir(parents=True)  # looks like a Claude dir: the old code went there
    rel = f"projects/-p/{sid}.jsonl"
    header = {
        "format": FORMAT,
        "version": VERSION,
        "session_id": sid,
        "root": str(elsewhere),
        "project": "-p",
        "project_path": "/p",
        "archived_at": 1_700_000_000.0,
        "pieces": [{"rel": rel, "store": "transcript", "is_dir": False}],
    }
    arc = craft(tmp_path / "a.tar.zst", header, [(tar_member(rel), b'{"type":"user"}\n')])
    env = dict(jenv, CLAUDE_CONFIG_DIR=str(root))
    p = cli(["restore", sid, "--archive", str(arc)], env)
    assert p.returncode == 0, p.stderr
    assert (root / rel).read_bytes() == b'{"type":"user"}\n'
    assert list((elsewhere / "projects").iterdir()) == []
    assert str(elsewhere) in p.stderr and "not into the one the archive names" in p.stderr
    # without CLAUDE_CONFIG_DIR: ~/.claude, never the header's dir
    home_claude = Path(jenv["HOME"]) / ".claude"
    home_claude.mkdir(parents=True)
    p = cli(["restore", sid, "--archive", str(arc), "--json"], jenv)
    assert p.returncode == 0, p.stderr
    assert (home_claude / rel).exists() and list((elsewhere / "projects").iterdir()) == []
    assert json.loads(p.stdout)["archive_names_root"] == str(elsewhere)


# ---- 11.b: symlinked projects/ and store dirs: report and sweep agree -----------------------------------


@pytest.mark.parametrize("link", ["projects", "file-history", "debug", "todos"])
def test_symlinked_store_dirs_are_not_followed_and_report_agrees_with_sweep(root, jenv, tmp_path, now, link):
    outside = tmp_path / "outside"
    make_session(outside, "/p", now - 90 * DAY)
    inside = make_session(root, "/q", now - 90 * DAY)
    shutil.rmtree(root / link)
    os.symlink(outside / link, root / link)
    before_outside = tree_state(outside)
    rep = cli(["report", "--format", "json", *args(root, now)], jenv)
    assert rep.returncode == 0, rep.stderr
    doc = json.loads(rep.stdout)
    would = {(s["session_id"], tuple(s["paths"])) for s in doc["sessions"] if s["decision"] != "keep"}
    sw = cli(["sweep", "--json", *args(root, now)], jenv)
    assert sw.returncode == 0, sw.stdout + sw.stderr
    done = {(s["session_id"], tuple(s["paths"])) for s in json.loads(sw.stdout)["sessions"] if s["result"] == "ok"}
    assert done == would  # what the report said is exactly what the sweep did
    assert all(str(root / link) not in p for _, ps in would for p in ps)  # nothing through the link
    assert tree_state(outside) == before_outside and (root / link).is_symlink()
    assert any(u.endswith(f"{link} (symlink, not followed: nothing through it is swept)") for u in doc["unknown"])
    if link != "projects":
        assert not inside.paths[0].exists()


# ---- Claude Code's live-session registry is input too ----------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        lambda sid, name: {"pid": int(name), "sessionId": sid},  # a pid no kernel has: kill() would overflow
        lambda sid, name: {"pid": 2**31 + 5, "sessionId": sid},
    ],
)
def test_a_hostile_session_record_stops_nothing(root, jenv, now, body):
    old = make_session(root, "/p", now - 90 * DAY)
    keep = make_session(root, "/q", now - DAY)
    name = "1" + "0" * 30
    if "2147483653" in json.dumps(body(old.session_id, "0")):
        name = str(2**31 + 5)
    (root / "sessions").mkdir()
    (root / "sessions" / f"{name}.json").write_text(json.dumps(body(old.session_id, name)))
    (root / "sessions" / "12345.json").write_text('{"pid": 12345, "sessionId": ' + "[" * 100_000)
    os.mkfifo(root / "sessions" / "4242.json")
    p = cli(["sweep", *args(root, now)], jenv)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert not old.paths[0].exists() and keep.paths[0].exists()


@pytest.mark.parametrize(
    "field,value,refused",
    [
        ("last_activity", 1e300, True),
        ("last_activity", 1e9, False),
        ("last_activity", "x", True),
        ("last_activity", float("nan"), True),
        ("bytes", "lots", True),
        ("archived_at", 1e300, True),
    ],
)
def test_archive_list_survives_a_crafted_header(root, jenv, tmp_path, field, value, refused):
    sid = "0b6f3c1e-7a2d-4c8e-9f10-2b3c4d5e6f70"
    rel = f"projects/-p/{sid}.jsonl"
    header = {
        "format": FORMAT,
        "version": VERSION,
        "session_id": sid,
        "root": str(root),
        "project": "-p",
        "project_path": "/p",
        "archived_at": 1_700_000_000.0,
        field: value,
        "pieces": [{"rel": rel, "store": "transcript", "is_dir": False}],
    }
    adir = Path(jenv["XDG_DATA_HOME"]) / "claude-janitor" / "archives" / "-p"
    craft(adir / f"{sid}.20231114T221320Z.tar.zst", header, [(tar_member(rel), b'{"type":"user"}\n')])
    for extra in ([], ["--json"], ["--verify"]):
        p = cli(["archive", "list", *extra], jenv)
        assert "unexpected" not in p.stderr and "Traceback" not in p.stderr, p.stderr
        assert p.returncode == (1 if refused else 0) and (f"bad {field}" in p.stdout) == refused, p.stdout
    p = cli(["restore", sid, "--claude-dir", str(root)], jenv)
    assert "unexpected" not in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert p.returncode in ((1, 2) if refused else (0,)) and (root / rel).exists() != refused
