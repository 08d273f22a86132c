"""The daemon's index of known sessions: sqlite in the state dir, fed by the watcher and by sweeps.

The index is a cache of hints, never the source of truth. Each row says when its session should next be
looked at (``due``): the exact expiry from the last decision, or, for a session seen only by the watcher, a
lower bound of its expiry. A wrong hint can only make the daemon look too early (it then re-scans the
session and decides from what is on disk) or too late (the periodic full scan catches up). Every row is
replaced from disk by each full scan.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from claude_janitor.daemon.clock import REAL, Clock

SCHEMA_VERSION = "2"

CACHE_KIB = 2048
Key = tuple[str, str, str]  # (root, project, session_id), as Session.key

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    root TEXT NOT NULL,
    project TEXT NOT NULL,
    session_id TEXT NOT NULL,
    rel TEXT,                 -- the transcript, relative to root (NULL: no transcript)
    last_activity REAL,       -- newest activity known (seconds since the epoch)
    bytes INTEGER NOT NULL DEFAULT 0,
    due REAL,                 -- look at it again at this time; NULL: only at the next full scan
    keep_last INTEGER NOT NULL DEFAULT 0,  -- kept only by keep_last: a new session in its project may expire it
    decided REAL,             -- when it was last decided (NULL: only seen by the watcher)
    reason TEXT,
    touched REAL,             -- when the watcher last updated it
    PRIMARY KEY (root, project, session_id)
);
CREATE INDEX IF NOT EXISTS sessions_due ON sessions(due) WHERE due IS NOT NULL;
CREATE INDEX IF NOT EXISTS sessions_sid ON sessions(root, session_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""


@dataclass(frozen=True, slots=True)
class Entry:
    root: str
    project: str
    session_id: str
    rel: str | None = None
    last_activity: float | None = None
    bytes: int = 0
    due: float | None = None
    keep_last: bool = False
    decided: float | None = None
    reason: str | None = None
    touched: float | None = None

    @property
    def key(self) -> Key:
        return (self.root, self.project, self.session_id)


_COLS = "root, project, session_id, rel, last_activity, bytes, due, keep_last, decided, reason, touched"
_MARKS = ",".join("?" * 11)


def _entry(row: tuple[Any, ...]) -> Entry:
    return Entry(row[0], row[1], row[2], row[3], row[4], row[5] or 0, row[6], bool(row[7]), row[8], row[9], row[10])


def _values(e: Entry) -> tuple[Any, ...]:
    return (
        e.root,
        e.project,
        e.session_id,
        e.rel,
        e.last_activity,
        e.bytes,
        e.due,
        int(e.keep_last),
        e.decided,
        e.reason,
        e.touched,
    )


class Index:
    """Thread-safe (one connection behind a lock): the watcher thread and the sweep thread both write."""

    def __init__(self, path: Path, clock: Clock = REAL) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()
        try:
            self._db = self._open()
        except sqlite3.DatabaseError:
            # A cache: if it is corrupt, set it aside and start over (the next full scan refills it).
            aside = path.with_name(f"{path.name}.corrupt-{int(clock.time())}")
            os.replace(path, aside)
            for suffix in ("-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(str(path) + suffix)
            self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        os.close(fd)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")  # the daemon lives long: keep its page cache small
            version = None
            if db.execute("SELECT name FROM sqlite_master WHERE name='meta'").fetchone():
                row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
                version = row[0] if row else None
                if version != SCHEMA_VERSION:
                    db.executescript("DROP TABLE IF EXISTS sessions; DROP TABLE IF EXISTS meta;")
            db.executescript(_SCHEMA)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            db.execute("SELECT count(*) FROM sessions").fetchone()
        except BaseException:
            db.close()
            raise
        return db

    @contextmanager
    def _tx(self) -> Iterator[None]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- reading ----------------------------------------------------------------------------------

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM sessions").fetchone()[0])

    def get(self, key: Key) -> Entry | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLS} FROM sessions WHERE root=? AND project=? AND session_id=?", key
            ).fetchone()
        return _entry(row) if row else None

    def all(self) -> list[Entry]:
        with self._lock:
            return [_entry(r) for r in self._db.execute(f"SELECT {_COLS} FROM sessions")]

    def in_project(self, root: str, project: str) -> list[Entry]:
        with self._lock:
            return [
                _entry(r)
                for r in self._db.execute(f"SELECT {_COLS} FROM sessions WHERE root=? AND project=?", (root, project))
            ]

    def project_keys(self, root: str, project: str) -> set[tuple[str, str]]:
        """(project, session_id) of every row of one project (what a keep_last ranking must read)."""
        with self._lock:
            return {
                (project, r[0])
                for r in self._db.execute("SELECT session_id FROM sessions WHERE root=? AND project=?", (root, project))
            }

    def timed_other(self, keys: set[Key]) -> Entry | None:
        """A row with a known last activity that is not one of ``keys`` (None if every such row is)."""
        with self._lock:
            for r in self._db.execute(
                f"SELECT {_COLS} FROM sessions WHERE last_activity IS NOT NULL LIMIT ?", (len(keys) + 1,)
            ):
                if (r[0], r[1], r[2]) not in keys:
                    return _entry(r)
        return None

    def in_root(self, root: str) -> list[Entry]:
        with self._lock:
            return [_entry(r) for r in self._db.execute(f"SELECT {_COLS} FROM sessions WHERE root=?", (root,))]

    def due(self, until: float) -> list[Entry]:
        """Rows whose ``due`` time is at or before ``until``, soonest first."""
        with self._lock:
            return [
                _entry(r)
                for r in self._db.execute(
                    f"SELECT {_COLS} FROM sessions WHERE due IS NOT NULL AND due <= ? ORDER BY due", (until,)
                )
            ]

    def next_due(self) -> float | None:
        with self._lock:
            row = self._db.execute("SELECT min(due) FROM sessions WHERE due IS NOT NULL").fetchone()
        return row[0] if row else None

    def by_transcript(self, root: str, rel: str) -> Entry | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_COLS} FROM sessions WHERE root=? AND rel=?", (root, rel)).fetchone()
        return _entry(row) if row else None

    # ---- writing ----------------------------------------------------------------------------------

    def seen(
        self, root: str, project: str, session_id: str, rel: str, mtime: float, low_due: float | None, now: float
    ) -> bool:
        """The watcher saw a transcript written: record its activity. True if the session is new.

        ``low_due`` is a lower bound of its expiry computed from ``mtime``. An existing row keeps its
        ``due`` when the activity moved forward (the real expiry only moved later: at worst the row is
        looked at early, and then decided from disk); if the mtime moved back, ``due`` may only come
        earlier."""
        with self._tx():
            cur = self._db.execute(
                "UPDATE sessions SET rel=?, touched=?, "
                "due=CASE WHEN ? < coalesce(last_activity, 0) THEN min(coalesce(due, ?), ?) ELSE due END, "
                "last_activity=? WHERE root=? AND project=? AND session_id=?",
                (rel, now, mtime, low_due, low_due, mtime, root, project, session_id),
            )
            if cur.rowcount:
                return False
            self._db.execute(
                f"INSERT INTO sessions ({_COLS}) VALUES ({_MARKS})",
                _values(Entry(root, project, session_id, rel, mtime, 0, low_due, touched=now)),
            )
            return True

    def remove(self, keys: Iterable[Key]) -> None:
        with self._tx():
            self._db.executemany("DELETE FROM sessions WHERE root=? AND project=? AND session_id=?", list(keys))

    def put(self, entries: Iterable[Entry]) -> None:
        with self._tx():
            self._db.executemany(
                f"INSERT OR REPLACE INTO sessions ({_COLS}) VALUES ({_MARKS})", [_values(e) for e in entries]
            )

    def replace_root(self, root: str, entries: Iterable[Entry], *, since: float) -> None:
        """A full scan of ``root`` that started at ``since``: its rows become ``entries``, plus the rows the
        watcher touched after the scan started (sessions the scan may have missed)."""
        with self._tx():
            self._db.execute("DELETE FROM sessions WHERE root=? AND (touched IS NULL OR touched < ?)", (root, since))
            self._db.executemany(
                f"INSERT OR REPLACE INTO sessions ({_COLS}) VALUES ({_MARKS})", [_values(e) for e in entries]
            )

    def find_sid(self, root: str, session_id: str) -> list[Entry]:
        with self._lock:
            return [
                _entry(r)
                for r in self._db.execute(
                    f"SELECT {_COLS} FROM sessions WHERE root=? AND session_id=?", (root, session_id)
                )
            ]

    def wake_keep_last(self, root: str, project: str, due: float) -> int:
        """A new session appeared in a project: sessions kept only by keep_last there may now expire."""
        with self._tx():
            return self._db.execute(
                "UPDATE sessions SET due=min(coalesce(due, ?), ?) WHERE root=? AND project=? AND keep_last=1",
                (due, due, root, project),
            ).rowcount

    def wake_sessions(self, session_ids: Iterable[str], due: float) -> int:
        """Have these sessions (in any project and root) looked at again by ``due`` (e.g. just unpinned)."""
        ids = list(session_ids)
        with self._tx():
            return sum(
                self._db.execute(
                    "UPDATE sessions SET due=min(coalesce(due, ?), ?) WHERE session_id=?", (due, due, sid)
                ).rowcount
                for sid in ids
            )

    def vacuum_if_sparse(self, *, min_free_pages: int = 256, free_fraction: float = 0.25) -> bool:
        """Give back the space of removed rows when it is worth it (at least ``min_free_pages`` free pages,
        and more than ``free_fraction`` of the file), and truncate the write-ahead log. True if vacuumed.
        Run after a full sweep (in its own process: VACUUM's memory is given back with it)."""
        with self._lock:
            pages = int(self._db.execute("PRAGMA page_count").fetchone()[0])
            free = int(self._db.execute("PRAGMA freelist_count").fetchone()[0])
            done = free >= min_free_pages and free > free_fraction * pages
            try:
                if done:
                    self._db.execute("VACUUM")
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.OperationalError:  # busy (the daemon writing): next time
                return False
        return done

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._tx():
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))


def count_sessions(path: Path) -> int | None:
    """Rows in the index at ``path``, read-only (for `janitor status`); None if there is no usable index."""
    if not path.exists():
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return None
    try:
        return int(db.execute("SELECT count(*) FROM sessions").fetchone()[0])
    except sqlite3.Error:
        return None
    finally:
        db.close()
