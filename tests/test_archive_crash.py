"""kill -9 at every step of archiving (and restoring): afterwards every session exists intact in the cache
or in a verified archive, never neither; the next run cleans the temp files up, never takes one for an
archive, and finishes the job with exactly one archive per session.

The kills are real SIGKILLs of the real CLI, sent by the process itself at named points
(JANITOR_TEST_KILL_AT, see claude_janitor/testhooks.py)."""

from __future__ import annotations

import random
import signal
from pathlib import Path

import pytest

from claude_janitor.archive.format import PARTIAL, ArchiveInvalid
from claude_janitor.archive.maintenance import list_archives
from claude_janitor.archive.reader import verify
from claude_janitor.audit.verify import verify as verify_audit
from tests.helpers import run_cli, write_config
from tests.helpers.archivetools import archive_files, entries, files_only, leftovers, manifest_entries, timeless
from tests.helpers.cachegen import DAY, make_session

CFG = 'action = "archive"\nretention = "20d"\n'
PIECES = 7  # transcript, session dir, file-history, session-env, tasks, todos, debug

# Each point is "name:n": the n-th time the sweep reaches that point. There are 3 expired sessions, archived
# as one batch (archive.store.ArchiveStore.prepare): all written, one sync pass, each verified and published,
# the dir fsync'd, then each session's originals removed in turn.
SWEEP_POINTS = [
    "after-intent:1",  # intents recorded, nothing done
    "archive-member:1",  # mid-write of the first archive
    "archive-member:6",
    "archive-written:1",  # whole archive written, not yet fsync'd
    "archive-written:3",  # every archive of the batch written, none synced
    "archive-fsynced:1",  # fsync'd, not yet verified
    "archive-fsynced:3",  # the batch synced, none verified
    "archive-verified:1",  # verified temp file, not yet published
    "archive-linked:1",  # final name linked, temp name still there
    "archive-published:1",  # published, dir not yet fsync'd
    "archive-verified:2",  # the second archive, after the first was published (not yet durable)
    "archive-published:3",  # every archive published, the dir not yet fsync'd
    "archive-synced:1",  # durable, originals untouched
    "archive-delete:1",  # removing the originals (staging.remove): before anything moved
    "removal-staged:1",  # … every piece moved into the staging dir, not yet verified
    "removal-verified:1",  # … verified, not yet committed
    "removal-committed:1",  # … committed (…doomed), nothing deleted yet
    "removal-purging:1",  # … the first piece deleted
    "archive-delete:2",  # the first session removed, the second's originals untouched
    "removal-purging:2",
]


def adir_of(jenv: dict[str, str]) -> Path:
    return Path(jenv["XDG_DATA_HOME"]) / "claude-janitor" / "archives"


def audit_log(jenv: dict[str, str]) -> Path:
    return Path(jenv["XDG_STATE_HOME"]) / "claude-janitor" / "log" / "audit.jsonl"


def make(root: Path, now: float):
    rng = random.Random(11)
    old = [
        make_session(root, "/home/dev/src/app", now - 40 * DAY, rng=rng, records=40),
        make_session(root, "/home/dev/src/app", now - 45 * DAY, rng=rng),
        make_session(root, "/home/dev/src/other", now - 60 * DAY, rng=rng),
    ]
    new = make_session(root, "/home/dev/src/app", now - 1 * DAY, rng=rng)
    return old, new


def sweep_args(root: Path, now: float) -> list[str]:
    return ["sweep", "--claude-dir", str(root), "--now", str(now)]


def archived_contents(adir: Path) -> dict[str, list[dict]]:
    """session id → what each *verified* archive of it holds (unverifiable ones count for nothing)."""
    out: dict[str, list[dict]] = {}
    for path in archive_files(adir):
        try:
            info = verify(path)
        except (ArchiveInvalid, OSError):
            continue
        out.setdefault(info.session_id, []).append(files_only(manifest_entries(info.manifest)))
    return out


def assert_nothing_lost(root: Path, adir: Path, expected: dict[str, dict]) -> None:
    held = archived_contents(adir)
    for sid, want in expected.items():
        intact = files_only(entries(root, sid)) == want
        archived = want in held.get(sid, [])
        assert intact or archived, f"session {sid} is neither intact in the cache nor in a verified archive"


@pytest.mark.parametrize("point", SWEEP_POINTS)
def test_kill_during_archive_sweep_loses_no_session(point, root, jenv, now):
    old, new = make(root, now)
    write_config(jenv, CFG)
    adir = adir_of(jenv)
    expected = {g.session_id: files_only(entries(root, g.session_id)) for g in old}
    kept = entries(root, new.session_id)

    p = run_cli(sweep_args(root, now), dict(jenv, JANITOR_TEST_KILL_AT=point))
    assert p.returncode == -signal.SIGKILL, f"{point} was never reached: {p.stdout}{p.stderr}"
    assert_nothing_lost(root, adir, expected)
    # Temp files are never taken for archives.
    assert not any(PARTIAL in str(a.path) for a in list_archives(adir))

    p = run_cli(sweep_args(root, now), jenv)
    assert p.returncode == 0, p.stdout + p.stderr
    assert leftovers(adir) == []
    held = archived_contents(adir)
    for sid, want in expected.items():
        assert entries(root, sid) == {}
        assert held.get(sid) == [want]  # exactly one archive per session, holding all of it
    assert len(archive_files(adir)) == len(expected)  # and nothing else (no corrupt leftovers)
    assert entries(root, new.session_id) == kept
    ok, msg, _ = verify_audit(audit_log(jenv))
    assert ok, msg


@pytest.mark.parametrize("point", ["restore-extracted:1", "restore-published:1", "restore-published:4"])
def test_kill_during_restore_then_restore_again(point, root, jenv, now):
    old, _ = make(root, now)
    write_config(jenv, CFG)
    sid = old[0].session_id
    before = entries(root, sid)
    assert run_cli(sweep_args(root, now), jenv).returncode == 0
    assert entries(root, sid) == {}

    p = run_cli(["restore", "--claude-dir", str(root), sid], dict(jenv, JANITOR_TEST_KILL_AT=point))
    assert p.returncode == -signal.SIGKILL, f"{point} was never reached: {p.stdout}{p.stderr}"
    # whatever is in place already is exactly what was archived (with the restore time)
    now_there = timeless(entries(root, sid))
    assert all(timeless(before)[k] == v for k, v in now_there.items() if v[0] == "file")

    p = run_cli(["restore", "--claude-dir", str(root), sid], jenv)
    assert p.returncode == 0, p.stdout + p.stderr
    assert timeless(entries(root, sid)) == timeless(before)
    assert leftovers(root) == []
