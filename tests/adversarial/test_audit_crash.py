"""The audit log under kill -9, tampering and months of use, through the real CLI.

- kill -9 at every instant of an append (and of a rotation) leaves a log that `janitor audit verify`
  accepts, and the next sweep chains on from the log itself (saying it recovered);
- deleting the log and its head, or editing a record and re-chaining it, is caught by the anchor;
- rotation across many sweeps keeps one chain that verifies across files;
- after a run is killed mid-sweep, every intent gets a result saying what is on disk.

Kills are real SIGKILLs sent by the process itself at named points (JANITOR_TEST_KILL_AT)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import run_cli, wait_for, write_config
from tests.helpers.cachegen import DAY, make_session
from tests.helpers.races import intact_or_gone


def log_dir(jenv: dict[str, str]) -> Path:
    return Path(jenv["XDG_STATE_HOME"]) / "claude-janitor" / "log"


def log_path(jenv: dict[str, str]) -> Path:
    return log_dir(jenv) / "audit.jsonl"


def anchor_path(jenv: dict[str, str]) -> Path:
    return Path(jenv["XDG_DATA_HOME"]) / "claude-janitor" / "audit.anchor"


def all_files(jenv: dict[str, str]) -> list[Path]:
    """Rotated files (oldest first), then the live log."""
    rot = sorted(p for p in log_dir(jenv).glob("audit.jsonl.[0-9]*") if not p.name.endswith(".tmp"))
    live = log_path(jenv)
    return rot + ([live] if live.exists() else [])


def records(jenv: dict[str, str]) -> list[dict]:
    out = []
    for p in all_files(jenv):
        data = p.read_bytes()
        if p.name.endswith(".zst"):
            import zstandard

            data = zstandard.ZstdDecompressor().stream_reader(data).read()
        out += [json.loads(x) for x in data.splitlines() if x.strip()]
    return out


def open_intents(recs: list[dict]) -> list[dict]:
    pending: dict[tuple, list[dict]] = {}
    for r in recs:
        by_archive = r.get("action") in ("prune-archive", "restore")  # an archive's result names its archive
        key = (
            r.get("action"),
            r.get("root"),
            r.get("session_id"),
            r.get("store"),
            r.get("archive") if by_archive else None,
        )
        if r.get("phase") == "intent":
            pending.setdefault(key, []).append(r)
        elif r.get("phase") == "result" and pending.get(key):
            pending[key].pop(0)
    return [r for rs in pending.values() for r in rs]


def sweep(root: Path, now: float, jenv: dict[str, str], **env: str) -> subprocess.CompletedProcess[str]:
    return run_cli(["sweep", "--force", "--claude-dir", str(root), "--now", str(now)], dict(jenv, **env))


def verify_ok(jenv: dict[str, str]) -> str:
    p = run_cli(["audit", "verify"], jenv)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def chained(recs: list[dict]) -> None:
    assert [r["seq"] for r in recs] == list(range(recs[0]["seq"], recs[0]["seq"] + len(recs)))
    assert all(b["prev"] == a["hash"] for a, b in zip(recs, recs[1:], strict=False))


def settle(root: Path, now: float, jenv: dict[str, str]) -> None:
    """A log with records in it and nothing pending, so the next run's first append is its intents."""
    make_session(root, "/w/first", now - 90 * DAY, side=False)
    assert sweep(root, now, jenv).returncode == 0
    assert sweep(root, now, jenv).returncode == 0


# Each point is "name:n": the n-th time the run reaches it. The run's appends: its intents (1), its
# results (2). Each append: the records written and fsync'd ("audit-written"), then the anchor, then the head,
# each a temp file made durable ("-tmp-synced") and renamed ("-renamed") before the dir is fsync'd.
APPEND_POINTS = [
    "audit-write:1",  # the intents written (one piece: under 64 KiB), not fsync'd yet
    "audit-written:1",  # intents durable; anchor and head still say the run before
    "audit-anchor-tmp-synced:1",
    "audit-anchor-renamed:1",
    "audit-head-tmp-synced:1",  # the case: log fsync'd, the head's rename never happens
    "audit-head-renamed:1",
    "audit-written:2",  # results durable, marks not
    "audit-head-tmp-synced:2",
]


@pytest.mark.parametrize("point", APPEND_POINTS)
def test_kill_9_at_each_instant_of_an_append_leaves_a_log_that_verifies(root, jenv, now, point):
    settle(root, now, jenv)
    gens = [make_session(root, "/w/p", now - 60 * DAY, side=False) for _ in range(3)]
    p = sweep(root, now, jenv, JANITOR_TEST_KILL_AT=point)
    assert p.returncode == -9, p.stderr
    verify_ok(jenv)  # honest state after the crash: no tampering reported
    assert sweep(root, now, jenv).returncode == 0
    out = verify_ok(jenv)
    assert sweep(root, now, jenv).returncode == 0
    verify_ok(jenv)
    recs = records(jenv)
    chained(recs)
    assert recs[0]["seq"] == 1
    assert not open_intents(recs)
    assert all(intact_or_gone(g.paths) == "gone" for g in gens)
    assert not any(r.get("problem") == "tampered" for r in recs), out
    if point.startswith(("audit-write", "audit-anchor", "audit-head-tmp")):  # the head lagged the log
        assert any(r.get("action") == "audit-recovery" and r["problem"] == "interrupted" for r in recs)


def test_kill_9_mid_write_leaves_a_torn_record_that_is_set_aside(root, jenv, now):
    settle(root, now, jenv)
    gens = [make_session(root, f"/w/p{i % 7}", now - 60 * DAY, side=False) for i in range(220)]
    p = sweep(root, now, jenv, JANITOR_TEST_KILL_AT="audit-write:1")  # first 64 KiB of the intents
    assert p.returncode == -9, p.stderr
    torn = log_path(jenv).read_bytes()
    assert not torn.endswith(b"\n")
    assert "interrupted mid-record" in verify_ok(jenv)
    assert sweep(root, now, jenv).returncode == 0
    verify_ok(jenv)
    recs = records(jenv)
    chained(recs)
    cut = torn[torn.rfind(b"\n") + 1 :]
    rec = next(r for r in recs if r.get("action") == "audit-recovery")
    assert rec["dropped_bytes"] == len(cut) and rec["dropped_sha256"] == hashlib.sha256(cut).hexdigest()
    assert not open_intents(recs)
    assert all(intact_or_gone(g.paths) == "gone" for g in gens)


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed (apt-get install strace)")
def test_kill_9_between_the_log_fsync_and_the_head_rename_with_strace(root, jenv, now):
    """The issue's repro: strace kills the run at a rename after the log's fsync (the run's 2nd rename: the
    head's of the intents' append here; on the code before the fix, the head's of the results' append)."""
    settle(root, now, jenv)
    gens = [make_session(root, "/w/p", now - 60 * DAY, side=False) for _ in range(3)]
    cmd = [
        "strace",
        "-f",
        "-qq",
        "-o",
        os.devnull,
        "-e",
        "trace=rename,renameat,renameat2",
        "-e",
        "inject=rename,renameat,renameat2:signal=KILL:when=2",
        sys.executable,
        "-m",
        "claude_janitor",
        "sweep",
        "--force",
        "--claude-dir",
        str(root),
        "--now",
        str(now),
    ]
    p = subprocess.run(cmd, env=dict(jenv, PYTHONDONTWRITEBYTECODE="1"), capture_output=True, text=True, timeout=120)
    if "ptrace" in p.stderr and "Operation not permitted" in p.stderr:
        pytest.skip("strace cannot trace here (ptrace not permitted)")
    assert p.returncode in (-9, 137), p.stderr
    verify_ok(jenv)
    for _ in range(2):
        assert sweep(root, now, jenv).returncode == 0
        verify_ok(jenv)
    recs = records(jenv)
    chained(recs)
    assert not open_intents(recs)
    assert all(intact_or_gone(g.paths) == "gone" for g in gens)


# ---- the anchor ----------------------------------------------------------------------------------------


def test_deleting_the_log_and_its_head_is_detected(root, jenv, now):
    settle(root, now, jenv)
    assert anchor_path(jenv).exists()
    for p in log_dir(jenv).iterdir():
        p.unlink()
    p = run_cli(["audit", "verify"], jenv)
    assert p.returncode == 1 and "log deleted" in p.stderr, p.stdout + p.stderr
    make_session(root, "/w/p", now - 60 * DAY, side=False)
    assert sweep(root, now, jenv).returncode == 0  # a sweep still records what it does…
    p = run_cli(["audit", "verify"], jenv)
    assert p.returncode == 1 and "tampered" in p.stderr, p.stdout + p.stderr  # …and keeps saying what it found


def rechain(path: Path, edit) -> dict:
    """Edit records and recompute every hash, as someone who knows the format would."""
    recs = [json.loads(x) for x in path.read_text().splitlines()]
    prev = "0" * 64
    for r in recs:
        edit(r)
        r["prev"] = prev
        body = {k: v for k, v in r.items() if k != "hash"}
        r["hash"] = hashlib.sha256(
            json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
        ).hexdigest()
        prev = r["hash"]
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in recs))
    return recs[-1]


def test_an_edited_and_rechained_log_is_detected_by_the_anchor(root, jenv, now):
    settle(root, now, jenv)
    log = log_path(jenv)
    last = rechain(log, lambda r: r.update(reason="edited") if r.get("reason") else None)
    head = log_dir(jenv) / "audit.jsonl.head"
    h = json.loads(head.read_text())
    head.write_text(json.dumps({**h, "seq": last["seq"], "hash": last["hash"]}) + "\n")
    p = run_cli(["audit", "verify", "--file", str(log)], jenv)  # the chain and the head alone: consistent
    assert "rewritten" in p.stderr, p.stdout + p.stderr
    p = run_cli(["audit", "verify"], jenv)
    assert p.returncode == 1 and "anchor" in p.stderr and "rewritten" in p.stderr, p.stdout + p.stderr


def test_deleting_the_anchor_is_detected(root, jenv, now):
    settle(root, now, jenv)
    anchor_path(jenv).unlink()
    p = run_cli(["audit", "verify"], jenv)
    assert p.returncode == 1 and "anchor is missing" in p.stderr, p.stdout + p.stderr


# ---- rotation ------------------------------------------------------------------------------------------

ROTATE = 'audit_rotate_size = "4KiB"\naudit_keep_files = 3\n'


def test_rotation_across_many_sweeps_keeps_one_chain_that_verifies(root, jenv, now):
    write_config(jenv, ROTATE + "audit_compress = true\n")
    for i in range(14):
        for _ in range(2):
            make_session(root, f"/w/r{i}", now - 60 * DAY, side=False)
        assert sweep(root, now, jenv).returncode == 0
    rotated = all_files(jenv)[:-1]
    assert len(rotated) == 3, rotated
    assert [p.name.endswith(".zst") for p in rotated] == [True, True, False]  # the newest stays plain
    out = verify_ok(jenv)
    assert "across 4 files" in out and "rotated out" in out, out
    recs = records(jenv)
    chained(recs)
    prunes = [r for r in recs if r.get("action") == "audit-prune"]
    assert prunes and prunes[-1]["last"] == recs[0]["seq"] - 1 and prunes[-1]["last_hash"] == recs[0]["prev"]
    assert not open_intents(recs)
    assert all(p.stat().st_size < 4096 + 8192 for p in all_files(jenv) if not p.name.endswith(".zst"))
    rotated[1].unlink()  # a rotated file taken out of the middle
    p = run_cli(["audit", "verify"], jenv)
    assert p.returncode == 1, p.stdout


def test_a_rotating_delete_sweep_does_not_load_zstandard(root, jenv, now):
    write_config(jenv, ROTATE)
    for i in range(6):
        make_session(root, f"/w/z{i}", now - 60 * DAY, side=False)
        p = subprocess.run(
            [
                sys.executable,
                "-X",
                "importtime",
                "-m",
                "claude_janitor",
                "sweep",
                "--force",
                "--claude-dir",
                str(root),
                "--now",
                str(now),
            ],
            env=jenv,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert p.returncode == 0, p.stderr
        assert "zstandard" not in p.stderr
    assert len(all_files(jenv)) > 1
    verify_ok(jenv)


@pytest.mark.parametrize(
    "point",
    ["audit-rotated:1", "audit-compress-tmp-synced:1", "audit-compress-renamed:1", "audit-written:1", "audit-pruned:1"],
)
def test_kill_9_while_rotating_leaves_a_log_that_verifies(root, jenv, now, point):
    # Each sweep here writes 2.1-2.8 KiB, so every sweep rotates, and with 2 files kept the fourth is the
    # first to prune: every point is reached by the first sweep of the loop (was 4 KiB and 5 sweeps first).
    write_config(jenv, 'audit_rotate_size = "2KiB"\naudit_keep_files = 2\naudit_compress = true\n')
    for i in range(3):
        for _ in range(2):
            make_session(root, f"/w/k{i}", now - 60 * DAY, side=False)
        assert sweep(root, now, jenv).returncode == 0
    killed = False
    for i in range(10):  # until a run reaches the point (a rotation happens every few sweeps)
        for _ in range(2):
            make_session(root, f"/w/x{i}", now - 60 * DAY, side=False)
        p = sweep(root, now, jenv, JANITOR_TEST_KILL_AT=point)
        if p.returncode == -9:
            killed = True
            break
        assert p.returncode == 0, p.stderr
    assert killed
    verify_ok(jenv)
    for i in range(3):  # later sweeps chain from what the killed one left, rotating again
        make_session(root, f"/w/y{i}", now - 60 * DAY, side=False)
        assert sweep(root, now, jenv).returncode == 0
        verify_ok(jenv)
    recs = records(jenv)
    chained(recs)
    assert not open_intents(recs)
    assert not list((root / "projects").glob("*/*.jsonl"))


# ---- what a killed run did -----------------------------------------------------------------------------


def test_after_kill_9_mid_sweep_every_intent_gets_an_outcome_from_the_disk(root, jenv, now):
    write_config(jenv, 'action = "archive"\n')
    gens = [make_session(root, "/w/a", now - 60 * DAY) for _ in range(4)]
    p = sweep(root, now, jenv, JANITOR_TEST_KILL_AT="archive-delete:4")  # removing the first session's pieces
    assert p.returncode == -9, p.stderr
    assert len(open_intents(records(jenv))) == 4
    # A run that keeps everything (a long retention) still settles the log first: the removal's own recovery
    # (staging: roll back or finish), then a result for every intent still open, from what is on disk then.
    p = run_cli(["sweep", "--claude-dir", str(root), "--now", str(now), "--older-than", "3650d"], jenv)
    assert p.returncode == 0, p.stderr
    state = {g.session_id: intact_or_gone(g.paths) for g in gens}  # this run changed nothing after that
    recs = records(jenv)
    assert not open_intents(recs)
    said = {r["session_id"]: r for r in recs if r.get("result") == "interrupted"}
    assert said
    want = {"PARTIAL": "partly", "intact": "present", "gone": "gone"}
    assert {sid: r["found"] for sid, r in said.items()} == {sid: want[state[sid]] for sid in said}
    for r in said.values():
        assert r["found"] != "partly" or (r["left"] and all(os.path.lexists(x) for x in r["left"]))
    verify_ok(jenv)
    assert sweep(root, now, jenv).returncode == 0
    assert not open_intents(records(jenv))
    assert all(intact_or_gone(g.paths) == "gone" for g in gens)
    verify_ok(jenv)


def live_children(pid: int) -> list[int]:
    """The running (not zombie) child processes of ``pid``."""
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/children") as f:
            for c in f.read().split():
                try:
                    with open(f"/proc/{c}/stat") as st:
                        if st.read().rpartition(")")[2].split()[0] != "Z":
                            out.append(int(c))
                except FileNotFoundError:
                    pass
    return out


def start_daemon(root: Path, env: dict[str, str], out) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "claude_janitor", "daemon", "--claude-dir", str(root), "-v"],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )


@pytest.mark.skipif(sys.platform != "linux", reason="the daemon test runs on Linux")
@pytest.mark.parametrize("killed", ["one-shot sweep", "daemon's sweep"])
def test_daemon_start_settles_the_intents_of_a_killed_run(root, jenv, tmp_path, killed):
    import time

    write_config(jenv, 'retention = "20d"\ngrace = "0s"\nsweep_interval = "1d"\n')
    t = time.time()
    gens = [make_session(root, "/w/d", t - 60 * DAY, side=False) for _ in range(3)]
    with open(tmp_path / "daemon.log", "w+") as out:
        if killed == "one-shot sweep":
            p = run_cli(["sweep", "--claude-dir", str(root)], dict(jenv, JANITOR_TEST_KILL_AT="before-session:2"))
            assert p.returncode == -9
        else:  # the daemon's first full sweep is killed (kill -9) after its intents, then the daemon too
            d = start_daemon(root, dict(jenv, JANITOR_TEST_KILL_AT="after-intent"), out)
            try:
                assert wait_for(lambda: open_intents(records(jenv)), timeout=60)
                # The intents are durable a moment before the full sweep's process reaches its kill point:
                # it must be gone before the next daemon starts (else that one finds the locks still held).
                assert wait_for(lambda: not live_children(d.pid), timeout=60)
            finally:
                d.kill()
                d.wait(timeout=30)
        assert open_intents(records(jenv))
        d = start_daemon(root, jenv, out)
        try:
            ok = wait_for(
                lambda: all(intact_or_gone(g.paths) == "gone" for g in gens) and not open_intents(records(jenv)),
                timeout=60,
            )
            out.seek(0)
            assert ok, out.read()
        finally:
            d.terminate()
            d.wait(timeout=30)
    recs = records(jenv)
    said = [r for r in recs if r.get("result") == "interrupted"]
    assert said and all(r["found"] in ("gone", "present") for r in said)
    verify_ok(jenv)
