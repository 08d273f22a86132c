"""Claude Code's on-disk layout, the one place that says which path belongs to what: a session's pieces
(transcript, the files beside it, its id-keyed dirs and files) and the store families outside sessions.

Pure rules over names; nothing here touches the disk. Scanning is cache/scan.py, reading a transcript
cache/transcript.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
TODO_RE = re.compile(
    r"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
    r"(?:-agent-[^/]*)?\.json$"
)
DEBUG_RE = re.compile(r"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\.txt$")
DIR_STORES = ("file-history", "session-env", "tasks")
NEVER_TOUCHED = {"memory"}  # projects/<enc>/memory/: Claude Code's auto-memory

# ---- the layout: which paths are a session's pieces (the one place that says so) -------------------
#
# In projects/<enc>/: <id>.jsonl (the transcript), <id>/ (everything inside it: subagents/, tool-results/,
# workflows/, remote-agents/, mcp-tasks/, custom-title.json, archived.json, resume-head.jsonl, …), and the
# files Claude Code keeps beside a transcript and deletes with it (CLAUDE-CODE-CLEANUP.md): <id> + one of
# SIBLING_SUFFIXES, each also as a ".tmp.<8 hex>" copy, and <id>.jsonl.compact.tmp.* / <id>.jsonl.superseded-*
# (a compaction's or a rewrite's leftovers). Keyed by id elsewhere: DIR_STORES/<id>/,
# todos/<id>[-agent-*].json, debug/<id>.txt.
SIBLING_SUFFIXES = (
    ".ccr-tip.json",
    ".precompact.json",
    ".desktop-released.json",
    ".dir-sync.json",
    ".dir-sync-empty.json",
    ".cloud-worktrees.json",
    ".cast",
)
_TMP_COPY_RE = re.compile(r"\.tmp\.[0-9a-f]{8}$")
_TRANSCRIPT_LEFTOVER_RE = re.compile(r"^(.+)\.jsonl\.(?:compact\.tmp\..+|superseded-.+)$", re.S)
SIBLING = "session-file"  # the store of a file beside the transcript


def sibling_id(name: str) -> str | None:
    """The session id a file beside transcripts in a project dir belongs to (not the transcript itself).
    The id is always where the name begins (the daemon's re-read looks only at names that begin with an id
    it wants)."""
    m = _TRANSCRIPT_LEFTOVER_RE.match(name)
    if m:
        return m.group(1)
    base = _TMP_COPY_RE.sub("", name)
    for suf in SIBLING_SUFFIXES:
        if base.endswith(suf) and len(base) > len(suf):
            return base[: -len(suf)]
    return None


def transcript_id(name: str) -> str | None:
    """The session id a transcript's file name (``<id>.jsonl``, in a project folder) gives; None for any
    other name. The one rule for "is this a transcript" (the scan, the daemon's watcher, doctor)."""
    return name[:-6] if name.endswith(".jsonl") and len(name) > 6 else None


def piece_owner(rel: str, is_dir: bool) -> tuple[str, str, str] | None:
    """(project, session id, store) of a path (relative to the Claude config dir) that can be a piece of a
    session; project is "" for the per-session stores outside projects/. None: not a place a session's
    piece lives. Archive restores write only where this says yes."""
    parts = rel.split("/")
    if len(parts) == 3 and parts[0] == "projects":
        project, name = parts[1], parts[2]
        if is_dir:
            return None if name in NEVER_TOUCHED else (project, name, "session-dir")
        if (tid := transcript_id(name)) is not None:
            return project, tid, "transcript"
        sid = sibling_id(name)
        return None if sid is None else (project, sid, SIBLING)
    if len(parts) != 2:
        return None
    store, name = parts
    if store in DIR_STORES:
        return ("", name, store) if is_dir else None
    if store == "todos" and not is_dir and (m := TODO_RE.match(name)):
        return "", m.group(1), store
    if store == "debug" and not is_dir and (m := DEBUG_RE.match(name)):
        return "", m.group(1), store
    return None


# ---- stores beyond sessions ---------------------------------------------------------------------------
# What Claude Code 2.1.328's own cleanup ages outside sessions (../shared/CLAUDE-CODE-CLEANUP.md), as data:
# janitor.stores scans, decides and removes by this table. An entry a session claims (a piece in the
# session scan above) is never a store entry, so session-keyed names (debug/<id>.txt, todos/<id>-agent-…,
# file-history/<id>/ …) stay with their session and only the rest of those folders is aged here.

ISO_NAME_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2})[-:](\d{2})[-:](\d{2})(?:[-.](\d{3}))?Z")


@dataclass(frozen=True, slots=True)
class Selector:
    """Entries of one store: ``dirs`` (a regex per path component below the place; ``{uid}`` is this user's
    uid) hold the entries whose name fully matches ``name`` and whose type is ``kind``."""

    dirs: tuple[str, ...]
    name: str
    kind: str = "file"  # file | dir | any (a regular file or a dir) | empty-dir (removed by rmdir only)
    # mtime (a dir: the newest mtime in it) | name (time in the name) | none (no age rule) | session (a folder
    # named by a session id: goes with that session; of no session in the Claude dir, by its mtime)
    age: str = "mtime"
    cap_days: int | None = None  # Claude Code's own window is min(cleanupPeriodDays, cap)
    recursive: bool = False  # regular files at any depth below ``dirs`` (telemetry/**)
    exempt: frozenset[str] = frozenset()
    own: bool = False  # the entry (and the dirs above it) must belong to this user (shared tmp dirs)


@dataclass(frozen=True, slots=True)
class StoreFamily:
    key: str  # the name in the config's [stores] table
    place: str  # config (the Claude config dir) | cache (~/.cache or $XDG_CACHE_HOME) | tmp
    what: str
    selectors: tuple[Selector, ...]

    @property
    def no_age(self) -> bool:
        return all(s.age == "none" for s in self.selectors)


_TMP_NAMES = r"cc-transcript-.*\.txt|auto-mode-builtins-.*\.md|cache-break-.*"
STORE_FAMILIES: tuple[StoreFamily, ...] = (
    StoreFamily(
        "image-cache",
        "config",
        "pasted images (Claude Code wipes them at every start)",
        (Selector(("image-cache",), r".+", "any", age="none"),),
    ),
    StoreFamily(
        "paste-cache",
        "config",
        "pasted text over 1 KiB (named in history.jsonl)",
        (Selector(("paste-cache",), r".+\.txt"),),
    ),
    StoreFamily(
        "shell-snapshots", "config", "shell environment snapshots", (Selector(("shell-snapshots",), r".+\.sh"),)
    ),
    StoreFamily("plans", "config", "plan-mode plans", (Selector(("plans",), r".+\.md"),)),
    StoreFamily(
        "debug",
        "config",
        "debug logs of no session (debug/latest is kept)",
        (Selector(("debug",), r".+", exempt=frozenset({"latest"})),),
    ),
    StoreFamily("todos", "config", "todo lists of no session", (Selector(("todos",), r".+", "any"),)),
    StoreFamily(
        "session-leftovers",
        "config",
        "file-history/, session-env/, tasks/, uploads/, shares/ folders of no session",
        tuple(Selector((d,), r".+", "dir") for d in ("file-history", "session-env", "tasks", "uploads", "shares")),
    ),
    StoreFamily("backups", "config", "backups of Claude Code's config", (Selector(("backups",), r".+"),)),
    StoreFamily("statsig", "config", "feature-flag cache", (Selector(("statsig",), r".+", "any"),)),
    StoreFamily("logs", "config", "logs", (Selector(("logs",), r".+", "any"),)),
    StoreFamily("access-audit", "config", "access audit records", (Selector(("access-audit",), r".+", "any"),)),
    StoreFamily(
        "telemetry",
        "config",
        "telemetry queue, traces, startup timings",
        (
            Selector(("telemetry",), r".+\.json", recursive=True),
            Selector(("traces",), r".+\.json"),
            Selector(("startup-perf",), r".+\.(?:txt|json)"),
        ),
    ),
    StoreFamily(
        "usage-data",
        "config",
        "usage insights (facets, session meta, reports)",
        (Selector(("usage-data", "facets|session-meta"), r".+\.json"), Selector(("usage-data",), r".+\.html")),
    ),
    StoreFamily(
        "feedback",
        "config",
        "feedback bundles and drafts, shared zips",
        (
            Selector(("feedback-bundles",), r".+\.zip"),
            Selector(("shares",), r".+\.zip"),
            Selector(("feedback", "drafts"), r".+\.json", cap_days=30),
        ),
    ),
    StoreFamily("dump-prompts", "config", "dumped prompts", (Selector(("dump-prompts",), r".+\.jsonl", cap_days=3),)),
    StoreFamily(
        "file-transfers", "config", "file transfers", (Selector(("file-transfers",), r".+", "any", cap_days=1),)
    ),
    StoreFamily(
        "teams",
        "config",
        "team inboxes and deleted teams",
        (
            Selector(("teams", r"[^/]+", "inboxes"), r".+\.json"),
            Selector(("teams",), r".+\.deleted-[0-9a-fA-F-]{36}", "dir", age="none"),
        ),
    ),
    StoreFamily(
        "fork-seeds", "config", "remote-control fork seeds", (Selector(("remote-control", "fork-seeds"), r".+\.json"),)
    ),
    StoreFamily(
        "caches",
        "config",
        "MCP, model and discovery caches",
        (
            Selector((), r"mcp-needs-auth-cache\.json"),
            Selector(("cache",), r"team-discovery\.json|model-access\.json|provider-probe-verdicts\.json"),
            Selector(
                ("cache", "model-catalog"), r".+\.json", exempt=frozenset({"masked-ids.json", "published-floor.json"})
            ),
            Selector(
                ("state",),
                r"device-unbound-creates\.json|mcp-discover-verdicts\.json"
                r"|device-mcp-consent-not-now\.json",
            ),
            Selector(("mcp-discovery-cache",), r".+\.json"),
        ),
    ),
    StoreFamily(
        "project-files",
        "config",
        "empty project folders; bridge-pointer.json in a project folder",
        (
            Selector(("projects",), r".+", "empty-dir", age="none"),
            Selector(("projects", r"[^/]+"), r"bridge-pointer\.json(?:\.tmp\.[0-9a-f]{8})?"),
        ),
    ),
    StoreFamily(
        "tmp-files",
        "config",
        "temp files of interrupted writes",
        (
            Selector(
                (),
                r"history\.jsonl\.tmp\.[0-9a-f]{8}|\.[0-9a-f]{16}\.tmp"
                r"|remote-settings-consent\.json\.tmp\.[0-9a-f]{8}",
            ),
        ),
    ),
    StoreFamily(
        "plugin-set-aside",
        "config",
        "plugin data set aside on uninstall (time in the name)",
        (
            Selector(
                ("plugins", "data", r"\.set-aside"), ISO_NAME_RE.pattern[1:] + r"\.[0-9a-f]{12}", "dir", age="name"
            ),
        ),
    ),
    StoreFamily(
        "cli-logs",
        "cache",
        "claude-cli-nodejs error and MCP logs (time in the name)",
        (
            Selector(
                ("claude-cli-nodejs", r"[^/]+", r"errors|mcp-logs-.+"), ISO_NAME_RE.pattern[1:] + r".*", age="name"
            ),
        ),
    ),
    StoreFamily(
        "tmp",
        "tmp",
        "claude-<uid>/ temp files and session folders, previews, paste and history-prefetch folders",
        (
            Selector(("claude-{uid}",), _TMP_NAMES, own=True),
            Selector(("claude-{uid}",), r"speculation", "dir", cap_days=3, own=True),
            # claude-<uid>/<cwd>/<session id>/ (started, tasks/): Claude Code removes it with the session
            Selector(("claude-{uid}", r"[^/]+"), UUID_RE.pattern[1:-1], "dir", age="session", own=True),
            # the names as Claude Code matches them (mkdtemp's 6 characters)
            Selector(
                (),
                r"claude-preview-[A-Za-z0-9]{6}|claude-paste-[0-9a-f]{32}"
                r"|cc-history-prefetch-(?:[A-Za-z0-9]{6}|[0-9]+)",
                "dir",
                own=True,
            ),
        ),
    ),
)
STORE_KEYS = {f.key: f for f in STORE_FAMILIES}


def name_time(name: str) -> float | None:
    """The UTC time at the start of a name like ``2025-01-01T12-00-00-000Z…``; None if there is none."""
    m = ISO_NAME_RE.match(name)
    if not m:
        return None
    try:
        y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
        dt = datetime(y, mo, d, h, mi, s, int(m.group(7) or 0) * 1000, tzinfo=UTC)
    except ValueError:
        return None
    return dt.timestamp()
