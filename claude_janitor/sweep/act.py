"""claude_janitor.sweep.act."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from claude_janitor.cache import activity
from claude_janitor.fs.safefs import Root
from claude_janitor.fs.tree import Changed, Unsafe
from claude_janitor.model import Action, Decision, Outcome, Result, Session
from claude_janitor.removal import checks, staging

# acts on one session (delete, archive, trash); what it returns goes into the outcome
Actor = Callable[[Root, Decision], dict[str, Any] | None]


def audit_record(
    d: Decision, phase: str, result: str, error: str | None = None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    s = d.session
    rec: dict[str, Any] = {
        "action": d.action.value,
        "phase": phase,
        "session_id": s.session_id,
        "root": s.root,
        "project": s.project,
        "paths": s.pieces.rels(),
        "bytes": s.bytes,
        "reason": d.reason,
        "result": result,
    }
    if d.rule:
        rec["rule"] = d.rule
    if error:
        rec["error"] = error
    if extra:
        rec.update(extra)
    return rec


CANCELLED = "stopped before acting (signal); nothing changed"


def delete_session(root: Root, d: Decision) -> None:
    """Remove every piece of a session as one transaction (staging.remove: stage, verify against the
    scan, commit, purge); a session that changed or moved meanwhile is put back and reported."""
    staging.remove(root, d.session, d.action.value, checks.matches_scan(d.session))


def check_session(root: Root, d: Decision) -> str | None:
    """None if every piece is as scanned; 'vanished' if all are gone; else raises Changed."""
    gone = 0
    for p in d.session.pieces:
        try:
            root.check_unchanged(p)
        except FileNotFoundError:
            gone += 1
    if gone == len(d.session.pieces):
        return "vanished"
    if gone:
        raise Changed("some pieces vanished since the scan")
    return None


class InUseWatch:
    """Re-reads which files other processes are using, at most every ``every`` seconds while acting."""

    def __init__(self, roots: list[str], every: float = 2.0, start: tuple[float, activity.InUse] | None = None) -> None:
        """``start``: (monotonic time, snapshot) already read, e.g. the plan's, used while fresh."""
        self.roots, self.every, self.at = roots, every, -1e9
        self.inuse = activity.InUse()
        self.by_piece: dict[tuple[str, str], str] = {}
        if start is not None:
            self.at, self.inuse = start
            self.by_piece = self.inuse.pieces(roots)

    def why(self, session: Session) -> str | None:
        if time.monotonic() - self.at > self.every:
            self.inuse = activity.scan_in_use(self.roots)
            self.by_piece = self.inuse.pieces(self.roots)
            self.at = time.monotonic()
        return self.inuse.why(session, self.by_piece, recheck=True)


def open_root(d: Decision, roots: dict[str, Root]) -> bool:
    """Open the session's root in the calling (main) thread; False if it cannot be (then act inline)."""
    if d.session.root not in roots:
        try:
            roots[d.session.root] = Root(d.session.root)
        except OSError:
            return False
    return True


def act_one(d: Decision, roots: dict[str, Root], dry_run: bool, actors: dict[Action, Actor]) -> Outcome:
    root = roots.get(d.session.root)
    try:
        if root is None:
            root = roots[d.session.root] = Root(d.session.root)
        if check_session(root, d) == "vanished":
            return Outcome(d, Result.VANISHED)
        if dry_run:
            return Outcome(d, Result.DRY_RUN)
        actor = actors.get(d.action)
        if actor is None:
            return Outcome(d, Result.FAILED, f"action {d.action.value!r} is not available")
        extra = actor(root, d) or {}
        return Outcome(
            d, Result.OK, extra.get("trash_fallback"), archive=extra.get("archive"), trash=extra.get("trash")
        )
    except staging.Busy as e:
        return Outcome(d, Result.SKIPPED, f"in use, kept: {e}")
    except staging.Interfered as e:
        return Outcome(d, Result.FAILED, f"changed during removal, kept: {e}")
    except Changed as e:
        return Outcome(d, Result.SKIPPED, f"changed since the scan, kept: {e}")
    except Unsafe as e:
        return Outcome(d, Result.FAILED, f"refused: {e}")
    except OSError as e:
        where = f" ({e.filename})" if e.filename else ""
        return Outcome(d, Result.FAILED, f"{e.strerror or e}{where}")
