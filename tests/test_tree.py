"""fs/tree.py's rmtree_listed: a tree deleted as a walk listed it, on real files. What changed since the
listing is never followed nor deleted: an entry made since, a subdir swapped for a symlink or another dir,
a file swapped for a dir."""

from __future__ import annotations

import errno
import os
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


def test_a_3000_level_tree_is_deleted_without_recursion(tmp_path):
    d = tmp_path / "deep"
    d.mkdir()
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(3000):  # by fd: the path is longer than PATH_MAX
        os.mkdir("d", dir_fd=fd)
        nfd = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = nfd
    os.close(os.open("leaf", os.O_CREAT | os.O_WRONLY, dir_fd=fd))
    os.close(fd)
    listing = listed(tmp_path, "deep")
    assert not listing.full
    remove(tmp_path, "deep", listing)
    assert not d.exists()


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
    with pytest.raises(OSError) as e:
        remove(tmp_path, "t", listing)
    assert e.value.errno in (errno.EISDIR, errno.EPERM)
    assert (tmp_path / "t" / "a" / "g.txt" / "inside").read_bytes() == b"kept"


def test_a_listing_past_its_bound_keeps_nothing(tmp_path):
    (tmp_path / "t").mkdir()
    for i in range(tree.LISTED_MAX):
        (tmp_path / "t" / f"f{i}").write_bytes(b"")
    listing = listed(tmp_path, "t")  # the dir and its files: one entry more than it holds
    assert listing.full and listing.dirs == {}
    os.unlink(tmp_path / "t" / "f0")
    assert not listed(tmp_path, "t").full  # exactly as many as it holds
