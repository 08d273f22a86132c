"""Hostile trees: mounts, hard links, special files, hostile names, deep nesting, huge directories."""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import run_cli, run_json
from tests.helpers.cachegen import DAY, make_session, set_times
from tests.helpers.races import ROOT_ONLY, Paused, intact_or_gone


@ROOT_ONLY
def test_mount_point_inside_a_session_is_never_entered(root, jenv, now, tmp_path):
    g = make_session(root, "/p", now - 90 * DAY)
    mnt = root / "projects" / "-p" / g.session_id / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)]).returncode:
        pytest.skip("cannot mount tmpfs here")
    try:
        (mnt / "on-another-fs.txt").write_text("not ours")
        for p in (mnt, *g.paths[1:]):
            set_times(p, now - 90 * DAY)
        _, doc = run_json(["report", "--format", "json", "--claude-dir", str(root), "--now", str(now)], jenv)
        assert doc["sessions"][0]["decision"] == "keep" and "mount point" in doc["sessions"][0]["reason"]
        p = run_cli(["sweep", "--json", "--claude-dir", str(root), "--now", str(now)], jenv)
        assert (mnt / "on-another-fs.txt").read_text() == "not ours"
        assert p.returncode == 0 and json.loads(p.stdout)["sessions"] == []  # kept, as the report said
        assert all(x.exists() for x in g.paths)
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


@pytest.mark.parametrize("when", ["before-the-sweep", "after-the-plan"])
def test_a_bind_mount_of_the_same_filesystem_inside_a_session_is_never_entered(when, root, jenv, now, tmp_path):
    """A bind mount has the root's st_dev: only the mount table tells it is one. Its source, outside the
    Claude dir, keeps every file. Mounted before the sweep, the scan sees it (the session is kept, and the
    report says so); mounted after the plan, the removal refuses the session (put back whole, exit 1)."""
    g = make_session(root, "/p", now - 90 * DAY)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("not the janitor's")
    mnt = root / "projects" / "-p" / g.session_id / "subagents" / "mnt"
    mnt.mkdir()
    for p in (outside / "precious.txt", outside, mnt, mnt.parent, *g.paths[1:]):
        set_times(p, now - 90 * DAY)
    sweep = ["sweep", "--json", "--claude-dir", str(root), "--now", str(now)]
    run = Paused(sweep, jenv, "after-plan", tmp_path / "hook") if when == "after-the-plan" else None
    if subprocess.run(["mount", "--bind", str(outside), str(mnt)]).returncode:
        if run:
            run.release()
        pytest.skip("cannot bind-mount here")
    try:
        assert os.stat(mnt).st_dev == os.stat(root).st_dev  # the case st_dev cannot see
        if run is None:
            _, doc = run_json(["report", "--format", "json", "--claude-dir", str(root), "--now", str(now)], jenv)
            assert doc["sessions"][0]["decision"] == "keep" and "mount point" in doc["sessions"][0]["reason"]
        p = run.release() if run else run_cli(sweep, jenv)
        assert (outside / "precious.txt").read_text() == "not the janitor's"
        acted = json.loads(p.stdout)["sessions"]
        if run is None:
            assert p.returncode == 0 and acted == [], p.stdout + p.stderr  # kept: nothing to do
        else:
            assert p.returncode == 1, p.stdout + p.stderr
            assert acted[0]["result"] == "failed" and "mount point" in acted[0]["error"], acted
        assert all(x.exists() for x in g.paths)  # nothing of the session was deleted
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


def test_mount_points_are_read_with_mountinfo_escapes():
    from claude_janitor.fs.mounts import parse_mount_points

    text = (
        b"36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw\n"
        b"37 35 98:0 / /home/u/.claude/a\\134b\\012c rw - ext4 /dev/vda rw\n"
        b"garbage\n"
    )
    assert parse_mount_points(text) == ["/mnt/with space", "/home/u/.claude/a\\b\nc"]


def test_hard_linked_file_other_link_untouched(root, jenv, now, tmp_path):
    g = make_session(root, "/p", now - 90 * DAY)
    keep = tmp_path / "elsewhere.jsonl"
    os.link(g.paths[0], keep)
    os.link(root / "file-history" / g.session_id / "abc@v1", tmp_path / "fh-copy")
    content = keep.read_bytes()
    p = run_cli(["sweep", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert p.returncode == 0, p.stderr
    assert intact_or_gone(g.paths) == "gone"
    assert keep.read_bytes() == content and (tmp_path / "fh-copy").read_text() == "old file content\n"


def test_fifos_sockets_and_devices_are_never_opened(root, jenv, now, tmp_path, monkeypatch):
    g = make_session(root, "/p", now - 90 * DAY)
    proj = root / "projects" / "-p"
    os.mkfifo(proj / "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa.jsonl")  # a FIFO named like a transcript
    os.mkfifo(proj / g.session_id / "pipe")
    s = socket.socket(socket.AF_UNIX)
    monkeypatch.chdir(proj / g.session_id)  # AF_UNIX paths are short: bind relative to the cwd
    s.bind("sock")
    if os.geteuid() == 0:
        os.mknod(proj / g.session_id / "null", 0o600 | 0o020000, os.makedev(1, 3))
    os.mkfifo(root / "debug" / "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb.txt")
    for p in [*(proj / g.session_id).iterdir(), *g.paths[1:]]:
        set_times(p, now - 90 * DAY)
    # if anything opened a FIFO for reading it would block forever: the timeout would fail the test
    p = run_cli(["report", "--format", "json", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert [(x["session_id"], x["decision"]) for x in doc["sessions"]] == [(g.session_id, "delete")]
    assert any("aaaaaaaa" in u for u in doc["unknown"]) and any("bbbbbbbb" in u for u in doc["unknown"])
    p = run_cli(["sweep", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert p.returncode == 0, p.stderr
    assert intact_or_gone(g.paths) == "gone", p.stdout
    assert (proj / "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa.jsonl").exists()  # not ours: left alone
    s.close()


HOSTILE = [
    b"-rf",
    b"--help",
    b"new\nline",
    b"bad\xff\xfeutf8",
    b"tab\tand space",
    b"x" * 249,
    b"$(reboot)",
    b"..jsonl-dots",
]


def test_hostile_names_are_handled(root, jenv, now):
    base = os.fsencode(root / "projects")
    made = []
    for i, proj in enumerate([b"-ok", b"--dash-project", b"-nl\nproj", b"-bad\xffproj", b"y" * 255]):
        os.makedirs(base + b"/" + proj)
        for sid in HOSTILE[i : i + 4]:
            p = (
                base + b"/" + proj + b"/" + sid + b".jsonl"[: 255 - len(sid)]
                if len(sid) > 249
                else base + b"/" + proj + b"/" + sid + b".jsonl"
            )
            with open(p, "wb") as f:
                f.write(b'{"timestamp": "2020-01-01T00:00:00Z", "cwd": "/w\\nx"}\n\xff\n')
            os.utime(p, (now - 90 * DAY, now - 90 * DAY))
            made.append(p)
    for fmt in ("table", "json", "markdown"):
        p = run_cli(["report", "--format", fmt, "--claude-dir", str(root), "--now", str(now)], jenv)
        assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    _, doc = run_json(["report", "--format", "json", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert len(doc["sessions"]) == len(made)
    table = run_cli(["report", "--claude-dir", str(root), "--now", str(now)], jenv).stdout
    assert "new\\nline" in table  # escaped, one row per session
    p = run_cli(["sweep", "--force", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert p.returncode == 0, p.stderr
    assert not any(os.path.lexists(m) for m in made)
    assert run_cli(["audit", "verify"], jenv).returncode == 0


def _deep(top: Path, depth: int) -> None:
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(depth):
        os.mkdir("d", dir_fd=fd)
        nfd = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = nfd
    with open(os.open("leaf.txt", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd), "w") as f:
        f.write("deep")
    os.close(fd)


def _set_tree_times(top: Path, t: float) -> None:
    """utime every entry of a deep tree, dirfd-relative (paths are too long for the path API)."""
    stack = [os.open(top, os.O_RDONLY | os.O_DIRECTORY)]
    while stack:
        fd = stack.pop()
        for e in os.scandir(fd):
            os.utime(e.name, (t, t), dir_fd=fd, follow_symlinks=False)
            if e.is_dir(follow_symlinks=False):
                stack.append(os.open(e.name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd))
        os.close(fd)
    os.utime(top, (t, t))


@pytest.fixture
def deep_cleanup(root):
    """pytest's own tmp cleanup recurses and cannot remove a 5000-level tree: remove it ourselves."""
    yield
    from claude_janitor.fs.tree import rmtree_at

    fd = os.open(root.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        rmtree_at(fd, root.name, os.fstat(fd).st_dev)
    finally:
        os.close(fd)


def test_5000_level_nesting(root, jenv, now, deep_cleanup):
    g = make_session(root, "/p", now - 90 * DAY)
    deep_root = root / "projects" / "-p" / g.session_id / "tool-results"
    _deep(deep_root, 5000)
    _set_tree_times(root / "projects" / "-p" / g.session_id, now - 90 * DAY)
    p, doc = run_json(["report", "--format", "json", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert p.returncode == 0, p.stderr
    assert doc["sessions"][0]["decision"] == "delete"
    du = run_cli(["du", "--format", "json", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert du.returncode == 0, du.stderr
    stores = {u["store"]: u for u in json.loads(du.stdout)["roots"][0]["stores"]}
    assert stores["projects"]["dirs"] > 5000  # every level counted, past PATH_MAX
    p = run_cli(["sweep", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert p.returncode == 0, p.stderr
    assert intact_or_gone(g.paths) == "gone"


def test_deep_fresh_file_keeps_the_session(root, jenv, now, deep_cleanup):
    """Activity 3000 levels down still counts: the walk must not give up on long paths."""
    g = make_session(root, "/p", now - 90 * DAY)
    _deep(root / "projects" / "-p" / g.session_id / "tool-results", 3000)
    _set_tree_times(root / "projects" / "-p" / g.session_id, now - 90 * DAY)
    # the leaf keeps today's mtime (written just now, i.e. after `now`): treated as recent activity
    fd = os.open(root / "projects" / "-p" / g.session_id / "tool-results", os.O_RDONLY)
    for _ in range(3000):
        nfd = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = nfd
    os.utime("leaf.txt", (now - 60, now - 60), dir_fd=fd)
    os.close(fd)
    _, doc = run_json(["report", "--format", "json", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert doc["sessions"][0]["decision"] == "keep", doc["sessions"][0]["reason"]


MEM_CHECK = """
import resource, subprocess, sys
p = subprocess.run([sys.executable, "-m", "claude_janitor", *sys.argv[1:]], capture_output=True, text=True)
print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.stderr.write(p.stderr)
"""


@pytest.fixture
def fast_root(tmp_path):
    """A cache root on tmpfs where we may mount one (creating 200k files on a busy disk is slow)."""
    top = tmp_path / "fast"
    top.mkdir()
    mounted = (
        os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=512m", "tmpfs", str(top)], capture_output=True
        ).returncode
        == 0
    )
    (top / "claude").mkdir()
    yield top / "claude"
    if mounted:
        subprocess.run(["umount", "-l", str(top)])


def test_200k_entry_directory_bounded_memory(fast_root, jenv, now, tmp_path):
    root = fast_root
    g = make_session(root, "/p", now - 90 * DAY)
    big = root / "projects" / "-p" / g.session_id / "tool-results"
    fd = os.open(big, os.O_RDONLY | os.O_DIRECTORY)
    for i in range(200_000):
        os.close(os.open(f"r{i}", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd))
    os.close(fd)
    _set_tree_times(root / "projects" / "-p" / g.session_id, now - 90 * DAY)
    out = subprocess.run(
        [sys.executable, "-c", MEM_CHECK, "sweep", "--claude-dir", str(root), "--now", str(now)],
        env=jenv,
        capture_output=True,
        text=True,
        timeout=300,
    )
    rc, rss_kib = (int(x) for x in out.stdout.split())
    assert rc == 0, out.stderr
    assert intact_or_gone(g.paths) == "gone"
    assert rss_kib < 150 * 1024, f"max RSS {rss_kib} KiB for a 200k-entry directory"
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > 0
