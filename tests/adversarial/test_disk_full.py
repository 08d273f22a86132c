"""A real full disk under the archive dir (a tiny tmpfs): nothing lost, no partial archive, exit 1."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import run_cli, write_config
from tests.helpers.archivetools import leftovers
from tests.helpers.cachegen import DAY, make_session, set_times
from tests.helpers.races import ROOT_ONLY, intact_or_gone, tree_state


@pytest.fixture
def tiny_fs(tmp_path: Path):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)])


@ROOT_ONLY
def test_disk_full_during_archive_loses_nothing(root, jenv, now, tiny_fs):
    small = make_session(root, "/p", now - 90 * DAY)
    big = make_session(root, "/q", now - 90 * DAY)
    make_session(root, "/r", now - DAY)  # a recent one: the mass-removal guard stays quiet
    blob = root / "file-history" / big.session_id / "big.bin"
    blob.write_bytes(os.urandom(1024 * 1024))  # incompressible: cannot fit in 256 KiB
    set_times(blob, now - 90 * DAY)
    set_times(blob.parent, now - 90 * DAY)
    write_config(jenv, f'action = "archive"\narchive_dir = "{tiny_fs}"\n')
    before = tree_state(root / "file-history" / big.session_id)
    p = run_cli(["sweep", "--json", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert p.returncode == 1, p.stderr
    res = {s["session_id"]: s for s in json.loads(p.stdout)["sessions"]}
    assert res[big.session_id]["result"] == "failed"
    assert "No space left on device" in res[big.session_id]["error"]
    assert res[small.session_id]["result"] == "ok"
    assert intact_or_gone(big.paths) == "intact"
    assert tree_state(root / "file-history" / big.session_id) == before
    assert intact_or_gone(small.paths) == "gone"
    assert leftovers(tiny_fs) == []  # the partial archive was removed
    assert len(list(tiny_fs.rglob("*.tar.zst"))) == 1  # only the small session's archive
    assert run_cli(["audit", "verify"], jenv).returncode == 0
