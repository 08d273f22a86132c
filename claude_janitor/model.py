"""Plain data shared by every layer. No I/O here."""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Action(StrEnum):
    KEEP = "keep"
    DELETE = "delete"
    ARCHIVE = "archive"


class Result(StrEnum):
    """What became of one session acted on (``Outcome.result``): its text is what the audit log, the JSON
    output and the tables show."""

    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"  # in use, or changed since the scan: kept
    VANISHED = "vanished"  # gone before the janitor got to it
    DRY_RUN = "dry-run"  # checked, not acted on
    CANCELLED = "cancelled"  # stopped (a signal) before it was begun


@dataclass(frozen=True, slots=True)
class Piece:
    """One top-level filesystem entry that belongs to a session.

    ``rel`` is relative to the Claude config dir (``root``) and never contains ``..``.
    ``ino``/``dev``/``size``/``mtime_ns`` are what the scan saw of the entry itself (lstat), so the
    executor can refuse to act on something that was swapped in since.
    """

    rel: str
    store: str  # transcript | session-dir | session-file | file-history | session-env | tasks | todos | debug
    is_dir: bool
    bytes: int
    mtime: float  # newest mtime of anything inside (seconds since the epoch)
    ino: int = 0
    dev: int = 0
    mtime_ns: int = 0
    size: int = 0  # lstat size of the entry itself


# A piece's numbers, packed (42 bytes): store (index into _STORES, + _DIR for a dir), bytes, mtime, ino, dev
# (index into _DEVS: a scan sees one or a few), mtime_ns, size.
_NUMS = struct.Struct("<BqdQBqq")
_DIR = 128
_STORES: list[str] = []
_STORE_INDEX: dict[str, int] = {}
_DEVS: list[int] = []
_DEV_INDEX: dict[int, int] = {}
_NEW = threading.Lock()
_SEP, _SID, _PROJECT = "\0|", "\0s", "\0p"  # no path holds a NUL: these never clash with a name

# The Piece objects last made from a Pieces (the pieces, their packed numbers then, the list): a session
# being removed is read piece by piece several times (checked, staged, verified, recorded) and unpacked
# once. One slot, replaced whole (safe across threads); ``_nums`` is an immutable bytes that every change
# replaces, so a slot whose pieces changed since is never used.
_hot: tuple[Any, bytes, list[Piece]] = (None, b"", [])


def _index(value: Any, values: list[Any], index: dict[Any, int], most: int) -> int:
    """``value``'s place in ``values`` (added if new; struct.error past ``most``). Added under a lock and
    listed before it is indexed: a thread that finds the index finds the value."""
    i = index.get(value)
    if i is None:
        with _NEW:
            i = index.get(value)
            if i is None:
                if len(values) >= most:
                    raise struct.error("too many distinct values to pack")
                values.append(value)
                i = index[value] = len(values) - 1
    return i


class Pieces:
    """A session's pieces, held packed: a scan of 100k sessions keeps ~700k of them until it has decided,
    and as Piece objects (with their rel strings and stat numbers each an object of its own) they cost
    ~3 KB a session. Here the rel paths are one string (the session id and its project dir written as a
    two-character mark) and the numbers one bytes object; iterating makes the Piece objects on demand.

    Behaves as the list it replaces for what is done with it: iterate, len, bool, append, equality."""

    __slots__ = ("_sid", "_project", "_rels", "_nums", "_list")

    def __init__(self, pieces: Iterable[Piece] = (), session_id: str = "", project: str = "") -> None:
        self._sid, self._project = session_id, project
        self._rels = ""
        self._nums = b""
        self._list: list[Piece] | None = None  # the pieces as they are, when a number does not pack
        for p in pieces:
            self.append(p)

    def _prefix(self) -> str:
        return f"projects/{self._project}/" if self._project else ""

    def append(self, p: Piece) -> None:
        if self._list is not None:
            self._list.append(p)
            return
        try:
            st = _index(p.store, _STORES, _STORE_INDEX, _DIR) + (_DIR if p.is_dir else 0)
            dev = _index(p.dev, _DEVS, _DEV_INDEX, 256)
            nums = _NUMS.pack(st, p.bytes, p.mtime, p.ino, dev, p.mtime_ns, p.size)
        except (struct.error, OverflowError, TypeError):  # e.g. a file time past the year 2262 in ns
            self._list = [*self, p]
            self._rels, self._nums = "", b""
            return
        rel = p.rel.replace(self._sid, _SID) if self._sid else p.rel
        pre = self._prefix()
        if pre and rel.startswith(pre):
            rel = _PROJECT + rel[len(pre) :]
        self._rels = f"{self._rels}{_SEP}{rel}" if self._nums else rel
        self._nums += nums

    def rels(self) -> list[str]:
        if self._list is not None:
            return [p.rel for p in self._list]
        if not self._nums:
            return []
        hot = _hot
        if hot[0] is self and hot[1] is self._nums:
            return [p.rel for p in hot[2]]
        return [self._unpack_rel(rel) for rel in self._rels.split(_SEP)]

    def _unpack_rel(self, rel: str) -> str:
        if self._sid:
            rel = rel.replace(_SID, self._sid)
        return self._prefix() + rel[2:] if rel.startswith(_PROJECT) else rel

    def has(self, rel: str) -> bool:
        """Is ``rel`` the path of one of these pieces? (Asked of every store entry a scan lists: answered
        in the packed form, without making the list of paths.)"""
        if self._list is not None:
            return any(p.rel == rel for p in self._list)
        if not self._nums:
            return False
        packed = rel.replace(self._sid, _SID) if self._sid else rel
        pre = self._prefix()
        if pre and packed.startswith(pre):
            packed = _PROJECT + packed[len(pre) :]
        return f"{_SEP}{packed}{_SEP}" in f"{_SEP}{self._rels}{_SEP}"

    def inodes(self) -> Iterator[tuple[bool, int, int]]:
        """(is_dir, dev, ino) of each piece, without making the Piece objects."""
        if self._list is not None:
            yield from ((p.is_dir, p.dev, p.ino) for p in self._list)
            return
        for st, _b, _mtime, ino, dev, _mtime_ns, _size in _NUMS.iter_unpack(self._nums):
            yield st >= _DIR, _DEVS[dev], ino

    def first(self, store: str) -> Piece | None:
        """The first piece of ``store`` (e.g. the transcript), made alone."""
        if self._list is not None:
            return next((p for p in self._list if p.store == store), None)
        want = _STORE_INDEX.get(store)
        if want is None or not self._nums:
            return None
        for n, (st, b, mtime, ino, dev, mtime_ns, size) in enumerate(_NUMS.iter_unpack(self._nums)):
            if st & ~_DIR == want:
                rel = self._unpack_rel(self._rels.split(_SEP)[n])
                return Piece(rel, store, st >= _DIR, b, mtime, ino, _DEVS[dev], mtime_ns, size)
        return None

    def __iter__(self) -> Iterator[Piece]:
        if self._list is not None:
            return iter(self._list)
        global _hot
        hot = _hot
        if hot[0] is self and hot[1] is self._nums:  # the same pieces unchanged since (_nums is immutable)
            return iter(hot[2])
        stores, devs = _STORES, _DEVS
        made = [
            Piece(rel, stores[st & ~_DIR], st >= _DIR, b, mtime, ino, devs[dev], mtime_ns, size)
            for rel, (st, b, mtime, ino, dev, mtime_ns, size) in zip(
                self.rels(), _NUMS.iter_unpack(self._nums), strict=True
            )
        ]
        _hot = (self, self._nums, made)
        return iter(made)

    def has_store(self, stores: Iterable[str]) -> bool:
        """Is any piece of one of these stores? (From the packed numbers alone.)"""
        if self._list is not None:
            return any(p.store in stores for p in self._list)
        want = {_STORE_INDEX[x] for x in stores if x in _STORE_INDEX}
        return any(n[0] & ~_DIR in want for n in _NUMS.iter_unpack(self._nums))

    def __len__(self) -> int:
        return len(self._list) if self._list is not None else len(self._nums) // _NUMS.size

    def __bool__(self) -> bool:
        return bool(self._list) if self._list is not None else bool(self._nums)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Pieces | list | tuple):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, as the list it replaces

    def __repr__(self) -> str:
        return f"Pieces({list(self)!r})"

    def total_bytes(self) -> int:
        if self._list is not None:
            return sum(p.bytes for p in self._list)
        return sum(n[1] for n in _NUMS.iter_unpack(self._nums))

    def newest_mtime(self) -> float | None:
        if self._list is not None:
            return max((p.mtime for p in self._list), default=None)
        return max((n[2] for n in _NUMS.iter_unpack(self._nums)), default=None)

    def stores(self) -> set[str]:
        if self._list is not None:
            return {p.store for p in self._list}
        return {_STORES[n[0] & ~_DIR] for n in _NUMS.iter_unpack(self._nums)}


@dataclass(slots=True)
class Session:
    session_id: str
    root: str  # the Claude config dir this session lives under
    project: str  # encoded project dir name under projects/, or "" for orphaned side files
    project_path: str | None = None  # the real cwd, from the transcript's records, when known
    pieces: Pieces = field(default_factory=Pieces)  # a list of Piece is taken too (made a Pieces)
    last_record_time: float | None = None  # newest record timestamp in the transcript tail
    unreadable: str | None = None  # why the session could not be read; such sessions are kept
    pinned: bool = False
    in_use: str | None = None  # another process has it open for writing or locked: kept
    # Claude Code's desktop exemption (policy.desktop_why): a desktop entrypoint named in the transcript's
    # first or last 64 KiB, and the reason and mtime of <id>.desktop-released.json
    desktop_entrypoint: str | None = None
    desktop_marker: tuple[str | None, float] | None = None
    ambiguous: str | None = None  # pieces that may belong to another session that is kept: kept, and why
    notes: tuple[str, ...] = ()  # add with note(): no list of its own for the many sessions without one
    # What it is about and how it was run (janitor.titles): transcript content, shown in reports, never
    # written to the audit log or a sink. The title is held without the "…" of a cut one (title_cut): that
    # one character would make the whole string two bytes a character, ~230 B a session (see ``title``).
    title_text: str | None = None
    title_cut: bool = False
    title_source: str | None = None  # title set in Claude Code | Claude Code's title | summary | first/last prompt
    entrypoint: str | None = None  # the records' entrypoint: cli, sdk-cli, sdk-py, sdk-ts, claude-desktop …
    replied: bool = False  # a person typed into it after its first prompt

    def __post_init__(self) -> None:
        self.pieces = Pieces(self.pieces, self.session_id, self.project)

    def note(self, text: str) -> None:
        self.notes = (*self.notes, text)

    @property
    def title(self) -> str | None:
        """The session's title as shown (cleaned, cut with "…" where long)."""
        return f"{self.title_text}…" if self.title_cut else self.title_text

    @title.setter
    def title(self, value: str | None) -> None:
        cut = value is not None and value.endswith("…") and value[:-1].isascii()
        self.title_text, self.title_cut = (value[:-1], True) if cut and value is not None else (value, False)

    @property
    def kind(self) -> str:
        """interactive | headless | sdk | desktop | side-files | unknown (cache.titles.KINDS)."""
        from claude_janitor.cache.titles import kind_of

        return kind_of(self.entrypoint, self.transcript is not None)

    @property
    def bytes(self) -> int:
        return self.pieces.total_bytes()

    @property
    def newest_mtime(self) -> float | None:
        return self.pieces.newest_mtime()

    @property
    def last_activity(self) -> float | None:
        times = [t for t in (self.newest_mtime, self.last_record_time) if t is not None]
        return max(times) if times else None

    @property
    def transcript(self) -> Piece | None:
        return self.pieces.first("transcript")

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.root, self.project, self.session_id)

    @property
    def display_project(self) -> str:
        return self.project_path or self.project or "(orphaned side files)"


@dataclass(frozen=True, slots=True)
class Rule:
    pattern: str | None  # project glob; None = any project
    retention: float | None  # seconds; None = forever
    action: Action | None = None
    keep_last: int | None = None
    retention_set: bool = False  # whether the rule names its own retention
    index: int = 0
    kind: str | None = None  # interactive | headless | sdk | desktop | side-files | unknown (titles.KINDS)
    entrypoint: str | None = None  # glob on the records' entrypoint: "sdk-cli", "sdk-*", "claude-desktop"
    replied: bool | None = None  # True: a person typed into it after the first prompt; False: nobody did

    @property
    def label(self) -> str:
        if self.kind is None and self.entrypoint is None and self.replied is None:
            return f"rule #{self.index + 1} ({self.pattern})"
        what = [f"project {self.pattern}"] if self.pattern is not None else []
        what += [f"kind {self.kind}"] if self.kind is not None else []
        what += [f"entrypoint {self.entrypoint}"] if self.entrypoint is not None else []
        what += [f"replied {str(self.replied).lower()}"] if self.replied is not None else []
        return f"rule #{self.index + 1} ({', '.join(what)})"


@dataclass(frozen=True, slots=True)
class Window:
    """A retention window and where its value came from."""

    seconds: float | None  # None = forever
    source: str


@dataclass(slots=True)
class Policy:
    action: Action = Action.DELETE
    grace: float = 3600.0
    keep_last: int = 0
    rules: list[Rule] = field(default_factory=list)
    # The window used when no rule sets one. None here means "per project from Claude Code's settings",
    # resolved through ``claude_windows`` below.
    retention: Window | None = None
    # Claude Code's effective window per (root, project): filled in by config.resolve_claude_windows.
    claude_windows: dict[tuple[str, str], Window] = field(default_factory=dict)
    # Default Claude window per root (user + managed settings).
    claude_root_windows: dict[str, Window] = field(default_factory=dict)
    # Where Claude Code's window cannot be known (a settings file is broken): the reason, per root and per
    # (root, project). Only sessions whose window would come from Claude Code's settings are kept for it.
    claude_root_doubts: dict[str, str] = field(default_factory=dict)
    # Claude Code's desktop exemption per root: its ceiling (desktopSessionCleanupPeriodDays; seconds None =
    # no ceiling), or None where managed settings set cleanupPeriodDays (the exemption is then off).
    # A root not in it: no ceiling, as Claude Code's default.
    claude_desktop: dict[str, Window | None] = field(default_factory=dict)
    project_doubts: dict[tuple[str, str], str] = field(default_factory=dict)
    archive_dir: str | None = None
    archive_retention: Window | None = None
    max_delete_count: int | None = None
    max_delete_percent: float | None = None
    sources: dict[str, str] = field(default_factory=dict)  # key -> where its value came from
    # [stores] overrides: family key (cache.STORE_FAMILIES) -> window (None seconds = keep forever).
    # A family not named here follows Claude Code's own rule for it.
    stores: dict[str, Window] = field(default_factory=dict)
    history: HistoryPolicy = field(default_factory=lambda: HistoryPolicy())
    metrics_file: str | None = None  # Prometheus text written after every sweep (janitor.metrics)
    trash: Window | None = None  # delete moves sessions into the trash for this long (trash.py); None: off


@dataclass(frozen=True, slots=True)
class HistoryPolicy:
    """[history]: opt-in pruning of Claude Code's prompt history (history.jsonl). Off by default."""

    removed_sessions: bool = False  # drop the lines of sessions this janitor removed (archived: into the archive)
    retention: float | None = None  # also drop lines older than this (seconds; None = no age limit)
    source: str = "default"

    @property
    def enabled(self) -> bool:
        return self.removed_sessions or self.retention is not None


@dataclass(frozen=True, slots=True)
class Decision:
    session: Session
    action: Action
    reason: str
    rule: str | None = None
    expires_at: float | None = None  # when a kept session would expire (for the daemon's wake-up)
    by_keep_last: bool = False  # kept as one of its project's keep_last most recent (no time makes it expire)


@dataclass(slots=True)
class Plan:
    now: float
    decisions: list[Decision]
    unknown: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # What other processes were using when the plan was made (activity.InUse, with the monotonic time it
    # was read): acting starts from it instead of reading /proc again. Set by the shell, not by decide().
    in_use: tuple[float, Any] | None = field(default=None, compare=False, repr=False)
    # The stores beyond sessions (stores.StoreDecision per store and root), planned with a full scan only;
    # execute() acts on them after the sessions and fills in their results.
    stores: list[Any] = field(default_factory=list)
    history: list[Any] = field(default_factory=list)  # history.HistoryResult per Claude dir ([history])

    @property
    def to_act(self) -> list[Decision]:
        return [d for d in self.decisions if d.action is not Action.KEEP]


@dataclass(frozen=True, slots=True)
class Outcome:
    decision: Decision
    result: Result
    error: str | None = None
    archive: str | None = None
    trash: str | None = None  # the trash entry it was moved to (trash.py), when the trash is on
