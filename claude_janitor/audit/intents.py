"""Intents without results: what a sweep said it would do and never said it did (killed, crashed), and the
honest result record for each, from what is on disk now.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from claude_janitor.audit.records import INTERRUPTED, RECONCILED


def _target(r: dict[str, Any]) -> tuple[Any, ...]:
    """What an intent and its result are about (an archive's result also names the archive it made)."""
    by_archive = r.get("action") in ("prune-archive", "restore")
    return (
        r.get("action"),
        r.get("root"),
        r.get("session_id"),
        r.get("store"),
        r.get("archive") if by_archive else None,
    )


def open_intents(records: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """(intents with no later result for the same action and target, the last seq seen)."""
    pending: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    last = 0
    for r in records:
        if isinstance(r.get("seq"), int):
            last = max(last, r["seq"])
        if r.get("action") not in RECONCILED:
            continue
        key = _target(r)
        if r.get("phase") == "intent":
            pending.setdefault(key, []).append(r)
        elif r.get("phase") == "result" and pending.get(key):
            pending[key].pop(0)
    todo = [r for rs in pending.values() for r in rs]
    return sorted(todo, key=lambda r: r["seq"]), last


def outcome_record(intent: dict[str, Any], exists: Callable[[str], bool]) -> dict[str, Any]:
    """The honest result for an intent whose sweep died: what is on disk now."""
    if intent.get("action") == "delete-store":  # its intent counts files, it does not list them
        rec: dict[str, Any] = {k: intent[k] for k in ("action", "store", "root", "place") if k in intent}
        rec.update(
            {
                "phase": "result",
                "result": INTERRUPTED,
                "found": "unknown",
                "intent_seq": intent["seq"],
                "note": "the run that recorded this intent ended (killed or crashed) before its result; "
                "the intent does not list the files, so how many went is not known",
            }
        )
        return rec
    if intent.get("action") == "prune-archive":
        paths = [str(intent.get("archive"))]
    else:
        paths = [os.path.join(str(intent.get("root")), p) for p in intent.get("paths") or []]
    there = [p for p in paths if exists(p)]
    found = "present" if paths and len(there) == len(paths) else "gone" if not there else "partly"
    rec = {k: intent[k] for k in ("action", "session_id", "root", "project", "paths", "archive") if k in intent}
    rec = dict(rec)
    rec.update(
        {
            "phase": "result",
            "result": INTERRUPTED,
            "found": found,
            "intent_seq": intent["seq"],
            "note": "the run that recorded this intent ended (killed or crashed) before its result; "
            f"found {found} on disk afterwards",
        }
    )
    if found == "partly":
        rec["left"] = there
    return rec
