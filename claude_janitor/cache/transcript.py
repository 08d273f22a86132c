"""Reading one transcript without reading it whole: its newest timestamp from the tail (bounded reads), its
head (entrypoint, first prompt, titles), the desktop release marker beside it.

Every byte comes from the file; no content can stop a scan (bad JSON, huge numbers, odd encodings are skipped).
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from claude_janitor.cache.titles import (
    CUSTOM_TITLE_FILE,
    CUSTOM_TITLE_MAX,
    TITLE_HEAD,
    TailTitles,
    choose,
    custom_title,
    lines_newest_first,
    read_head,
    replied,
    tail_scan,
)
from claude_janitor.model import Session
from claude_janitor.timefmt import LATEST

TAIL_CHUNK = 16 * 1024  # first read; grows ×4 up to TAIL_MAX while no timestamped record is found
TAIL_MAX = 1024 * 1024  # never read more than this from a transcript's end, whatever its size
HEAD_MAX = 64 * 1024


# ---- reading a transcript's tail ---------------------------------------------------------------

TS_MIN = 0.0  # 1970: no Claude Code record is older
TS_MAX = LATEST  # 9999-12-31T23:59:59Z: the last instant a datetime (and every report) can show


def parse_timestamp(value: object) -> float | None:
    """A record's ``timestamp`` as Unix seconds, or None when it is not a usable time.

    Transcript content is untrusted: huge or non-finite numbers, dates out of range and garbage strings
    are all None (the line is skipped like one without a timestamp), never an exception. Numbers above
    1e11 are taken as milliseconds."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            v = float(value)
        except OverflowError:  # an int with hundreds of digits
            return None
        if v > 1e11:
            v /= 1000.0
    elif isinstance(value, str) and value and len(value) <= 64:
        try:
            dt = datetime.fromisoformat(value)
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
            v = dt.timestamp()
        except (ValueError, OverflowError, OSError):
            return None
    else:
        return None
    if not math.isfinite(v) or not TS_MIN <= v <= TS_MAX:
        return None
    return v


_decode = json.JSONDecoder().decode
RECORDS_KEPT = 64 * 1024  # bytes of parsed lines a transcript's Records keeps for a second use


def _record(line: bytes) -> dict[str, Any] | None:
    """The JSON object on one line, or None for anything else (malformed, not an object, empty). A line is
    UTF-8 (it starts with "{": json.loads would take it so too, after a look for another encoding that
    costs as much as parsing a short record)."""
    line = line.strip()
    if not line or line[:1] != b"{":
        return None
    try:
        rec = _decode(line.decode("utf-8", "surrogatepass"))
    except (ValueError, UnicodeDecodeError, RecursionError, MemoryError):
        return None
    return rec if isinstance(rec, dict) else None


class Records:
    """The JSON objects of ``lines``, parsed lazily (callers stop early), anything malformed skipped; one
    per transcript read, so that each distinct line is parsed once: the newest lines serve the last
    activity and then the titles' scan of the same buffer, and a short transcript's head is its tail."""

    __slots__ = ("seen", "room")

    def __init__(self) -> None:
        self.seen: dict[bytes, dict[str, Any] | None] = {}
        self.room = RECORDS_KEPT  # bytes of lines kept at most (a hostile tail of many lines is parsed, not kept)

    def __call__(self, lines: Iterable[bytes]) -> Iterator[dict[str, Any]]:
        seen = self.seen
        for line in lines:
            if line in seen:
                rec = seen[line]
            else:
                rec = _record(line)
                if len(line) <= self.room:
                    self.room -= len(line)
                    seen[line] = rec
            if rec is not None:
                yield rec


def usable_cwd(value: object) -> bool:
    """A record's ``cwd`` that can name a project: an absolute path without NUL, of a sane length (it is
    untrusted: the project's own settings are read from under it, and it is shown in reports)."""
    if not (isinstance(value, str) and value.startswith("/") and "\0" not in value and len(value) <= 4096):
        return False
    try:
        value.encode("utf-8")  # a lone surrogate (JSON "\\ud800") is not a path
    except UnicodeEncodeError:
        return False
    return True


@dataclass
class TailInfo:
    last_time: float | None = None
    cwd: str | None = None
    bytes_read: int = 0
    titles: TailTitles | None = None  # Claude Code's titles and the human prompts among the records read
    whole: bytes | None = None  # the whole transcript, when the tail read covered it (no head read needed)
    tail: bytes = b""  # the last bytes read from the end (desktop detection looks there too: no second read)
    records: Records = field(default_factory=Records)  # the lines parsed so far (the head's reuse them)


def read_tail(fd: int, size: int) -> TailInfo:
    """Newest record timestamp (and cwd) from the end of a transcript: reads at most TAIL_MAX bytes.

    Lines without timestamps, malformed JSON and invalid UTF-8 are skipped. Cost does not depend on
    the transcript's size.
    """
    info = TailInfo()
    records = info.records
    want = min(TAIL_CHUNK, size)
    while True:
        start = size - want
        buf = os.pread(fd, want, start)
        info.bytes_read = len(buf)
        for rec in records(line for _, line in lines_newest_first(buf, cut_first=start > 0)):
            if info.last_time is None:
                info.last_time = parse_timestamp(rec.get("timestamp"))
            if info.cwd is None and usable_cwd(rec.get("cwd")):
                info.cwd = rec["cwd"]
            if info.last_time is not None and info.cwd is not None:
                break
        if info.last_time is not None or start == 0 or want >= TAIL_MAX:
            break
        want = min(want * 4, TAIL_MAX, size)
    # the same buffer once more, for titles and prompts: only lines that can hold one are parsed
    info.titles = tail_scan(buf, records, cut_first=start > 0)
    info.tail = buf
    if start == 0:
        info.whole = buf
    if info.cwd is None and size > want:
        head = os.pread(fd, min(HEAD_MAX, size), 0)
        for rec in records(head.split(b"\n")[:-1]):
            if usable_cwd(rec.get("cwd")):
                info.cwd = rec["cwd"]
                break
    return info


DESKTOP_ENTRYPOINTS = frozenset({"claude-desktop", "claude-desktop-3p", "local-agent"})
ENTRYPOINT_SPAN = 64 * 1024  # Claude Code looks for the entrypoint in a transcript's first and last 64 KiB
_ENTRYPOINT_RE = re.compile(rb'"entrypoint"\s*:\s*"([A-Za-z0-9_-]{1,64})"')
MARKER = ".desktop-released.json"
MARKER_MAX = 4096  # Claude Code reads at most this much of a release marker


def desktop_entrypoint(fd: int, size: int, *, head: bytes = b"", tail: bytes = b"") -> str | None:
    """The desktop entrypoint (claude-desktop, claude-desktop-3p, local-agent) a transcript names in its first
    record with one within its first 64 KiB, or its last within the last 64 KiB — what Claude Code's own
    cleanup looks at to exempt desktop sessions. Looks at 8 KiB at each end, up to 64 KiB while none is
    found; ``head`` and ``tail`` are bytes already read from the start and the end (read_transcript's head
    and read_tail's last buffer), used instead of reading them again when they cover what is looked at."""

    def norm(v: bytes) -> str | None:
        name = v.decode("ascii").replace("local_agent", "local-agent")
        return name if name in DESKTOP_ENTRYPOINTS else None

    def first(n: int) -> bytes:
        return head[:n] if len(head) >= n else os.pread(fd, n, 0)

    def last(n: int) -> bytes:
        return tail[len(tail) - n :] if len(tail) >= n else os.pread(fd, n, size - n)

    want = min(8192, size)
    while True:
        m = _ENTRYPOINT_RE.search(first(want))
        if m or want >= min(ENTRYPOINT_SPAN, size):
            break
        want = min(ENTRYPOINT_SPAN, size)
    named = norm(m.group(1)) if m else None
    if named or size <= want:
        return named
    want = min(8192, size)
    while True:
        found = list(_ENTRYPOINT_RE.finditer(last(want)))
        if found or want >= min(ENTRYPOINT_SPAN, size):
            break
        want = min(ENTRYPOINT_SPAN, size)
    return norm(found[-1].group(1)) if found else None


def read_marker(path: str, st: os.stat_result) -> tuple[str | None, float]:
    """(reason, mtime) of a <id>.desktop-released.json: "archive", "delete", or None (unreadable, other)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None, st.st_mtime
    try:
        data = os.read(fd, MARKER_MAX) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
    except OSError:
        data = b""
    finally:
        os.close(fd)
    try:
        rec = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None, st.st_mtime
    reason = rec.get("reason") if isinstance(rec, dict) else None
    return (reason if reason in ("archive", "delete") else None), st.st_mtime


def read_transcript(s: Session, path: str, st: os.stat_result) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        s.note("transcript vanished during the scan")
        return
    except OSError as e:
        s.unreadable = f"cannot open transcript: {e.strerror}"
        return
    try:
        fst = os.fstat(fd)
        if not stat.S_ISREG(fst.st_mode) or fst.st_ino != st.st_ino:
            s.unreadable = "transcript changed while being read"
            return
        info = read_tail(fd, fst.st_size)
        # one head read serves the titles and the desktop check; the tail read serves the desktop check too
        head = info.whole[:TITLE_HEAD] if info.whole is not None else os.pread(fd, min(TITLE_HEAD, fst.st_size), 0)
        s.desktop_entrypoint = desktop_entrypoint(fd, fst.st_size, head=head, tail=info.tail) if fst.st_size else None
    except OSError as e:
        s.unreadable = f"cannot read transcript: {e.strerror}"
        return
    finally:
        os.close(fd)
    s.last_record_time = info.last_time
    # Shared by every session of a project (and entrypoints by most sessions): one string each, not one per
    # session (issue 14: memory per session).
    s.project_path = sys.intern(info.cwd) if info.cwd else info.cwd
    _describe(s, info, head)


def _describe(s: Session, info: TailInfo, head: bytes) -> None:
    """Title, entrypoint and replied from the tail already read and the head (titles.py)."""
    complete = info.whole is not None and len(info.whole) <= TITLE_HEAD
    lines = head.split(b"\n")
    if not complete and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut: read_head looks at it on its own
    h = read_head(head, info.records(lines), complete)
    entrypoint = h.entrypoint or (info.titles.last_entrypoint if info.titles else None)
    s.entrypoint = sys.intern(entrypoint) if entrypoint else entrypoint
    s.title, s.title_source = choose(None, info.titles, h)
    s.replied = replied(h, info.titles)


_SESSION_DIR = ("session-dir",)


def read_custom_title(s: Session) -> None:
    """Claude Code's own title file, ``projects/<p>/<id>/custom-title.json``, over any other title (one
    small bounded read, never through a symlink; a bad file is no title)."""
    from claude_janitor.fs.saferead import InputError, read_input

    if not s.pieces.has_store(_SESSION_DIR):  # from the packed numbers: no Piece made
        return
    path = f"{s.root}/projects/{s.project}/{s.session_id}/{CUSTOM_TITLE_FILE}"
    try:
        raw = read_input(path, what="title file", limit=CUSTOM_TITLE_MAX, follow=False)
    except (InputError, OSError):
        return
    t = custom_title(raw)
    if t is not None:
        title, source = choose(t, None, None)
        if title:
            s.title, s.title_source = title, source
