"""The daemon's sqlite index and the single-session re-read it drives."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from claude_janitor.cache import scan as cache
from claude_janitor.cache.rescan import rescan
from claude_janitor.daemon.index import Entry, Index, count_sessions
from tests.helpers.cachegen import DAY, make_cache, make_session


def _e(sid: str, **kw) -> Entry:
    base = {"root": "/r", "project": "p", "session_id": sid, "rel": f"projects/p/{sid}.jsonl"}
    base.update(kw)
    return Entry(**base)


def test_seen_inserts_then_updates_keeping_due(tmp_path: Path) -> None:
    ix = Index(tmp_path / "i.db")
    assert ix.seen("/r", "p", "a", "projects/p/a.jsonl", 100.0, 130.0, now=200.0) is True
    assert ix.get(("/r", "p", "a")).due == 130.0
    # Newer activity: the real expiry only moved later, the early due stays (looked at early, then decided).
    assert ix.seen("/r", "p", "a", "projects/p/a.jsonl", 150.0, 180.0, now=201.0) is False
    e = ix.get(("/r", "p", "a"))
    assert (e.last_activity, e.due, e.touched) == (150.0, 130.0, 201.0)
    # Activity moved back (mtime set into the past): due may only come earlier.
    ix.seen("/r", "p", "a", "projects/p/a.jsonl", 50.0, 80.0, now=202.0)
    assert ix.get(("/r", "p", "a")).due == 80.0
    assert ix.count() == 1


def test_due_next_due_and_removal(tmp_path: Path) -> None:
    ix = Index(tmp_path / "i.db")
    ix.put([_e("a", due=10.0), _e("b", due=5.0), _e("c", due=None), _e("d", due=50.0)])
    assert [e.session_id for e in ix.due(10.0)] == ["b", "a"]
    assert ix.next_due() == 5.0
    ix.remove([("/r", "p", "b"), ("/r", "p", "a")])
    assert ix.next_due() == 50.0
    ix.remove([("/r", "p", "d")])
    assert ix.next_due() is None
    assert ix.by_transcript("/r", "projects/p/c.jsonl").session_id == "c"
    assert [e.project for e in ix.find_sid("/r", "c")] == ["p"]


def test_project_keys_timed_other_and_in_root(tmp_path: Path) -> None:
    ix = Index(tmp_path / "i.db")
    ix.put(
        [
            _e("a", last_activity=1.0),
            _e("b", last_activity=None),
            _e("c", project="q", last_activity=2.0),
            _e("d", root="/s", last_activity=3.0),
        ]
    )
    assert ix.project_keys("/r", "p") == {("p", "a"), ("p", "b")}
    assert {e.session_id for e in ix.in_root("/r")} == {"a", "b", "c"}
    keys = {("/r", "p", "a"), ("/r", "q", "c")}
    assert ix.timed_other(keys).session_id == "d"  # "b" has no activity time: it does not count
    assert ix.timed_other(keys | {("/s", "p", "d")}) is None
    # The query plans use the indexes (no whole-table scan per wake-up or per disappeared session).
    db = sqlite3.connect(tmp_path / "i.db")
    plan = " ".join(
        str(r)
        for r in db.execute("EXPLAIN QUERY PLAN SELECT * FROM sessions WHERE root=? AND session_id=?", ("/r", "a"))
    )
    assert "sessions_sid" in plan
    db.close()


def test_replace_root_keeps_rows_the_watcher_touched_during_the_scan(tmp_path: Path) -> None:
    ix = Index(tmp_path / "i.db")
    ix.put([_e("old", due=1.0), _e("other-root", root="/s")])
    ix.seen("/r", "p", "new", "projects/p/new.jsonl", 100.0, 110.0, now=1000.0)  # during the scan
    ix.replace_root("/r", [_e("scanned", due=7.0)], since=999.0)
    assert {e.session_id for e in ix.all()} == {"scanned", "new", "other-root"}


def test_keep_last_rows_are_woken_by_a_new_session(tmp_path: Path) -> None:
    ix = Index(tmp_path / "i.db")
    ix.put([_e("kept", keep_last=True, due=None), _e("plain", due=None), _e("elsewhere", project="q", keep_last=True)])
    assert ix.wake_keep_last("/r", "p", 42.0) == 1
    assert ix.get(("/r", "p", "kept")).due == 42.0
    assert ix.get(("/r", "p", "plain")).due is None
    assert ix.get(("/r", "q", "elsewhere")).due is None


def test_persists_and_counts_read_only(tmp_path: Path) -> None:
    path = tmp_path / "state" / "i.db"
    assert count_sessions(path) is None
    ix = Index(path)
    ix.put([_e("a"), _e("b")])
    ix.set_meta("audit_pos", "1:2")
    ix.close()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert count_sessions(path) == 2
    ix = Index(path)
    assert ix.count() == 2 and ix.get_meta("audit_pos") == "1:2"


def test_a_corrupt_index_is_set_aside_and_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "i.db"
    path.write_bytes(b"this is not a sqlite database" * 100)
    ix = Index(path)
    assert ix.count() == 0
    assert list(tmp_path.glob("i.db.corrupt-*"))


def test_an_old_schema_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "i.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT); INSERT INTO meta VALUES "
        "('schema', '0'); CREATE TABLE sessions (x);"
    )
    db.close()
    assert Index(path).count() == 0


def test_rescan_gives_each_session_the_pieces_a_full_scan_gives(tmp_path: Path, now: float) -> None:
    root = tmp_path / "claude"
    make_cache(root, now, projects=3, per_project=3)
    full = cache.scan_root(root)
    want = [(s.project, s.session_id) for s in full.sessions]
    got = rescan(str(root), want)
    for s in full.sessions:
        r = got[(s.project, s.session_id)]
        assert r is not None, s.session_id
        assert sorted(r.pieces, key=lambda p: p.rel) == sorted(s.pieces, key=lambda p: p.rel)
        assert (r.last_record_time, r.project_path, r.unreadable) == (s.last_record_time, s.project_path, s.unreadable)
    assert any(p.store == "session-file" for s in full.sessions for p in s.pieces)  # <id>.precompact.json…
    # Read alone, a session still gets all its pieces (its todos among many others').
    s = full.sessions[-1]
    one = rescan(str(root), [(s.project, s.session_id)])[(s.project, s.session_id)]
    assert sorted(one.pieces, key=lambda p: p.rel) == sorted(s.pieces, key=lambda p: p.rel)
    assert any(p.store == "todos" for p in one.pieces)


def test_rescan_finds_every_kind_of_file_beside_a_transcript_whatever_the_ids_lengths(
    tmp_path: Path, now: float
) -> None:
    """The re-read parses only the names in a project dir that begin with a wanted id: each kind of file
    beside a transcript (every suffix, its .tmp copies, a compaction's and a rewrite's leftovers) is still
    found, for ids of several lengths and for ids that begin other ids. Fails if a name is passed over
    that a full scan gives the session (e.g. only 36-character ids looked for)."""
    from claude_janitor.cache.layout import SIBLING_SUFFIXES

    root = tmp_path / "claude"
    sids = [
        "0f8c2a55-1c1e-4a7b-9c1d-2f4e6a8b0c1d",
        "0f8c2a55-1c1e-4a7b-9c1d-2f4e6a8b0c1d-fork",  # begins with the one above
        "short",
        "shorter",  # begins with the one above
        "a",
    ]
    for sid in sids:
        make_session(root, "/w/p", now - 40 * DAY, sid=sid, side=False)
    proj = root / "projects" / "-w-p"
    for sid in sids:
        for suf in SIBLING_SUFFIXES:
            (proj / f"{sid}{suf}").write_text("{}")
            (proj / f"{sid}{suf}.tmp.0123abcd").write_text("{}")
        (proj / f"{sid}.jsonl.compact.tmp.99").write_text("")
        (proj / f"{sid}.jsonl.superseded-2026").write_text("")
    (proj / "unrelated.json").write_text("{}")
    full = {(s.project, s.session_id): s for s in cache.scan_root(root).sessions}
    assert set(full) == {("-w-p", sid) for sid in sids}

    def rels(s) -> list[str]:
        return sorted(p.rel for p in s.pieces)

    for s in full.values():
        assert len([p for p in s.pieces if p.store == "session-file"]) == 2 * len(SIBLING_SUFFIXES) + 2
    together = rescan(str(root), sorted(full))
    for key, s in full.items():
        assert rels(together[key]) == rels(s), key
        alone = rescan(str(root), [key])[key]
        assert alone is not None and rels(alone) == rels(s), key


def test_rescan_reports_gone_sessions_and_orphans(tmp_path: Path, now: float) -> None:
    root = tmp_path / "claude"
    g = make_session(root, "/w/a", now - DAY)
    orphan = make_session(root, "/w/b", now - DAY, sid="11111111-2222-3333-4444-555555555555")
    # Make the second one an orphan (side files only), as Claude Code's own sweep leaves them.
    orphan.paths[0].unlink()
    import shutil

    shutil.rmtree(orphan.paths[1])
    got = rescan(
        str(root),
        [
            (g.project, g.session_id),
            ("", orphan.session_id),
            (g.project, "99999999-0000-0000-0000-000000000000"),
            ("nope", "x"),
        ],
    )
    assert got[(g.project, g.session_id)] is not None
    o = got[("", orphan.session_id)]
    assert o is not None and {p.store for p in o.pieces} == {"file-history", "session-env", "tasks", "todos", "debug"}
    assert got[(g.project, "99999999-0000-0000-0000-000000000000")] is None
    assert got[("nope", "x")] is None
    # Once a transcript for the orphan's id exists, the orphan is no longer a session of its own.
    make_session(root, "/w/c", now, sid=orphan.session_id, side=False)
    assert rescan(str(root), [("", orphan.session_id)])[("", orphan.session_id)] is None


def test_the_space_of_removed_rows_is_given_back(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite3"
    ix = Index(path)
    rows = [_e(f"{i:08d}-0000-4000-8000-000000000000", rel=f"projects/p/{i}.jsonl" + "x" * 200) for i in range(20000)]
    ix.put(rows)
    ix.vacuum_if_sparse()  # nothing to give back yet: kept as is
    full = path.stat().st_size
    assert full > 4_000_000
    ix.remove([e.key for e in rows[:19000]])
    assert path.stat().st_size == full  # sqlite keeps the pages of removed rows
    assert ix.vacuum_if_sparse() is True
    assert path.stat().st_size < full / 5 and ix.count() == 1000
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    assert ix.get(rows[-1].key) == rows[-1]
    assert ix.vacuum_if_sparse() is False  # nothing more to give back
    ix.close()
