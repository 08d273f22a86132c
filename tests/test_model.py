"""model.Pieces: the packed form answers what the list of Piece objects would."""

from __future__ import annotations

import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st

from claude_janitor.model import Piece, Pieces, Session

SID = "0f0e0d0c-1111-2222-3333-444455556666"
STORES = ("transcript", "session-dir", "file-history", "session-env", "debug", "todos")
# Names built from the parts the packing replaces (the session id, the project dir) and look-alikes.
PART = st.sampled_from([SID, SID[:-1], "P", "projects", "projects/P", "Q", "x", ".jsonl", "-", "/"])
REL = st.lists(PART, min_size=1, max_size=5).map("".join)


@given(
    rels=st.lists(REL, min_size=0, max_size=8, unique=True),
    stores=st.lists(st.sampled_from(STORES), min_size=8, max_size=8),
    probes=st.lists(REL, max_size=8),
    project=st.sampled_from(["P", "", SID, "projects"]),
)
def test_has_and_first_agree_with_the_list(rels, stores, probes, project):
    ps = [Piece(r, s, False, 1, 1.0, 2, 3, 4, 5) for r, s in zip(rels, stores, strict=False)]
    packed = Pieces(ps, SID, project)
    assert packed.rels() == [p.rel for p in ps]
    for r in rels + probes:
        assert packed.has(r) == (r in rels), r
    for s in STORES:
        assert packed.first(s) == next((p for p in ps if p.store == s), None)
    assert list(packed.inodes()) == [(p.is_dir, p.dev, p.ino) for p in ps]


@given(
    first=st.lists(st.sampled_from(STORES), min_size=1, max_size=4),
    more=st.lists(st.sampled_from(STORES), min_size=1, max_size=4),
)
def test_pieces_read_again_after_a_change_or_between_two_sessions_are_the_current_ones(first, more):
    """The Piece objects last made are made once and given again (a session being removed is read
    several times): never after a piece was added, and never those of another Pieces."""
    a_list = [Piece(f"{s}/{SID}-{i}", s, False, i, 1.0, i, 3, 4, 5) for i, s in enumerate(first)]
    b_list = [Piece(f"{s}/b{i}", s, True, i, 2.0, i, 3, 4, 5) for i, s in enumerate(more)]
    a, b = Pieces(a_list, SID, "P"), Pieces(b_list, "", "")
    assert list(a) == a_list and list(a) == a_list and a.rels() == [p.rel for p in a_list]
    assert list(b) == b_list and list(a) == a_list and list(b) == b_list
    extra = Piece(f"debug/{SID}.txt", "debug", False, 9, 3.0, 9, 3, 4, 5)
    assert list(a) == a_list  # made last: then changed
    a.append(extra)
    assert list(a) == [*a_list, extra] and a.rels()[-1] == extra.rel
    for stores in (["debug"], ["transcript", "session-dir"], ["tasks"], []):
        assert a.has_store(stores) == any(p.store in stores for p in a)
        assert b.has_store(stores) == any(p.store in stores for p in b)


def test_a_piece_that_does_not_pack_keeps_has_and_first_working():
    ps = [Piece(f"projects/P/{SID}.jsonl", "transcript", False, 1, 1.0), Piece("debug/a", "debug", False, 2**70, 1.0)]
    packed = Pieces(ps, SID, "P")  # 2**70 bytes do not fit the packed numbers: kept as a list
    assert packed._list is not None
    assert packed.has("debug/a") and not packed.has("debug/b")
    assert packed.first("debug") == ps[1] and packed.first("todos") is None


@given(st.one_of(st.none(), st.text(max_size=30), st.text(max_size=30).map(lambda t: t + "…")))
def test_a_title_reads_back_as_it_was_set(value):
    s = Session("0f0e0d0c-1111-2222-3333-444455556666", "/root", "P")
    s.title = value
    assert s.title == value
    if value and value.endswith("…") and value[:-1].isascii():
        assert s.title_text is not None and s.title_text.isascii()  # held one byte a character


@given(
    st.lists(
        st.tuples(
            st.sampled_from(STORES),
            st.booleans(),
            st.integers(0, 2**63 - 1),
            st.integers(0, 2**64 - 1),
            st.sampled_from([0, 3, 66306, 2**64 - 1]),
        ),
        max_size=8,
    )
)
def test_every_number_of_a_piece_reads_back_as_it_was_packed(pieces):
    """The packed numbers (a store and dir flag in one byte, the device as an index into the devices seen)
    give back each piece whole, by every way they are read."""
    ps = [Piece(f"{s}/{i}", s, d, b, 1.5 + i, ino, dev, 10**18 + i, i) for i, (s, d, b, ino, dev) in enumerate(pieces)]
    packed = Pieces(ps, SID, "P")
    assert packed._list is None
    assert list(packed) == ps and len(packed) == len(ps)
    assert list(packed.inodes()) == [(p.is_dir, p.dev, p.ino) for p in ps]
    assert packed.total_bytes() == sum(p.bytes for p in ps)
    assert packed.newest_mtime() == max((p.mtime for p in ps), default=None)
    assert packed.stores() == {p.store for p in ps}
    for s in STORES:
        assert packed.first(s) == next((p for p in ps if p.store == s), None)


def test_pieces_on_more_devices_than_pack_are_kept_whole():
    """Past 256 devices (one process) a new one does not pack: its pieces are kept as a list, and read back
    the same. In a process of its own, as the devices seen are the process's."""
    code = (
        "from claude_janitor.model import Piece, Pieces\n"
        "made = [Pieces([Piece(f'debug/{d}', 'debug', d % 2 == 0, d, 1.0, d, 1000 + d, 1, 2)]) for d in range(300)]\n"
        "assert [p._list is None for p in made] == [True] * 256 + [False] * 44\n"
        "assert [next(iter(p)).dev for p in made] == [1000 + d for d in range(300)]\n"
        "assert [list(p.inodes()) for p in made] == [[(d % 2 == 0, 1000 + d, d)] for d in range(300)]\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
