"""The stores beyond sessions: pasted text and images, shell snapshots, plans, logs, caches, temp files …

Every family Claude Code's own cleanup ages (cache.STORE_FAMILIES, from the reference) is found here, judged
by its window — Claude Code's own rule for that family unless the config's ``[stores]`` table sets one — and
removed (never archived: see the README) entry by entry, each the way a session is (staging.remove): re-checked
(inode, size, mtime), moved into the place's own staging dir, checked there against the scan at any depth and
for still being inside the place, and only then deleted; an entry changed or moved meanwhile is put back and
reported (exit 1). An empty project folder goes by rmdir alone. find → decide → act → record, like sessions:

- ``plan_root`` reads one Claude dir's stores (and, for the user's own Claude dir, the claude-cli-nodejs
  cache dir and the tmp dir) and decides through ``decide_entry``, which is pure;
- ``execute`` acts on a plan (or only checks, in a dry run) and writes one intent and one result audit record
  per store and sweep, with counts and bytes (no names, no content).

Entries a session claims (its pieces in the session scan) are never store entries. Nothing Claude Code never
ages is listed here (memory/, settings, credentials, plugins' live data, history.jsonl, sessions/).
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
from collections import Counter
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from claude_janitor import testhooks
from claude_janitor.cache.ids import canonical_id
from claude_janitor.cache.layout import STORE_FAMILIES, Selector, StoreFamily, name_time, piece_owner
from claude_janitor.cache.scan import make_piece
from claude_janitor.durations import human_duration
from claude_janitor.fs.safefs import Root
from claude_janitor.fs.tree import Changed, Unsafe
from claude_janitor.model import Piece, Pieces, Policy, Session, Window
from claude_janitor.removal import checks, recovery, staging

DAY = 86400.0
ERRORS_KEPT = 5  # failures named in a store's result (the rest are counted)


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


# ---- finding entries (read-only) ------------------------------------------------------------------------


@dataclass
class Found:
    piece: Piece
    selector: Selector
    name: str


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None


def _list(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _dirs(base: str, sel: Selector, dev: int, uid: int, notes: list[str]) -> Iterator[str]:
    """The dirs (relative to ``base``, "" for base itself) that match the selector's path components: real
    dirs on base's filesystem only; a symlink is noted, never followed."""
    level = [""]
    for comp in sel.dirs:
        rx = re.compile(comp.replace("{uid}", str(uid)))
        nxt = []
        for rel in level:
            for name in _list(os.path.join(base, rel)):
                if not rx.fullmatch(name):
                    continue
                sub = f"{rel}/{name}" if rel else name
                st = _lstat(os.path.join(base, sub))
                if st is None:
                    continue
                if stat.S_ISLNK(st.st_mode):
                    notes.append(f"{sub} (symlink, not followed)")
                elif not stat.S_ISDIR(st.st_mode):
                    continue
                elif st.st_dev != dev:
                    notes.append(f"{sub} (another filesystem, not entered)")
                elif sel.own and st.st_uid != uid:
                    notes.append(f"{sub} (belongs to uid {st.st_uid}, not entered)")
                else:
                    nxt.append(sub)
        level = nxt
    yield from level


def _files_below(base: str, rel: str, dev: int) -> Iterator[tuple[str, str]]:
    """(rel, name) of everything below the dir ``rel``, depth first, not following symlinks."""
    stack = [rel]
    while stack:
        d = stack.pop()
        for name in _list(os.path.join(base, d)):
            sub = f"{d}/{name}"
            st = _lstat(os.path.join(base, sub))
            if st is not None and stat.S_ISDIR(st.st_mode) and st.st_dev == dev:
                stack.append(sub)
            yield sub, name


class Claimed:
    """The paths that are some session's pieces, answered from the sessions themselves: a set of every
    piece's path would cost ~1 KB a session (100 MB at 100k sessions) for the store scan's ``in``."""

    def __init__(self, sessions: Iterable[Session]) -> None:
        self.by_id: dict[str, Session | list[Session]] = {}
        for s in sessions:
            got = self.by_id.setdefault(s.session_id, s)
            if got is not s:
                self.by_id[s.session_id] = [*got, s] if isinstance(got, list) else [got, s]

    def __contains__(self, rel: object) -> bool:
        if not isinstance(rel, str):
            return False
        for is_dir in (False, True):
            owner = piece_owner(rel, is_dir)
            got = self.by_id.get(owner[1]) if owner else None
            for s in got if isinstance(got, list) else [got] if got else []:
                if s.pieces.has(rel):
                    return True
        return False

    def dirs(self) -> set[str]:
        """The dirs holding a claimed path."""
        return {
            rel.rsplit("/", 1)[0]
            for got in self.by_id.values()
            for s in (got if isinstance(got, list) else [got])
            for rel in s.pieces.rels()
        }


def find(
    base: str, fam: StoreFamily, claimed: Container[str], notes: list[str], claimed_dirs: set[str] | None = None
) -> Iterator[Found]:
    """Every entry of one store family under ``base`` (read-only). ``claimed``: paths that are a session's
    pieces; ``claimed_dirs``: the dirs holding them (never empty)."""
    st = _lstat(base)
    if st is None or not stat.S_ISDIR(st.st_mode):
        return
    dev, uid = st.st_dev, os.getuid()
    seen: set[str] = set()
    if claimed_dirs is None:
        claimed_dirs = {c.rsplit("/", 1)[0] for c in claimed} if isinstance(claimed, Iterable) else set()
    for sel in fam.selectors:
        rx = re.compile(sel.name)
        for d in _dirs(base, sel, dev, uid, notes):
            names = (
                _files_below(base, d, dev)
                if sel.recursive and d
                else ((f"{d}/{n}" if d else n, n) for n in _list(os.path.join(base, d)))
            )
            for rel, name in names:
                if rel in seen or name in sel.exempt or not rx.fullmatch(name) or rel in claimed:
                    continue
                est = _lstat(os.path.join(base, rel))
                if est is None:
                    continue
                if stat.S_ISLNK(est.st_mode):
                    notes.append(f"{rel} (symlink, not followed)")
                    continue
                is_dir = stat.S_ISDIR(est.st_mode)
                if not (
                    is_dir
                    and sel.kind in ("dir", "any", "empty-dir")
                    or stat.S_ISREG(est.st_mode)
                    and sel.kind in ("file", "any")
                ):
                    continue
                if sel.kind == "empty-dir" and (_list(os.path.join(base, rel)) or rel in claimed_dirs):
                    continue
                if is_dir and est.st_dev != dev:
                    notes.append(f"{rel} (another filesystem, not entered)")
                    continue
                if sel.own and est.st_uid != uid:
                    continue
                seen.add(rel)
                piece, _, problem = make_piece(base, rel, fam.key, est)
                if problem:
                    notes.append(f"{rel}: {problem}; kept")
                    continue
                yield Found(piece, sel, name)


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


# ---- acting ------------------------------------------------------------------------------------------------


def _record(sd: StoreDecision, phase: str, dry: bool = False) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "action": "delete-store",
        "phase": phase,
        "store": sd.key,
        "root": sd.root,
        "place": sd.place,
        "files": len(sd.remove),
        "bytes": sd.remove_bytes,
        "reason": f"older than {human_duration(sd.window.seconds)} ({sd.window.source})",
    }
    if phase == "intent":
        rec["result"] = "pending"
    else:
        rec.update(
            {
                "result": sd.result,
                "removed": sd.removed,
                "bytes_removed": sd.removed_bytes,
                "kept_changed": sd.changed,
                "vanished": sd.vanished,
                "failed": sd.failed,
            }
        )
        if sd.errors:
            rec["errors"] = list(sd.errors)
    return rec


def execute(
    decisions: list[StoreDecision], *, dry_run: bool, audit: Any = None, should_stop: Callable[[], bool] | None = None
) -> None:
    """Remove what each store decision says, each entry re-checked right before it goes: an entry changed
    since the scan (inode, size, mtime; a dir's own mtime) is kept. A dry run makes every check and removes
    nothing. One intent record before a store is touched, one result record after (counts and bytes)."""
    for sd in decisions:
        if not sd.remove and not sd.pending:
            continue
        if should_stop is not None and should_stop():
            sd.result = "cancelled"
            continue
        if audit is not None and sd.remove:
            audit.append([_record(sd, "intent")])
        try:
            root = Root(sd.place)
        except OSError as e:
            sd.failed = len(sd.remove)
            sd.errors.append(f"cannot open {sd.place}: {e.strerror or e}")
        else:
            with root:
                if os.path.abspath(sd.place) != os.path.abspath(sd.root):
                    root.stage_name = staging.shared_stage_name()  # the tmp or cache dir: a per-user one
                    if not dry_run:
                        _recover(root, sd, audit)
                _remove_all(root, sd, dry_run, should_stop)
        if not sd.remove:
            continue
        sd.result = "dry-run" if dry_run else "failed" if sd.failed else "ok"
        if audit is not None:
            audit.append([_record(sd, "result")])


EMPTY_DIR_STORES = {f.key for f in STORE_FAMILIES for sel in f.selectors if sel.kind == "empty-dir"}


def _rmdir(root: Root, p: Piece) -> None:
    """An empty folder goes by rmdir alone: anything created in it meanwhile keeps it (never a tree removal)."""
    fds, name, owned = root.dir_chain(p.rel)
    pfd = fds[-1]
    try:
        if not root.inside(fds, p.rel):  # a held dir fd follows its dir wherever it was moved
            raise Changed(f"{p.rel}: its folder was moved or replaced since it was opened; not touched")
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode) or (st.st_ino, st.st_dev, st.st_mtime_ns) != (p.ino, p.dev, p.mtime_ns):
            raise Changed(f"{p.rel} changed since the scan")
        try:
            os.rmdir(name, dir_fd=pfd)
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise Changed(f"{p.rel} is no longer empty") from None
            raise
    finally:
        if owned:
            for fd in fds[1:]:
                os.close(fd)


def _has_transcript(root: str, sid: str) -> bool:
    """Is there a transcript of this session in the Claude dir (its removal failed or was undone)?"""
    projects = os.path.join(root, "projects")
    return any(os.path.lexists(os.path.join(projects, d, f"{sid}.jsonl")) for d in _list(projects))


def _pending(base: str, key: str) -> bool:
    """Does a shared place's staging dir hold a removal of this store's (read-only)?"""
    return any(n.startswith(f"{key}.") for n in _list(os.path.join(base, staging.shared_stage_name())))


def _recover(root: Root, sd: StoreDecision, audit: Any) -> None:
    """Finish or undo what a killed sweep left in a shared place's staging dir (the Claude dir's own is
    recovered by every sweep before its scan: sweep.recover_interrupted)."""
    if not recovery.pending(root):
        return
    try:
        got = recovery.recover(root)
    except (OSError, Unsafe) as e:
        sd.errors.append(f"{sd.place}/{staging.stage_name(root)}: {e}")
        return
    for r in got:
        (sd.notes if r.state != "kept" else sd.errors).append(r.message)
    if audit is not None and got:
        audit.append([r.record(sd.place) for r in got if r.session_id])


BATCH = 64  # file entries staged, checked and deleted together (one staging entry, one commit)


def _stage(root: Root, sd: StoreDecision, pieces: list[Piece], fates: dict[str, str] | None = None) -> None:
    """Entries of one store removed as a session is (staging.remove): moved into the place's staging dir,
    checked there against the scan at any depth and for still being inside the place, then deleted. A
    change or a move puts them back and raises staging.Interfered; nothing outside the place is touched."""
    entry = Session(sd.key, sd.place, "", pieces=Pieces(pieces, sd.key, ""))
    staging.remove(root, entry, staging.STORE_ACTION, checks.matches_scan(entry), fates=fates)


def _fail(sd: StoreDecision, p: Piece, why: str) -> None:
    sd.failed += 1
    if len(sd.errors) < ERRORS_KEPT:
        sd.errors.append(f"{p.rel}: {why}")


def _gone(sd: StoreDecision, pieces: list[Piece]) -> None:
    sd.removed += len(pieces)
    sd.removed_bytes += sum(p.bytes for p in pieces)


def _remove_one(root: Root, sd: StoreDecision, p: Piece) -> None:
    try:
        if p.is_dir and p.store in EMPTY_DIR_STORES:
            _rmdir(root, p)
        else:
            _stage(root, sd, [p])
    except (FileNotFoundError, staging.Vanished):
        sd.vanished += 1
    except Changed:  # an empty folder that changed (rmdir alone): kept, as before anything was done
        sd.changed += 1
    except (staging.Interfered, staging.Busy) as e:  # during its removal: put back, a failure (exit 1)
        _fail(sd, p, f"changed during removal, kept: {e}")
    except (Unsafe, OSError) as e:
        _fail(sd, p, str(getattr(e, "strerror", None) or e))
    else:
        _gone(sd, [p])


def _remove_batch(root: Root, sd: StoreDecision, batch: list[Piece]) -> None:
    """Files go BATCH at a time (a staging entry per file cost 1.7x an in-place unlink); if anything in
    the batch changed, it is put back whole and each file is tried on its own, so that only the changed
    one is kept."""
    if len(batch) == 1:
        _remove_one(root, sd, batch[0])
        return
    fates: dict[str, str] = {}
    try:
        _stage(root, sd, batch, fates)
    except (staging.Interfered, staging.Busy, Unsafe, OSError) as e:
        for p in batch:
            if fates.get(p.rel) == "purged":
                _gone(sd, [p])
            elif fates.get(p.rel) == "kept":
                _fail(sd, p, f"changed during removal, kept: {e}")
            else:
                _remove_one(root, sd, p)
    else:
        _gone(sd, batch)


def _remove_all(root: Root, sd: StoreDecision, dry_run: bool, should_stop: Callable[[], bool] | None) -> None:
    batch: list[Piece] = []
    for p in sd.remove:
        if should_stop is not None and should_stop():
            sd.errors.append("stopped by a signal; the rest kept")
            break
        try:
            root.check_unchanged(p)
            if p.rel in sd.with_session and _has_transcript(sd.root, sd.with_session[p.rel]):
                raise Changed(f"{p.rel}: its session is still there")
            testhooks.point("store-before-remove")
        except FileNotFoundError:
            sd.vanished += 1
            continue
        except Changed:  # seen before anything was done: kept, as a session changed since the scan
            sd.changed += 1
            continue
        except (Unsafe, OSError) as e:
            _fail(sd, p, str(getattr(e, "strerror", None) or e))
            continue
        if dry_run:
            _gone(sd, [p])
        elif p.is_dir:
            _remove_one(root, sd, p)
        else:
            batch.append(p)
            if len(batch) >= BATCH:
                _remove_batch(root, sd, batch)
                batch = []
    if batch:
        _remove_batch(root, sd, batch)
