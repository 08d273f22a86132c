"""Pinned sessions: a JSON list of session ids in the state dir that no sweep ever removes.

Read by cache.load_pins; written here atomically (atomicfile.write_atomic) under an
exclusive lock, so concurrent `janitor pin` calls never lose an update and a crash never leaves half a file.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable
from pathlib import Path

from claude_janitor.cache.ids import canonical_id
from claude_janitor.cache.layout import UUID_RE
from claude_janitor.config.paths import ensure_private_dir
from claude_janitor.errors import ConfigError
from claude_janitor.fs.atomicfile import write_atomic


def check_id(session_id: str) -> str:
    sid = session_id.strip()
    if not UUID_RE.match(sid):
        raise ConfigError(
            f"{session_id!r} is not a session id (expected a UUID like "
            "0b6f3c1e-7a2d-4c8e-9f10-2b3c4d5e6f70; see `janitor report`)"
        )
    return canonical_id(sid)


def _write_atomic(path: Path, ids: list[str]) -> None:
    write_atomic(path, json.dumps(ids, indent=1) + "\n")


def update(path: Path, add: Iterable[str] = (), remove: Iterable[str] = ()) -> tuple[list[str], list[str]]:
    """Add and remove ids; returns (all pins now, ids that actually changed)."""
    ensure_private_dir(path.parent)
    lock = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        pins = load_pins(path)
        before = set(pins)
        pins |= {check_id(s) for s in add}
        pins -= {check_id(s) for s in remove}
        changed = sorted(before ^ pins)
        if changed or not path.exists():
            _write_atomic(path, sorted(pins))
        return sorted(pins), changed
    finally:
        os.close(lock)


def find_session(roots: list[Path], sid: str) -> list[Path]:
    """Where a session's transcript is, under each root (cheap: one stat per project dir)."""
    out = []
    for r in roots:
        try:
            projects = list(os.scandir(r / "projects"))
        except OSError:
            continue
        for p in projects:
            for cand in dict.fromkeys((sid, canonical_id(sid), sid.upper())):  # ids compare case-blind
                t = Path(p.path) / f"{cand}.jsonl"
                if os.path.lexists(t):
                    out.append(t)
    return out


def load_pins(path: Path) -> set[str]:
    """The pinned ids (canonical case). Read through saferead: pins.json is the janitor's own file in its
    private state dir, so a symlink there is refused rather than followed."""
    from claude_janitor.errors import ConfigError
    from claude_janitor.fs.saferead import STATE_MAX, read_input

    raw = read_input(path, what="pins file", limit=STATE_MAX, follow=False)
    if raw is None:
        return set()
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise ConfigError(f"pins file {path} is unreadable: {str(e)[:200]}; fix or remove it") from None
    if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
        raise ConfigError(f"pins file {path} must be a JSON list of session ids")
    return {canonical_id(x) for x in data}
