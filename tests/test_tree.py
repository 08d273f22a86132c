"""fs/tree.py's rmtree_listed: a tree deleted as a walk listed it, on real files. What changed since the
listing is never followed nor deleted: an entry made since, a subdir swapped for a symlink or another dir,
a file swapped for a dir."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import pytest

from claude_janitor.fs import tree
from claude_janitor.fs.tree import Changed, Listing, rmtree_listed, walk_at
from tests.helpers.races import tree_state


def make(top: Path, outside: Path) -> None:
    (top / "a" / "b").mkdir(parents=True)
    (top / "empty").mkdir()
    (top / "f.txt").write_bytes(b"f")
    (top / "a" / "g.txt").write_bytes(b"g")
    (top / "a" / "b" / "h.txt").write_bytes(b"h")
    (top / "a" / "link").symlink_to(outside)  # a symlink is unlinked, never followed
    os.mkfifo(top / "a" / "fifo")


def listed(parent: Path, name: str) -> Listing:
    listing = Listing()
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for rel, st in walk_at(fd, name, os.stat(parent).st_dev):
            listing.add(rel, st)
    finally:
        os.close(fd)
    return listing


def remove(parent: Path, name: str, listing: Listing) -> None:
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        rmtree_listed(fd, name, listing, os.stat(parent).st_dev)
    finally:
        os.close(fd)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    d = tmp_path / "outside"
    (d / "b").mkdir(parents=True)
    (d / "g.txt").write_bytes(b"precious")
    (d / "b" / "h.txt").write_bytes(b"precious too")
    return d


def test_a_listed_tree_is_deleted_whole_and_a_symlink_in_it_is_not_followed(tmp_path, outside):
    make(tmp_path / "t", outside)
    before = tree_state(outside)
    listing = listed(tmp_path, "t")
    assert not listing.full and set(listing.dirs) == {"t", "t/a", "t/a/b", "t/empty"}
    remove(tmp_path, "t", listing)
    assert not (tmp_path / "t").exists()
    assert tree_state(outside) == before


def test_a_tree_deeper_than_pythons_recursion_limit_is_deleted(tmp_path):
    d = tmp_path / "deep"
    d.mkdir()
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    levels = 1020  # > sys.getrecursionlimit(), and its dir paths (~1 MB in all) within LISTED_BYTES
    assert levels > sys.getrecursionlimit()
    for _ in range(levels):
        os.mkdir("d", dir_fd=fd)
        nfd = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = nfd
    os.close(os.open("leaf", os.O_CREAT | os.O_WRONLY, dir_fd=fd))
    os.close(fd)
    try:
        listing = listed(tmp_path, "deep")
        assert not listing.full
        remove(tmp_path, "deep", listing)
        assert not d.exists()
    finally:
        if d.exists():  # pytest's own tmp cleanup recurses: it cannot remove this tree
            fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
            try:
                tree.rmtree_at(fd, "deep", os.fstat(fd).st_dev)
            finally:
                os.close(fd)


def test_an_entry_made_after_the_listing_is_kept_and_the_rmdir_fails(tmp_path, outside):
    make(tmp_path / "t", outside)
    listing = listed(tmp_path, "t")
    (tmp_path / "t" / "a" / "b" / "late.txt").write_bytes(b"written after the check")
    with pytest.raises(OSError) as e:
        remove(tmp_path, "t", listing)
    assert e.value.errno == errno.ENOTEMPTY
    assert (tmp_path / "t" / "a" / "b" / "late.txt").read_bytes() == b"written after the check"


def test_a_listed_subdir_swapped_for_a_symlink_to_outside_is_not_followed(tmp_path, outside):
    make(tmp_path / "t", outside)
    listing = listed(tmp_path, "t")
    os.rename(tmp_path / "t" / "a" / "b", tmp_path / "b-moved")
    (tmp_path / "t" / "a" / "b").symlink_to(outside / "b")  # holds an h.txt, as the listed b did
    before = tree_state(outside)
    with pytest.raises(OSError) as e:
        remove(tmp_path, "t", listing)
    assert e.value.errno in (errno.ELOOP, errno.ENOTDIR)
    assert tree_state(outside) == before


def test_a_listed_subdir_swapped_for_another_dir_is_left_alone(tmp_path, outside):
    make(tmp_path / "t", outside)
    listing = listed(tmp_path, "t")
    os.rename(tmp_path / "t" / "a" / "b", tmp_path / "b-moved")
    other = tmp_path / "t" / "a" / "b"
    other.mkdir()
    (other / "h.txt").write_bytes(b"another file of the same name")
    with pytest.raises(Changed):
        remove(tmp_path, "t", listing)
    assert (other / "h.txt").read_bytes() == b"another file of the same name"


def test_a_listed_file_swapped_for_a_dir_is_left_alone(tmp_path, outside):
    make(tmp_path / "t", outside)
    listing = listed(tmp_path, "t")
    os.unlink(tmp_path / "t" / "a" / "g.txt")
    (tmp_path / "t" / "a" / "g.txt").mkdir()
    (tmp_path / "t" / "a" / "g.txt" / "inside").write_bytes(b"kept")
    # The new dir has another inode number (Changed), or, where the filesystem gave it the unlinked
    # file's number (ext4 on this VM often does), the unlink is refused for a dir (EISDIR/EPERM). Either way it stays.
    with pytest.raises((Changed, OSError)) as e:
        remove(tmp_path, "t", listing)
    if isinstance(e.value, OSError):
        assert e.value.errno in (errno.EISDIR, errno.EPERM)
    assert (tmp_path / "t" / "a" / "g.txt" / "inside").read_bytes() == b"kept"


def test_a_listed_file_replaced_by_a_rename_over_its_name_is_kept(tmp_path, outside):
    make(tmp_path / "t", outside)
    listing = listed(tmp_path, "t")
    (tmp_path / "t" / "a" / "new").write_bytes(b"saved after the check")
    os.rename(tmp_path / "t" / "a" / "new", tmp_path / "t" / "a" / "g.txt")
    with pytest.raises(Changed):
        remove(tmp_path, "t", listing)
    assert (tmp_path / "t" / "a" / "g.txt").read_bytes() == b"saved after the check"


def test_a_listing_past_its_bound_keeps_nothing(tmp_path):
    (tmp_path / "t").mkdir()
    for i in range(tree.LISTED_MAX):
        (tmp_path / "t" / f"f{i}").write_bytes(b"")
    listing = listed(tmp_path, "t")  # the dir and its files: one entry more than it holds
    assert listing.full and listing.dirs == {}
    os.unlink(tmp_path / "t" / "f0")
    assert not listed(tmp_path, "t").full  # exactly as many as it holds


def test_a_listing_of_long_deep_paths_past_its_byte_bound_keeps_nothing(tmp_path):
    d = tmp_path / "t"
    d.mkdir()
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(100):  # 100 levels of 255-byte names: ~1.3 MB of dir paths in 101 entries
        os.mkdir("n" * 255, dir_fd=fd)
        nfd = os.open("n" * 255, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = nfd
    os.close(fd)
    listing = listed(tmp_path, "t")
    assert listing.n < tree.LISTED_MAX and listing.full and listing.dirs == {}


# ---- the removal's purge, through the listing (removal/staging.py) --------------------------------------


def test_a_purge_that_fails_closes_the_dir_fds_of_every_piece(root, now):
    """With the Root's dir cache full (more than MAX_CACHED_DIRS dirs opened), each piece's dir chain is
    the removal's to close. A file made in the committed entry after the verify makes the purge fail and put
    back what is left; the fds of every piece, put back or already deleted, are closed all the same (a
    daemon would otherwise run out of them)."""
    from claude_janitor.cache.scan import scan_root
    from claude_janitor.fs.safefs import Root
    from claude_janitor.removal import checks, staging
    from tests.helpers.cachegen import DAY, make_session

    g = make_session(root, "/p", now - 90 * DAY)
    (s,) = [s for s in scan_root(root).sessions if s.session_id == g.session_id]
    for i in range(Root.MAX_CACHED_DIRS + 10):
        (root / "filler" / f"d{i}").mkdir(parents=True)
    r = Root(root)
    try:
        for i in range(Root.MAX_CACHED_DIRS + 10):
            fds, _, owned = r.dir_chain(f"filler/d{i}/x")
            for fd in fds[1:] if owned else []:
                os.close(fd)
        fds, _, owned = r.dir_chain(f"projects/-p/{g.session_id}.jsonl")
        assert owned  # the session's chains are the removal's from here on
        for fd in fds[1:]:
            os.close(fd)
        staging.stage_fd(r)
        before = set(os.listdir("/proc/self/fd"))
        rem = staging.Removal(r, s, "delete")  # as staging.remove does
        rem.stage(sorted(s.pieces, key=lambda p: p.store == "transcript"))
        rem.verify(checks.matches_scan(s))
        rem.commit()
        staged = staging.staged_name(f"projects/-p/{g.session_id}")
        late = root / ".janitor-removing" / f"{rem.entry}.doomed" / staged / "subagents" / "late.jsonl"
        late.write_bytes(b"written after the verify\n")  # as through a dir fd held from before
        with pytest.raises(OSError):
            rem.purge()
        back = root / "projects" / "-p" / g.session_id / "subagents" / "late.jsonl"
        assert back.read_bytes() == b"written after the verify\n" and g.paths[0].exists()
        assert set(os.listdir("/proc/self/fd")) == before
    finally:
        r.close()


def test_a_hostile_tail_of_many_lines_is_not_kept_parsed(tmp_path):
    """A transcript's Records keep parsed lines for a second use up to RECORDS_KEPT bytes of lines: a tail of
    thousands of distinct timestamp-less lines (read up to TAIL_MAX) is parsed, not held."""
    import tracemalloc

    from claude_janitor.cache.transcript import read_tail

    lines = [b'{"a":[' + b",".join([b"[]"] * 330) + b'],"n":%d}\n' % i for i in range(3200)]
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"".join(lines)[: 2 << 20])
    fd = os.open(path, os.O_RDONLY)
    tracemalloc.start()
    try:
        info = read_tail(fd, path.stat().st_size)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        os.close(fd)
    assert info.last_time is None and info.bytes_read == 1 << 20
    assert held < 4 * info.bytes_read, f"{held / 1e6:.1f} MB held after reading {info.bytes_read / 1e6:.1f} MB"
