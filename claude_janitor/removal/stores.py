"""The stores beyond sessions: pasted text and images, shell snapshots, plans, logs, caches, temp files …

This module owns where they are and what goes (the plan); store_scan.py finds their entries (read-only),
store_removal.py removes them.

Every family Claude Code's own cleanup ages (cache.STORE_FAMILIES, from the reference) is found here, judged
by its window — Claude Code's own rule for that family unless the config's ``[stores]`` table sets one — and
removed (never archived: see the README) entry by entry, each the way a session is (staging.remove): re-checked
(inode, size, mtime), moved into the place's own staging dir, checked there against the scan at any depth and
for still being inside the place, and only then deleted; an entry changed or moved meanwhile is put back and
reported (exit 1). An empty project folder goes by rmdir alone. find → decide → act → record, like sessions:

- ``plan_root`` (here) reads one Claude dir's stores (and, for the user's own Claude dir, the claude-cli-nodejs
  cache dir and the tmp dir) through ``store_scan.find`` (read-only) and decides through ``decide_entry``,
  which is pure;
- ``store_removal.execute`` acts on a plan (or only checks, in a dry run) and writes one intent and one result
  audit record per store and sweep, with counts and bytes (no names, no content).

Entries a session claims (its pieces in the session scan) are never store entries. Nothing Claude Code never
ages is listed here (memory/, settings, credentials, plugins' live data, history.jsonl, sessions/).
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from claude_janitor.cache.ids import canonical_id
from claude_janitor.cache.layout import STORE_FAMILIES, Selector, StoreFamily, name_time
from claude_janitor.durations import human_duration
from claude_janitor.model import Piece, Policy, Session, Window
from claude_janitor.removal import staging
from claude_janitor.removal.store_scan import Claimed, Found, find, sorted_names

DAY = 86400.0


@dataclass
class StoreDecision:
    """One store of one Claude dir in one sweep: what it holds, what goes, and (after acting) what went."""

    key: str
    root: str  # the Claude config dir this store belongs to
    place: str  # the dir ``remove``'s paths are relative to: the Claude dir, the cache dir or the tmp dir
    what: str
    window: Window
    entries: int = 0
    bytes: int = 0
    remove: list[Piece] = field(default_factory=list)
    kept: Counter[str] = field(default_factory=Counter)  # reason -> entries kept for it
    next_expiry: float | None = None
    notes: list[str] = field(default_factory=list)  # e.g. a symlinked store dir, not followed
    pending: bool = False  # a removal a killed sweep left in this shared place's staging dir: execute settles it
    with_session: dict[str, str] = field(default_factory=dict)  # rel -> session id: goes only once it is gone
    # filled in by execute
    result: str | None = None  # dry-run | ok | failed | cancelled
    removed: int = 0
    removed_bytes: int = 0
    changed: int = 0  # changed since the scan: kept
    vanished: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def remove_bytes(self) -> int:
        return sum(p.bytes for p in self.remove)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "store": self.key,
            "root": self.root,
            "place": self.place,
            "what": self.what,
            "window": None if self.window.seconds is None else self.window.seconds,
            "window_source": self.window.source,
            "entries": self.entries,
            "bytes": self.bytes,
            "to_remove": len(self.remove),
            "bytes_to_remove": self.remove_bytes,
            "kept": dict(sorted(self.kept.items())),
            "notes": list(self.notes),
        }
        if self.next_expiry is not None:
            out["next_expiry"] = self.next_expiry
        if self.result is not None:
            out.update(
                {
                    "result": self.result,
                    "removed": self.removed,
                    "bytes_removed": self.removed_bytes,
                    "kept_changed": self.changed,
                    "vanished": self.vanished,
                    "failed": self.failed,
                    "errors": list(self.errors),
                }
            )
        return out


# ---- where the stores are ------------------------------------------------------------------------------


def tmp_dir() -> str:
    """Claude Code's temp dir: $CLAUDE_CODE_TMPDIR, else the system's."""
    return os.environ.get("CLAUDE_CODE_TMPDIR") or tempfile.gettempdir()


def cache_dir() -> str:
    """The user cache dir Claude Code logs into (claude-cli-nodejs/): $XDG_CACHE_HOME, else ~/.cache."""
    return os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")


def places(root: str) -> dict[str, str]:
    """The places whose stores belong to this Claude dir. The cache and tmp dirs hold one user's stores
    whatever config dir Claude Code ran with: they go with the user's own Claude dir ($CLAUDE_CONFIG_DIR,
    else ~/.claude) only, never with another dir passed by --claude-dir (a copy, a test, someone else's)."""
    from claude_janitor.config.paths import claude_dirs

    out = {"config": root}
    if os.path.abspath(root) == str(claude_dirs(())[0]):
        out["cache"] = cache_dir()
        out["tmp"] = tmp_dir()
    return out


def _pending(base: str, key: str) -> bool:
    """Does a shared place's staging dir hold a removal of this store's (read-only)?"""
    return any(n.startswith(f"{key}.") for n in sorted_names(os.path.join(base, staging.shared_stage_name())))


# ---- deciding (pure) --------------------------------------------------------------------------------------


def default_window(fam: StoreFamily, sel: Selector, claude: Window) -> Window:
    """Claude Code's own rule for one selector of a family, given its effective cleanupPeriodDays window."""
    if sel.age == "none":
        return Window(0.0, "as Claude Code: no age limit, gone at its every start")
    secs = claude.seconds if claude.seconds is not None else None
    if sel.cap_days is not None and (secs is None or sel.cap_days * DAY < secs):
        return Window(sel.cap_days * DAY, f"as Claude Code: at most {sel.cap_days}d")
    return Window(secs, f"as Claude Code: {claude.source}")


def window_for(fam: StoreFamily, sel: Selector, pol: Policy, claude: Window) -> Window:
    return pol.stores.get(fam.key) or default_window(fam, sel, claude)


def decide_entry(f: Found, win: Window, grace: float, now: float, live_ids: set[str]) -> tuple[bool, str, float | None]:
    """(remove?, reason kept, when it would expire) for one entry. Pure."""
    t = name_time(f.name) if f.selector.age == "name" else f.piece.mtime
    if t is None:
        return False, "no time in its name", None
    newest = max(t, f.piece.mtime)
    if newest > now:
        return False, "time in the future (clock skew?), counted as active", None
    if live_ids and any(f.name.startswith(sid) for sid in live_ids):
        return False, "belongs to a session in use", None
    if win.seconds is None:
        return False, f"kept forever ({win.source})", None
    expires = max(t + win.seconds, newest + grace)
    if now - newest <= grace:
        return False, f"active within grace ({human_duration(grace)})", expires
    if now - t <= win.seconds:
        return False, f"within {human_duration(win.seconds)} ({win.source})", expires
    return True, "", None


@dataclass
class Sessions:
    """What the stores' decisions need to know of one Claude dir's sessions (canonical ids)."""

    live: set[str]  # running (Claude Code's registry) or kept as in use
    present: set[str]  # with a transcript
    removing: set[str]  # decided for removal by this sweep


def decide_session_dir(f: Found, win: Window, grace: float, now: float, ss: Sessions) -> tuple[bool, str, float | None]:
    """A folder named by a session id (tmp ``claude-<uid>/<cwd>/<id>/``): Claude Code removes it when it
    removes the session's transcript. Here it goes with its session (checked again right before: its
    transcript must be gone), stays with a kept one, and one of no session here ages by its mtime. Pure."""
    sid = canonical_id(f.name)
    if sid in ss.live:
        return False, "belongs to a session in use", None
    if sid in ss.removing:
        return decide_entry(f, Window(0.0, "goes with its session"), grace, now, set())
    if sid in ss.present:
        return False, "belongs to a kept session", None
    return decide_entry(f, win, grace, now, set())


def plan_root(
    root: str, sessions: Iterable[Session], pol: Policy, now: float, claude: Window, removing: set[str] | None = None
) -> tuple[list[StoreDecision], set[str]]:
    """Every store of one Claude dir, decided; and the store entries seen (paths relative to the Claude dir),
    so that the session scan's "unknown" list can leave them out. ``removing``: the (canonical) ids of this
    dir's sessions the sweep removes."""
    sessions = [s for s in sessions if s.root == root]
    claimed = Claimed(sessions)
    claimed_dirs = claimed.dirs()
    from claude_janitor.cache.livesessions import read as live_sessions

    # Sessions Claude Code is running (its registry, as it reads it; a new one may have no transcript yet)
    # and sessions kept as in use: their image-cache entries stay, as Claude Code spares its own.
    live = {s.session_id for s in sessions if s.in_use} | set(live_sessions(root).live)
    ss = Sessions(
        {canonical_id(x) for x in live},
        {canonical_id(s.session_id) for s in sessions if s.transcript},
        removing or set(),
    )
    out: list[StoreDecision] = []
    seen: set[str] = set()
    where = places(root)
    for fam in STORE_FAMILIES:
        base = where.get(fam.place)
        if base is None:
            continue
        wins = {sel: window_for(fam, sel, pol, claude) for sel in fam.selectors}
        first = wins[fam.selectors[0]]
        sd = StoreDecision(fam.key, root, base, fam.what, first)
        mine = fam.place == "config"
        if not mine and _pending(base, fam.key):
            sd.pending = True
            sd.notes.append("an interrupted removal of one of its entries is finished or undone by the next sweep")
        for f in find(base, fam, claimed if mine else set(), sd.notes, claimed_dirs if mine else set()):
            sd.entries += 1
            sd.bytes += f.piece.bytes
            if fam.place == "config":
                seen.add(f.piece.rel)
            if f.selector.age == "session":
                go, why, expires = decide_session_dir(f, wins[f.selector], pol.grace, now, ss)
                if go and canonical_id(f.name) in ss.removing:
                    sd.with_session[f.piece.rel] = f.name
            else:
                go, why, expires = decide_entry(
                    f, wins[f.selector], pol.grace, now, live if fam.key == "image-cache" else set()
                )
            if go:
                sd.remove.append(f.piece)
            else:
                sd.kept[why] += 1
                if expires is not None and (sd.next_expiry is None or expires < sd.next_expiry):
                    sd.next_expiry = expires
        if sd.entries and len(set(wins.values())) > 1:
            sd.notes.append(
                "windows: "
                + "; ".join(f"{'/'.join(s.dirs) or '.'}/{s.name}: {human_duration(w.seconds)}" for s, w in wins.items())
            )
        if sd.entries or sd.notes:
            out.append(sd)
    return out, seen


def plan(
    roots: list[Path],
    sessions: list[Session],
    pol: Policy,
    now: float,
    claude_windows: dict[str, Window],
    removing: Iterable[Session] = (),
) -> tuple[list[StoreDecision], dict[str, set[str]]]:
    """Every store of every root, decided. ``removing``: the sessions this sweep removes (their tmp folders
    go with them)."""
    decisions: list[StoreDecision] = []
    seen: dict[str, set[str]] = {}
    going = [(s.root, canonical_id(s.session_id)) for s in removing]
    for r in roots:
        claude = claude_windows.get(str(r)) or Window(None, "Claude Code's window is unknown (settings unreadable)")
        got, seen[str(r)] = plan_root(str(r), sessions, pol, now, claude, {i for x, i in going if x == str(r)})
        decisions += got
    return decisions, seen


def windows(root: str, pol: Policy, claude: Window) -> list[dict[str, Any]]:
    """Each store family's effective window(s) for one Claude dir and where they come from (`janitor doctor`)."""
    where = places(root)
    out = []
    for fam in STORE_FAMILIES:
        wins = list(dict.fromkeys(window_for(fam, sel, pol, claude) for sel in fam.selectors))
        out.append(
            {
                "store": fam.key,
                "what": fam.what,
                "place": where.get(fam.place),
                "windows": [w.seconds for w in wins],
                "sources": [w.source for w in wins],
            }
        )
    return out
