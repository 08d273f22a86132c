"""model.Pieces: the packed form answers what the list of Piece objects would."""

from __future__ import annotations

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
