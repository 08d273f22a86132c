"""The archive format: names, constants, the header and its checks, and where archives live on disk.

An archive is a zstd-compressed POSIX (pax) tar stream holding, in this order:

  janitor-archive.json   header: session id, root, project, project path, archived_at, the pieces
  data/<rel> ...         every dir and file of every piece, ``rel`` relative to the Claude config dir,
                         with its mode and mtime (exact mtime_ns is in the manifest)
  MANIFEST.json          each data member's path, type, mode, mtime_ns, size and sha256, and the header's
                         sha256

so it can be read without the janitor: ``zstd -dc X.tar.zst | tar -tv``. Archives live under
``<archive dir>/<project dir name>/<session id>.<UTC stamp>[-N].tar.zst``.

Writing follows one order, so that a crash at any point leaves every session either intact in the cache
or in a verified archive: write to a temp name (``.<name>.partial-<random>``, 0600) → fsync → drop it from
the page cache → re-read and verify it against the manifest → link it to its final name (never replacing
anything) → fsync the dir → re-check that nothing changed since it was read → only then delete the
originals. Temp files are never taken for archives and are removed by the next sweep.

Restore treats archives as untrusted input: every member must be a plain file or dir inside one of the
session's own pieces (no absolute paths, no ``..``, no links or devices, nothing but the session's known
store paths), the whole archive is verified before anything is written, and live files are never
overwritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from claude_janitor.cache.layout import piece_owner
from claude_janitor.cache.transcript import TS_MAX
from claude_janitor.model import Decision
from claude_janitor.timefmt import iso

FORMAT = "claude-janitor-archive"
VERSION = 1
SUFFIX = ".tar.zst"
HEADER_NAME = "janitor-archive.json"
MANIFEST_NAME = "MANIFEST.json"
HISTORY_NAME = "janitor-history.jsonl"  # the session's prompt-history lines ([history]), right after the header
DATA = "data/"
PARTIAL = ".partial-"
RESTORE_TMP = ".janitor-restore-"
# zstd level 10: on real-shaped transcripts (benchmarks/archive_compression.py) about as fast as gzip -6
# but ~1.5x smaller; decompression ~3.5x faster than gzip.
LEVEL = 10
CHUNK = 1 << 20
MAX_META = 64 << 20  # the header and the manifest are JSON; refuse anything absurd
FILE_OPEN = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class ArchiveInvalid(Exception):
    """An archive that cannot be read, or does not match its own manifest, or is unsafe to restore."""


def safe_name(text: str, limit: int = 120) -> str:
    """A file name for ``text``: [A-Za-z0-9._-] only, not hidden, bounded; hashed when altered."""
    clean = re.sub(r"[^A-Za-z0-9._-]", "_", text) or "_"
    if clean.startswith("."):
        clean = "_" + clean[1:]
    if clean != text or len(clean) > limit:
        digest = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:12]
        clean = f"{clean[: limit - 13]}-{digest}"
    return clean


def project_dir_name(project: str) -> str:
    return safe_name(project) if project else "_no-project"


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, ensure_ascii=True, indent=1).encode() + b"\n"


def make_header(d: Decision, now: float) -> dict[str, Any]:
    s = d.session
    return {
        "format": FORMAT,
        "version": VERSION,
        "session_id": s.session_id,
        "root": s.root,
        "project": s.project,
        "project_path": s.project_path,
        "archived_at": now,
        "archived_at_iso": iso(now),
        "last_activity": s.last_activity,
        "reason": d.reason,
        "rule": d.rule,
        "bytes": s.bytes,
        "pieces": [{"rel": p.rel, "store": p.store, "is_dir": p.is_dir} for p in s.pieces],
    }


def history_entry(data: bytes) -> dict[str, Any]:
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "lines": data.count(b"\n")}


def need(cond: bool, msg: str) -> None:
    if not cond:
        raise ArchiveInvalid(msg)


def plain_rel(rel: object) -> str:
    need(isinstance(rel, str) and bool(rel), f"member path {rel!r} is not a string")
    assert isinstance(rel, str)
    parts = rel.split("/")
    need(not rel.startswith("/"), f"member path {rel!r} is absolute")
    need(".." not in parts, f"member path {rel!r} contains '..'")
    need(
        all(p not in ("", ".") for p in parts) and "\0" not in rel, f"member path {rel!r} is not a plain relative path"
    )
    return rel


def piece_allowed(rel: str, is_dir: bool, session_id: str, project: str) -> bool:
    """Is ``rel`` one of the places a piece of this session can live? (The only places restore writes.)
    The layout rules live in cache.piece_owner."""
    owner = piece_owner(rel, is_dir)
    if owner is None or owner[1] != session_id:
        return False
    return owner[0] == "" or (bool(project) and owner[0] == project)


def check_header(h: object) -> dict[str, Any]:
    need(isinstance(h, dict), "header is not a JSON object")
    assert isinstance(h, dict)
    need(h.get("format") == FORMAT, f"not a {FORMAT} header")
    need(h.get("version") == VERSION, f"unsupported archive version {h.get('version')!r}")
    sid, project = h.get("session_id"), h.get("project")
    need(
        isinstance(sid, str) and bool(sid) and "/" not in sid and sid not in (".", "..") and "\0" not in sid,
        f"bad session id {sid!r}",
    )
    need(
        isinstance(project, str) and "/" not in project and project not in (".", "..") and "\0" not in project,
        f"bad project {project!r}",
    )
    need(isinstance(h.get("root"), str) and h["root"].startswith("/"), "bad root")
    at = h.get("archived_at")
    need(
        isinstance(at, int | float) and not isinstance(at, bool) and 0 <= at <= TS_MAX,
        "bad archived_at",
    )
    la = h.get("last_activity")
    need(
        la is None or (isinstance(la, int | float) and not isinstance(la, bool) and -TS_MAX <= la <= TS_MAX),
        "bad last_activity",
    )  # (a comparison, not math.isfinite: a 300-digit int would overflow a float)
    nb = h.get("bytes")
    need(nb is None or (isinstance(nb, int) and not isinstance(nb, bool) and 0 <= nb < 1 << 63), "bad bytes")
    for key in ("project_path", "reason", "rule"):
        need(h.get(key) is None or isinstance(h.get(key), str), f"bad {key}")
    pieces = h.get("pieces")
    need(isinstance(pieces, list) and bool(pieces), "no pieces")
    assert isinstance(pieces, list)
    seen = set()
    for p in pieces:
        need(isinstance(p, dict) and isinstance(p.get("is_dir"), bool), f"bad piece {p!r}")
        rel = plain_rel(p.get("rel"))
        need(
            piece_allowed(rel, p["is_dir"], sid, project),  # type: ignore[arg-type]
            f"piece {rel!r} is not a place this session's files can live; refusing it",
        )
        need(rel not in seen, f"piece {rel!r} listed twice")
        seen.add(rel)
    return h


def piece_of(rel: str, pieces: dict[str, bool]) -> str | None:
    for prel in pieces:
        if rel == prel or rel.startswith(prel + "/"):
            return prel
    return None


def error_text(e: BaseException) -> str:
    if isinstance(e, OSError):
        return f"{e.strerror or e}"
    return str(e)


def archive_files(archive_dir: Path) -> list[Path]:
    """Final archive names only: ``<dir>/<project>/<name>.tar.zst``, regular files, not hidden."""
    out: list[Path] = []
    try:
        projects = sorted(os.scandir(archive_dir), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return out
    for pe in projects:
        if pe.name.startswith(".") or not pe.is_dir(follow_symlinks=False):
            continue
        out += finals_in(Path(pe.path))
    return out


def finals_in(d: Path, prefix: str = "") -> list[Path]:
    try:
        with os.scandir(d) as it:
            return [
                Path(e.path)
                for e in sorted(it, key=lambda e: e.name)
                if e.name.startswith(prefix)
                and not e.name.startswith(".")
                and e.name.endswith(SUFFIX)
                and e.is_file(follow_symlinks=False)
            ]
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []


def partial_files(archive_dir: Path) -> list[Path]:
    """Leftover temp files of interrupted archive writes."""
    out: list[Path] = []
    try:
        projects = list(os.scandir(archive_dir))
    except (FileNotFoundError, NotADirectoryError):
        return out
    for pe in projects:
        if not pe.is_dir(follow_symlinks=False):
            continue
        try:
            with os.scandir(pe.path) as it:
                out += [
                    Path(e.path)
                    for e in it
                    if e.name.startswith(".") and PARTIAL in e.name and not e.is_dir(follow_symlinks=False)
                ]
        except PermissionError:
            continue
    return sorted(out)
