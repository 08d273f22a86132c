"""Restore: put an archived session back, verified first, never overwriting a live file."""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from claude_janitor import testhooks
from claude_janitor.archive.format import (
    CHUNK,
    FILE_OPEN,
    NEW_FILE,
    RESTORE_TMP,
    ArchiveInvalid,
    error_text,
    piece_of,
)
from claude_janitor.archive.reader import ArchiveInfo, as_invalid, verify
from claude_janitor.archive.walk import walk
from claude_janitor.archive.writer import HashReader
from claude_janitor.audit.log import AuditLog
from claude_janitor.errors import ExitStatus, JanitorError
from claude_janitor.fs.safefs import Root, validate_root
from claude_janitor.fs.tree import DIR_FLAGS, Unsafe


@dataclass
class RestoreResult:
    archive: Path
    header: dict[str, Any]
    root: str
    restored: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)  # identical live pieces, left as they are
    files: int = 0
    bytes: int = 0
    header_root: str | None = None  # the archive names another Claude dir than the one restored into
    history: Any = None  # history.HistoryResult: the session's prompt-history lines put back


def _tmp_prefix(session_id: str) -> str:
    return f"{RESTORE_TMP}{hashlib.sha256(session_id.encode('utf-8', 'surrogateescape')).hexdigest()[:16]}-"


def _ensure_parent(root: Root, rel: str) -> tuple[int, str]:
    """fd (caller closes) of the dir that will hold ``rel``, creating missing dirs 0700 (no symlinks)."""
    try:
        return root.open_parent(rel, create=True)
    except Unsafe:
        raise Unsafe(f"{rel}: a parent is on another filesystem; not restored") from None
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise Unsafe(f"{rel}: a parent is a symlink or not a directory; not restored") from None
        raise


def _live_members(root: Root, rel: str) -> list[dict[str, Any]]:
    """A manifest of what lives at ``rel`` now (contents hashed)."""
    out = []
    for e in walk(root, rel):
        m: dict[str, Any] = {"path": e.rel, "type": "dir" if e.is_dir else "file", "mode": stat.S_IMODE(e.st.st_mode)}
        if not e.is_dir:
            fd = os.open(e.name, FILE_OPEN, dir_fd=e.dir_fd)
            try:
                r = HashReader(fd, os.fstat(fd).st_size, e.rel)
                while r.read(CHUNK):
                    pass
            finally:
                os.close(fd)
            m.update(size=e.st.st_size, sha256=r.sha.hexdigest(), mtime_ns=e.st.st_mtime_ns)
        out.append(m)
    return out


def _same_as_archived(live: list[dict[str, Any]], archived: list[dict[str, Any]]) -> bool:
    """Same paths, kinds, and files' modes and contents (times differ once restored: see restore)."""

    def key(ms: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return sorted(
            (m["path"], m["type"], *((m["mode"] & 0o777, m["size"], m["sha256"]) if m["type"] == "file" else ()))
            for m in ms
        )

    return key(live) == key(archived)


class _Extractor:
    """Writes verified members into temp names beside each piece's final place."""

    def __init__(
        self, root: Root, pieces: dict[str, bool], skip: set[str], prefix: str, manifest: dict[str, Any], stamp_ns: int
    ) -> None:
        self.root, self.pieces, self.skip, self.prefix = root, pieces, skip, prefix
        self.stamp_ns = stamp_ns  # every restored file and dir gets this time (see restore)
        self.meta = {m["path"]: m for m in manifest["members"]}
        self.parents: dict[str, tuple[int, str]] = {}  # piece rel → (parent fd, final name)
        self.temps: dict[str, str] = {}  # piece rel → temp name in the parent
        self.dirs: list[tuple[str, list[str], int, int]] = []  # piece, inner parts, mode, mtime_ns
        self.out: IO[bytes] | None = None
        self.cur: dict[str, Any] | None = None
        self.files = 0
        self.bytes = 0

    def _open_inner(self, prel: str, parts: list[str]) -> int:
        pfd, _ = self.parents[prel]
        fd = os.open(self.temps[prel], DIR_FLAGS, dir_fd=pfd)
        try:
            for comp in parts:
                nfd = os.open(comp, DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd

    def begin(self, member: dict[str, Any]) -> None:
        rel = member["path"]
        prel = piece_of(rel, self.pieces)
        assert prel is not None
        self.cur = None
        if prel in self.skip:
            return
        meta = self.meta[rel]
        mode = meta["mode"] & 0o777
        if rel == prel:
            pfd, name = _ensure_parent(self.root, prel)
            self.parents[prel] = (pfd, name)
            tmp = self.prefix + secrets.token_hex(6)
            self.temps[prel] = tmp
            dfd, leaf, parts = pfd, tmp, []
            close = False
        else:
            parts = rel[len(prel) + 1 :].split("/")
            dfd, leaf, close = self._open_inner(prel, parts[:-1]), parts[-1], True
        try:
            if member["type"] == "dir":
                os.mkdir(leaf, 0o700, dir_fd=dfd)
                self.dirs.append((prel, parts, mode, meta["mtime_ns"]))
            else:
                fd = os.open(leaf, NEW_FILE, 0o600, dir_fd=dfd)
                self.out = os.fdopen(fd, "wb", buffering=CHUNK)
                self.cur = meta
        finally:
            if close:
                os.close(dfd)

    def data(self, chunk: bytes) -> None:
        if self.out is not None:
            self.out.write(chunk)

    def end(self) -> None:
        if self.out is None or self.cur is None:
            return
        out, meta, self.out = self.out, self.cur, None
        with out:
            out.flush()
            os.fchmod(out.fileno(), meta["mode"] & 0o777)
            os.fsync(out.fileno())
            os.utime(out.fileno(), ns=(self.stamp_ns, self.stamp_ns))
        self.files += 1
        self.bytes += meta["size"]

    def finish_dirs(self) -> None:
        """Modes and times of the restored dirs, deepest first (after their contents are in)."""
        for prel, parts, mode, _mtime_ns in sorted(self.dirs, key=lambda x: -len(x[1])):
            fd = self._open_inner(prel, parts)
            try:
                os.fchmod(fd, mode | 0o700)  # the owner keeps rwx, so the tree stays manageable
                os.fsync(fd)
                os.utime(fd, ns=(self.stamp_ns, self.stamp_ns))
            finally:
                os.close(fd)

    def abort(self) -> None:
        if self.out is not None:
            self.out.close()
            self.out = None
        for prel, tmp in self.temps.items():
            pfd, _ = self.parents[prel]
            _remove_at(self.root, pfd, tmp)

    def close(self) -> None:
        for pfd, _ in self.parents.values():
            os.close(pfd)
        self.parents.clear()


def _remove_at(root: Root, pfd: int, name: str) -> None:
    from claude_janitor.fs.tree import rmtree_at

    try:
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        rmtree_at(pfd, name, root.dev)
    else:
        os.unlink(name, dir_fd=pfd)


def _clean_restore_temps(root: Root, pieces: dict[str, bool], prefix: str) -> None:
    """Temp entries left by an interrupted restore of this session (we hold the sweep lock)."""
    parents = {rel.rsplit("/", 1)[0] for rel in pieces}
    for prel in parents:
        try:
            pfd, _ = root.open_parent(prel + "/x")
        except (FileNotFoundError, NotADirectoryError):
            continue
        try:
            for n in os.listdir(pfd):
                if n.startswith(prefix):
                    _remove_at(root, pfd, n)
        finally:
            os.close(pfd)


def _identical_live_pieces(root: Root, by_piece: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The pieces already live and identical to the archived ones; JanitorError for one that differs."""
    already: list[str] = []
    for rel, archived in by_piece.items():
        try:
            root.lstat(rel)
        except (FileNotFoundError, NotADirectoryError):
            continue
        if _same_as_archived(_live_members(root, rel), archived):
            already.append(rel)
            continue
        raise JanitorError(
            f"{root.path}/{rel} already exists and differs from the archive: refusing to "
            "overwrite a live file (move it away first if you want the archived one)",
            ExitStatus.ACTIONS_FAILED,
        )
    return already


def _publish_piece(ex: _Extractor, rel: str, is_dir: bool, shown: str) -> tuple[int, str]:
    """Give one extracted piece its final name (never replacing a live one); returns (parent fd, name)."""
    pfd, name = ex.parents[rel]
    tmp = ex.temps[rel]
    if not is_dir:
        _publish_file(pfd, tmp, name, shown)
        return pfd, name
    if _exists(pfd, name):
        raise FileExistsError(errno.EEXIST, "appeared during the restore", shown)
    os.rename(tmp, name, src_dir_fd=pfd, dst_dir_fd=pfd)
    fd = os.open(name, DIR_FLAGS, dir_fd=pfd)
    try:
        os.utime(fd, ns=(ex.stamp_ns, ex.stamp_ns))
    finally:
        os.close(fd)
    return pfd, name


def restore(info: ArchiveInfo, *, target_root: Path, audit: AuditLog | None = None) -> RestoreResult:
    """Put every piece of the archived session back at its path with its modes, all with the time of the
    restore as their mtime.

    Not the original times (they stay in the archive's manifest and header): Claude Code's own cleanup
    ages every piece by its mtime, and would delete a session restored with its old times at its next
    start — file-history/, session-env/ and debug/ even after the session is resumed, since resuming
    refreshes only the transcript. With the restore time, Claude Code and the janitor both see a session
    active now, which gets a fresh window from both (and, unchanged, re-uses this archive when it expires
    again). The archive is verified in full first; a live entry in the way that is not identical to the
    archived one (contents and modes) is never overwritten (JanitorError, exit 1). An identical one is left
    as it is, so a restore cut short can simply be run again. The archive itself is kept."""
    hist: list[bytes] = []
    full = verify(info.path, history_out=hist)
    h, manifest = full.header, full.manifest
    assert manifest is not None
    sid = h["session_id"]
    # Only ever into the Claude dir the caller resolved like every other command (--claude-dir, else
    # $CLAUDE_CONFIG_DIR, else ~/.claude). The header's root is unkeyed, untrusted data: shown, not obeyed.
    root_path = validate_root(Path(target_root))
    pieces = {p["rel"]: p["is_dir"] for p in h["pieces"]}
    res = RestoreResult(info.path, h, str(root_path))
    if os.path.realpath(str(h["root"])) != os.path.realpath(root_path):
        res.header_root = str(h["root"])
    prefix = _tmp_prefix(sid)
    by_piece: dict[str, list[dict[str, Any]]] = {p: [] for p in pieces}
    for m in manifest["members"]:
        by_piece[piece_of(m["path"], pieces) or ""].append(m)
    base = {
        "action": "restore",
        "session_id": sid,
        "root": str(root_path),
        "project": h["project"],
        "archive": str(info.path),
        "paths": list(pieces),
        "bytes": manifest.get("bytes", 0),
    }
    with Root(root_path) as root:
        _clean_restore_temps(root, pieces, prefix)
        res.already = _identical_live_pieces(root, by_piece)
        if len(res.already) == len(pieces):
            _put_history_back(res, hist)
            return res
        if audit:
            audit.append([{**base, "phase": "intent", "result": "pending"}])
        ex = _Extractor(root, pieces, set(res.already), prefix, manifest, time.time_ns())
        published: list[tuple[int, str]] = []
        try:
            again = as_invalid(lambda: verify(info.path, visitor=ex))
            if again.manifest != manifest or again.header != h:
                raise ArchiveInvalid("the archive changed while being restored")
            ex.finish_dirs()
            testhooks.point("restore-extracted")
            order = sorted((p for p in pieces if p not in res.already), key=lambda p: p.endswith(".jsonl"))
            for rel in order:
                pfd, name = _publish_piece(ex, rel, pieces[rel], f"{root_path}/{rel}")
                published.append((pfd, name))
                os.fsync(pfd)
                res.restored.append(rel)
                testhooks.point("restore-published")
            res.files, res.bytes = ex.files, ex.bytes
        except BaseException as e:
            ex.abort()
            for pfd, name in published:
                _remove_at(root, pfd, name)
            if audit:
                audit.append([{**base, "phase": "result", "result": "failed", "error": error_text(e)}])
            if isinstance(e, FileExistsError):
                raise JanitorError(
                    f"{e.filename} {e.strerror}: refusing to overwrite a live file; nothing was restored",
                    ExitStatus.ACTIONS_FAILED,
                ) from None
            raise
        finally:
            ex.close()
    _put_history_back(res, hist)
    if audit:
        extra = {"history_lines": res.history.added} if res.history is not None else {}
        audit.append(
            [
                {
                    **base,
                    "phase": "result",
                    "result": "ok",
                    "restored": res.restored,
                    "already_present": res.already,
                    **extra,
                }
            ]
        )
    return res


def _put_history_back(res: RestoreResult, lines: list[bytes]) -> None:
    """The session's archived prompt-history lines go back into history.jsonl (those not there yet)."""
    if lines:
        from claude_janitor.removal.history import put_back

        res.history = put_back(res.root, lines)


def _publish_file(pfd: int, tmp: str, name: str, shown: str) -> None:
    """Give a restored file its name; never replaces a live one (FileExistsError)."""
    try:
        os.link(tmp, name, src_dir_fd=pfd, dst_dir_fd=pfd, follow_symlinks=False)
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, "appeared during the restore", shown) from None
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            raise
        if _exists(pfd, name):  # no hard links on this filesystem: check, then rename
            raise FileExistsError(errno.EEXIST, "appeared during the restore", shown) from None
        os.rename(tmp, name, src_dir_fd=pfd, dst_dir_fd=pfd)
        return
    os.unlink(tmp, dir_fd=pfd)


def _exists(dfd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dfd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False
