"""Plain data shared by every layer. No I/O here."""

from __future__ import annotations

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


@dataclass(slots=True)
class Session:
    session_id: str
    root: str  # the Claude config dir this session lives under
    project: str  # encoded project dir name under projects/, or "" for orphaned side files
    project_path: str | None = None  # the real cwd, from the transcript's records, when known
    pieces: list[Piece] = field(default_factory=list)
    last_record_time: float | None = None  # newest record timestamp in the transcript tail
    unreadable: str | None = None  # why the session could not be read; such sessions are kept
    pinned: bool = False
    in_use: str | None = None  # another process has it open for writing or locked: kept
    # Claude Code's desktop exemption (policy.desktop_why): a desktop entrypoint named in the transcript's
    # first or last 64 KiB, and the reason and mtime of <id>.desktop-released.json
    desktop_entrypoint: str | None = None
    desktop_marker: tuple[str | None, float] | None = None
    ambiguous: str | None = None  # pieces that may belong to another session that is kept: kept, and why
    notes: list[str] = field(default_factory=list)
    # What it is about and how it was run (janitor.titles): transcript content, shown in reports, never
    # written to the audit log or a sink.
    title: str | None = None
    title_source: str | None = None  # title set in Claude Code | Claude Code's title | summary | first/last prompt
    entrypoint: str | None = None  # the records' entrypoint: cli, sdk-cli, sdk-py, sdk-ts, claude-desktop …
    replied: bool = False  # a person typed into it after its first prompt

    @property
    def kind(self) -> str:
        """interactive | headless | sdk | desktop | side-files | unknown (cache.titles.KINDS)."""
        from claude_janitor.cache.titles import kind_of

        return kind_of(self.entrypoint, self.transcript is not None)

    @property
    def bytes(self) -> int:
        return sum(p.bytes for p in self.pieces)

    @property
    def newest_mtime(self) -> float | None:
        return max((p.mtime for p in self.pieces), default=None)

    @property
    def last_activity(self) -> float | None:
        times = [t for t in (self.newest_mtime, self.last_record_time) if t is not None]
        return max(times) if times else None

    @property
    def transcript(self) -> Piece | None:
        for p in self.pieces:
            if p.store == "transcript":
                return p
        return None

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
