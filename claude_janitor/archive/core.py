"""Archives: one verified, compressed file per session; restore; archive retention.

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

import errno
import functools
import hashlib
import json
import os
import re
import secrets
import stat
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import zstandard

from claude_janitor import testhooks
from claude_janitor.audit.log import AuditLog
from claude_janitor.cache.ids import canonical_id, same_id
from claude_janitor.cache.layout import piece_owner
from claude_janitor.cache.transcript import TS_MAX
from claude_janitor.config.paths import JanitorDirs, archive_dir_for, encode_project
from claude_janitor.durations import human_bytes, human_duration
from claude_janitor.fs.atomicfile import fsync_dir, mkdirs_private
from claude_janitor.fs.safefs import DIR_FLAGS, Changed, Root, Unsafe, validate_root
from claude_janitor.model import Action, Decision, JanitorError, Policy, Window
from claude_janitor.removal import staging

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


def iso(t: object) -> str | None:
    """A UTC time for display; None for anything that is not a time (header values are untrusted)."""
    if isinstance(t, bool) or not isinstance(t, int | float) or not 0 <= t <= TS_MAX:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _stamp(t: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t))


def safe_name(text: str, limit: int = 120) -> str:
    """A file name for ``text``: [A-Za-z0-9._-] only, not hidden, bounded; hashed when altered."""
    clean = re.sub(r"[^A-Za-z0-9._-]", "_", text) or "_"
    if clean.startswith("."):
        clean = "_" + clean[1:]
    if clean != text or len(clean) > limit:
        digest = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:12]
        clean = f"{clean[:limit - 13]}-{digest}"
    return clean


def project_dir_name(project: str) -> str:
    return safe_name(project) if project else "_no-project"


# ---- walking a session's pieces (dirfd-relative, no symlinks followed, no mounts crossed) ---------

@dataclass(frozen=True, slots=True)
class Entry:
    rel: str
    st: os.stat_result
    dir_fd: int  # the dir holding it (valid only while the walk is suspended at this entry)
    name: str

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symlink"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device")):
        if test(mode):
            return name
    return "not a regular file or directory"


def _check_entry(rel: str, st: os.stat_result, dev: int) -> None:
    if stat.S_ISREG(st.st_mode):
        return
    if not stat.S_ISDIR(st.st_mode):
        raise Unsafe(f"{rel} is {_kind(st.st_mode)}; only sessions made of plain files and directories "
                     "are archived (kept)")
    if st.st_dev != dev:
        raise Unsafe(f"{rel} is on another filesystem; not entered (kept)")


def walk(root: Root, rel: str, *, ino: int | None = None) -> Iterator[Entry]:
    """Every dir and file at and under ``rel`` (dirs before their contents, names sorted).

    Iterative: one fd per level of depth. With ``ino``, the top entry must be that inode (else Changed).
    Anything that is not a regular file or dir raises Unsafe; something vanishing raises Changed."""
    pfd, name = root.open_parent(rel)
    stack: list[tuple[int, str, list[str]]] = []
    try:
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        if ino is not None and st.st_ino != ino:
            raise Changed(f"{rel} changed since the scan")
        _check_entry(rel, st, root.dev)
        if not stat.S_ISDIR(st.st_mode):
            yield Entry(rel, st, pfd, name)
            return
        fd = os.open(name, DIR_FLAGS, dir_fd=pfd)
        stack.append((fd, rel, []))
        stack[-1][2].extend(sorted(os.listdir(fd), reverse=True))
        if os.fstat(fd).st_ino != st.st_ino:
            raise Changed(f"{rel} changed while being read")
        yield Entry(rel, st, pfd, name)
        while stack:
            dfd, drel, names = stack[-1]
            if not names:
                os.close(dfd)
                stack.pop()
                continue
            n = names.pop()
            crel = f"{drel}/{n}"
            try:
                cst = os.stat(n, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                raise Changed(f"{crel} vanished while being read") from None
            _check_entry(crel, cst, root.dev)
            if stat.S_ISDIR(cst.st_mode):
                cfd = os.open(n, DIR_FLAGS, dir_fd=dfd)
                stack.append((cfd, crel, []))
                stack[-1][2].extend(sorted(os.listdir(cfd), reverse=True))
                if os.fstat(cfd).st_ino != cst.st_ino:
                    raise Changed(f"{crel} changed while being read")
            yield Entry(crel, cst, dfd, n)
    except FileNotFoundError as e:
        raise Changed(f"{rel}: {e.strerror} while being read") from None
    finally:
        for fd, _, _ in stack:
            os.close(fd)
        os.close(pfd)


Identity = tuple[str, int, int, int]  # kind, ino, size, mtime_ns


def _ident(st: os.stat_result) -> Identity:
    return ("dir" if stat.S_ISDIR(st.st_mode) else "file", st.st_ino, st.st_size, st.st_mtime_ns)


def snapshot(root: Root, d: Decision) -> dict[str, Identity]:
    """What every entry of the session is right now (no contents read)."""
    out: dict[str, Identity] = {}
    for p in d.session.pieces:
        for e in walk(root, p.rel, ino=p.ino):
            out[e.rel] = _ident(e.st)
    return out


# ---- writing ------------------------------------------------------------------------------------

class _HashReader:
    """Reads exactly ``size`` bytes from ``fd``, hashing them; a file that shrinks raises Changed."""

    def __init__(self, fd: int, size: int, rel: str) -> None:
        self.fd, self.left, self.rel = fd, size, rel
        self.sha = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        parts = []
        while n > 0:
            b = os.read(self.fd, min(n, CHUNK))
            if not b:
                raise Changed(f"{self.rel} shrank while being archived")
            parts.append(b)
            n -= len(b)
            self.left -= len(b)
        data = b"".join(parts)
        self.sha.update(data)
        return data


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, ensure_ascii=True, indent=1).encode() + b"\n"


def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    import io

    ti = tarfile.TarInfo(name)
    ti.size, ti.mtime, ti.mode = len(data), int(mtime), 0o600
    tf.addfile(ti, io.BytesIO(data))


def make_header(d: Decision, now: float) -> dict[str, Any]:
    s = d.session
    return {
        "format": FORMAT, "version": VERSION,
        "session_id": s.session_id, "root": s.root, "project": s.project, "project_path": s.project_path,
        "archived_at": now, "archived_at_iso": iso(now),
        "last_activity": s.last_activity, "reason": d.reason, "rule": d.rule, "bytes": s.bytes,
        "pieces": [{"rel": p.rel, "store": p.store, "is_dir": p.is_dir} for p in s.pieces],
    }


def write_archive(out: IO[bytes], root: Root, d: Decision, header: dict[str, Any], *,
                  level: int = LEVEL, history: bytes | None = None) -> tuple[dict[str, Any], dict[str, Identity]]:
    """Stream the session into ``out``: returns the manifest and the identity of every entry read.
    ``history``: the session's lines of history.jsonl, stored as a member of their own after the header."""
    idents: dict[str, Identity] = {}
    members: list[dict[str, Any]] = []
    zw = zstandard.ZstdCompressor(level=level, write_checksum=True).stream_writer(out, closefd=False)
    tf = tarfile.open(fileobj=zw, mode="w|", format=tarfile.PAX_FORMAT, copybufsize=CHUNK)
    hb = _json_bytes(header)
    _add_bytes(tf, HEADER_NAME, hb, header["archived_at"])
    if history is not None:
        _add_bytes(tf, HISTORY_NAME, history, header["archived_at"])
    for p in d.session.pieces:
        for e in walk(root, p.rel, ino=p.ino):
            ti = tarfile.TarInfo(DATA + e.rel)
            ti.mode = stat.S_IMODE(e.st.st_mode)
            if e.is_dir:
                ti.type = tarfile.DIRTYPE
                ti.mtime = e.st.st_mtime_ns / 1e9
                tf.addfile(ti)
                members.append({"path": e.rel, "type": "dir", "mode": ti.mode, "mtime_ns": e.st.st_mtime_ns})
                idents[e.rel] = _ident(e.st)
                continue
            fd = os.open(e.name, FILE_OPEN, dir_fd=e.dir_fd)
            try:
                before = os.fstat(fd)
                if not stat.S_ISREG(before.st_mode) or before.st_ino != e.st.st_ino:
                    raise Changed(f"{e.rel} changed while being archived")
                ti.size, ti.mtime = before.st_size, before.st_mtime_ns / 1e9
                reader = _HashReader(fd, before.st_size, e.rel)
                tf.addfile(ti, reader)
                after = os.fstat(fd)
            finally:
                os.close(fd)
            if _ident(after) != _ident(before):
                raise Changed(f"{e.rel} was written to while being archived")
            members.append({"path": e.rel, "type": "file", "mode": ti.mode, "mtime_ns": before.st_mtime_ns,
                            "size": before.st_size, "sha256": reader.sha.hexdigest()})
            idents[e.rel] = _ident(before)
            testhooks.point("archive-member")
    manifest = {
        "format": FORMAT, "version": VERSION, "header_sha256": hashlib.sha256(hb).hexdigest(),
        "members": members,
        "files": sum(1 for m in members if m["type"] == "file"),
        "bytes": sum(m.get("size", 0) for m in members),
    }
    if history is not None:
        manifest["history"] = _history_entry(history)
    _add_bytes(tf, MANIFEST_NAME, _json_bytes(manifest), header["archived_at"])
    tf.close()
    zw.close()
    out.flush()
    return manifest, idents


def _history_entry(data: bytes) -> dict[str, Any]:
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "lines": data.count(b"\n")}


# ---- reading and verifying ----------------------------------------------------------------------

class Sink(Protocol):
    def begin(self, member: dict[str, Any]) -> None: ...
    def data(self, chunk: bytes) -> None: ...
    def end(self) -> None: ...


def _need(cond: bool, msg: str) -> None:
    if not cond:
        raise ArchiveInvalid(msg)


def _plain_rel(rel: object) -> str:
    _need(isinstance(rel, str) and bool(rel), f"member path {rel!r} is not a string")
    assert isinstance(rel, str)
    parts = rel.split("/")
    _need(not rel.startswith("/"), f"member path {rel!r} is absolute")
    _need(".." not in parts, f"member path {rel!r} contains '..'")
    _need(all(p not in ("", ".") for p in parts) and "\0" not in rel,
          f"member path {rel!r} is not a plain relative path")
    return rel


def piece_allowed(rel: str, is_dir: bool, session_id: str, project: str) -> bool:
    """Is ``rel`` one of the places a piece of this session can live? (The only places restore writes.)
    The layout rules live in cache.piece_owner."""
    owner = piece_owner(rel, is_dir)
    if owner is None or owner[1] != session_id:
        return False
    return owner[0] == "" or (bool(project) and owner[0] == project)


def check_header(h: object) -> dict[str, Any]:
    _need(isinstance(h, dict), "header is not a JSON object")
    assert isinstance(h, dict)
    _need(h.get("format") == FORMAT, f"not a {FORMAT} header")
    _need(h.get("version") == VERSION, f"unsupported archive version {h.get('version')!r}")
    sid, project = h.get("session_id"), h.get("project")
    _need(isinstance(sid, str) and bool(sid) and "/" not in sid and sid not in (".", "..") and "\0" not in sid,
          f"bad session id {sid!r}")
    _need(isinstance(project, str) and "/" not in project and project not in (".", "..")
          and "\0" not in project, f"bad project {project!r}")
    _need(isinstance(h.get("root"), str) and h["root"].startswith("/"), "bad root")
    at = h.get("archived_at")
    _need(isinstance(at, int | float) and not isinstance(at, bool) and 0 <= at <= TS_MAX,  # type: ignore[operator]
          "bad archived_at")
    la = h.get("last_activity")
    _need(la is None or (isinstance(la, int | float) and not isinstance(la, bool) and -TS_MAX <= la <= TS_MAX),
          "bad last_activity")  # (a comparison, not math.isfinite: a 300-digit int would overflow a float)
    nb = h.get("bytes")
    _need(nb is None or (isinstance(nb, int) and not isinstance(nb, bool) and 0 <= nb < 1 << 63), "bad bytes")
    for key in ("project_path", "reason", "rule"):
        _need(h.get(key) is None or isinstance(h.get(key), str), f"bad {key}")
    pieces = h.get("pieces")
    _need(isinstance(pieces, list) and bool(pieces), "no pieces")
    assert isinstance(pieces, list)
    seen = set()
    for p in pieces:
        _need(isinstance(p, dict) and isinstance(p.get("is_dir"), bool), f"bad piece {p!r}")
        rel = _plain_rel(p.get("rel"))
        _need(piece_allowed(rel, p["is_dir"], sid, project),  # type: ignore[arg-type]
              f"piece {rel!r} is not a place this session's files can live; refusing it")
        _need(rel not in seen, f"piece {rel!r} listed twice")
        seen.add(rel)
    return h


def _piece_of(rel: str, pieces: dict[str, bool]) -> str | None:
    for prel in pieces:
        if rel == prel or rel.startswith(prel + "/"):
            return prel
    return None


@dataclass
class ArchiveInfo:
    path: Path
    header: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] | None = None
    size: int = 0
    error: str | None = None

    @property
    def session_id(self) -> str:
        return str(self.header.get("session_id", ""))

    @property
    def archived_at(self) -> float:
        return float(self.header.get("archived_at", 0.0))

    def to_dict(self) -> dict[str, Any]:
        h = self.header
        out: dict[str, Any] = {"path": str(self.path), "archive_bytes": self.size}
        if h:
            out.update({
                "session_id": h.get("session_id"), "root": h.get("root"), "project": h.get("project"),
                "project_path": h.get("project_path"), "archived_at": iso(h.get("archived_at")),
                "last_activity": iso(h.get("last_activity")), "bytes": h.get("bytes"),
                "reason": h.get("reason"), "paths": [p.get("rel") for p in h.get("pieces", [])],
            })
        if self.manifest is not None:
            out["files"] = self.manifest.get("files")
            out["verified"] = self.error is None
        if self.error:
            out["error"] = self.error
        return out


def _open_stream(f: IO[bytes]) -> tuple[Any, tarfile.TarFile]:
    zr = zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=False, closefd=False)
    return zr, tarfile.open(fileobj=zr, mode="r|")


def _read_meta(tf: tarfile.TarFile, m: tarfile.TarInfo | None, name: str) -> tuple[bytes, Any]:
    _need(m is not None, f"{name} is missing (truncated archive?)")
    assert m is not None
    _need(m.name == name and m.isreg(), f"expected {name}, found {m.name!r}")
    _need(m.size <= MAX_META, f"{name} is too large")
    ef = tf.extractfile(m)
    assert ef is not None
    raw = ef.read()
    try:
        return raw, json.loads(raw)
    except ValueError as e:
        raise ArchiveInvalid(f"{name} is not valid JSON: {e}") from None


def _read_history(tf: tarfile.TarFile, m: tarfile.TarInfo) -> bytes:
    _need(m.isreg() and m.size <= MAX_META, f"{HISTORY_NAME} is not a plain file of a sane size")
    ef = tf.extractfile(m)
    assert ef is not None
    return ef.read()


def read_history(path: Path) -> list[bytes]:
    """The prompt-history lines stored in an archive (reads only its first two members; [] if none)."""
    with _open_archive(path) as f:
        def go() -> list[bytes]:
            _, tf = _open_stream(f)
            check_header(_read_meta(tf, tf.next(), HEADER_NAME)[1])
            m = tf.next()
            return _read_history(tf, m).splitlines(keepends=True) if m and m.name == HISTORY_NAME else []
        return _wrap(go)


def _read(f: IO[bytes], *, header_only: bool = False, sink: Sink | None = None,
          history_out: list[bytes] | None = None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    zr, tf = _open_stream(f)
    hb, header = _read_meta(tf, tf.next(), HEADER_NAME)
    check_header(header)
    if header_only:
        return header, None
    pieces = {p["rel"]: p["is_dir"] for p in header["pieces"]}
    seen: list[dict[str, Any]] = []
    dirs: set[str] = set()
    names: set[str] = set()
    hist: bytes | None = None
    m = tf.next()
    if m is not None and m.name == HISTORY_NAME:
        hist = _read_history(tf, m)
        m = tf.next()
    while True:
        _need(m is not None, f"{MANIFEST_NAME} is missing (truncated archive?)")
        assert m is not None
        if m.name == MANIFEST_NAME:
            break
        _need(m.name.startswith(DATA), f"unexpected member {m.name!r}")
        rel = _plain_rel(m.name[len(DATA):])
        _need(rel not in names, f"member {rel!r} appears twice")
        names.add(rel)
        _need(m.isreg() or m.isdir(), f"member {rel!r} is a link or special file; refusing it")
        prel = _piece_of(rel, pieces)
        _need(prel is not None, f"member {rel!r} is outside the session's pieces")
        assert prel is not None
        if rel == prel:
            _need(m.isdir() == pieces[prel], f"member {rel!r} is not the kind of piece the header says")
        else:
            _need(rel.rsplit("/", 1)[0] in dirs, f"member {rel!r} comes before its directory")
        _need(0 <= m.mode <= 0o7777, f"member {rel!r} has a bad mode")
        entry: dict[str, Any] = {"path": rel, "type": "dir" if m.isdir() else "file", "mode": m.mode}
        if sink:
            sink.begin(entry)
        if m.isdir():
            dirs.add(rel)
        else:
            ef = tf.extractfile(m)
            assert ef is not None
            sha = hashlib.sha256()
            n = 0
            while chunk := ef.read(CHUNK):
                sha.update(chunk)
                n += len(chunk)
                if sink:
                    sink.data(chunk)
            _need(n == m.size, f"member {rel!r} is cut short")
            entry.update(size=n, sha256=sha.hexdigest())
        if sink:
            sink.end()
        seen.append(entry)
        m = tf.next()
    missing = sorted(set(pieces) - names)
    _need(not missing, f"piece {missing[0]!r} is in the header but not in the archive" if missing else "")
    mb, manifest = _read_meta(tf, m, MANIFEST_NAME)
    _need(isinstance(manifest, dict) and manifest.get("format") == FORMAT, "manifest is not a janitor manifest")
    _need(manifest.get("header_sha256") == hashlib.sha256(hb).hexdigest(), "header does not match the manifest")
    listed = manifest.get("members")
    _need(isinstance(listed, list) and len(listed) == len(seen),
          f"manifest lists {len(listed) if isinstance(listed, list) else '?'} members, archive holds {len(seen)}")
    for want, got in zip(listed, seen, strict=True):
        _need(isinstance(want, dict) and type(want.get("mtime_ns")) is int and 0 <= want["mtime_ns"] < 1 << 62,
              f"bad manifest entry {want!r}")
        exp = {k: v for k, v in want.items() if k != "mtime_ns"}
        _need(exp == got, f"{got['path']}: does not match the manifest (expected "
                          f"{exp.get('sha256', exp.get('type'))}, found {got.get('sha256', got.get('type'))})")
    _need(manifest.get("history") == (None if hist is None else _history_entry(hist)),
          f"{HISTORY_NAME} does not match the manifest")
    if hist is not None and history_out is not None:
        history_out.extend(hist.splitlines(keepends=True))
    _need(tf.next() is None, "unexpected members after the manifest")
    while zr.read(CHUNK):  # to the end of the zstd frame, so its checksum is checked too
        pass
    return header, manifest


def _wrap(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except ArchiveInvalid:
        raise
    except (tarfile.TarError, zstandard.ZstdError, EOFError, ValueError, KeyError, TypeError,
            AttributeError) as e:
        raise ArchiveInvalid(f"unreadable: {e}") from None


def _open_archive(path: Path, dir_fd: int | None = None) -> IO[bytes]:
    """An archive is untrusted input: opened through saferead (non-blocking, no symlink followed, a
    regular file or ArchiveInvalid). Its size is not capped (sessions are big); its header and manifest
    are (MAX_META), and every member is checked against the manifest."""
    from claude_janitor.fs.saferead import InputError, open_input

    try:
        fd, _ = open_input(path, what="archive", follow=False, dir_fd=dir_fd)
    except InputError as e:
        raise ArchiveInvalid(str(e)) from None
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb", buffering=CHUNK)


def read_header(path: Path) -> ArchiveInfo:
    """The header alone (fast: the first member). Raises ArchiveInvalid or OSError."""
    with _open_archive(path) as f:
        size = os.fstat(f.fileno()).st_size
        header, _ = _wrap(lambda: _read(f, header_only=True))
    return ArchiveInfo(path, header, None, size)


def verify(path: Path, *, sink: Sink | None = None, dir_fd: int | None = None,
           history_out: list[bytes] | None = None) -> ArchiveInfo:
    """Read the whole archive and check every member against the manifest. Raises ArchiveInvalid/OSError.
    ``history_out`` gets the prompt-history lines the archive holds, if any."""
    with _open_archive(path, dir_fd) as f:
        size = os.fstat(f.fileno()).st_size
        header, manifest = _wrap(lambda: _read(f, sink=sink, history_out=history_out))
    return ArchiveInfo(path, header, manifest, size)


def list_archives(archive_dir: Path, *, full: bool = False) -> list[ArchiveInfo]:
    """Every archive under ``archive_dir`` (temp files are never included), oldest first.

    Unreadable ones are included with ``error`` set. ``full`` verifies each one completely."""
    out: list[ArchiveInfo] = []
    for path in archive_files(archive_dir):
        try:
            out.append(verify(path) if full else read_header(path))
        except (ArchiveInvalid, OSError) as e:
            out.append(ArchiveInfo(path, {}, {} if full else None, _size(path), _err(e)))
    out.sort(key=_age_key)
    return out


def _age_key(a: ArchiveInfo) -> tuple[float, int, str]:
    """Oldest first: by archived_at, then by the -N a later archive of the same second got."""
    m = re.search(r"-(\d+)" + re.escape(SUFFIX) + "$", a.path.name)
    return (a.archived_at, int(m.group(1)) if m else 0, str(a.path))


def _size(path: Path) -> int:
    try:
        return path.lstat().st_size
    except OSError:
        return 0


def _err(e: BaseException) -> str:
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
        out += _finals_in(Path(pe.path))
    return out


def _finals_in(d: Path, prefix: str = "") -> list[Path]:
    try:
        with os.scandir(d) as it:
            return [Path(e.path) for e in sorted(it, key=lambda e: e.name)
                    if e.name.startswith(prefix) and not e.name.startswith(".") and e.name.endswith(SUFFIX)
                    and e.is_file(follow_symlinks=False)]
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
                out += [Path(e.path) for e in it if e.name.startswith(".") and PARTIAL in e.name
                        and not e.is_dir(follow_symlinks=False)]
        except PermissionError:
            continue
    return sorted(out)


# ---- the store: where archives go, and the archive action ------------------------------------------

def _drop_cache(fd: int) -> None:
    if hasattr(os, "posix_fadvise"):
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass


def _covers(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Does the ``old`` manifest hold every dir and file of the ``new`` one, the same bytes and mode? (Not
    the same times: a restored session's files carry the restore time, and archiving it again unchanged
    re-uses the archive that holds its original times.)"""
    have = {m["path"]: m for m in old["members"]}
    for m in new["members"]:
        o = have.get(m["path"])
        if o is None or o["type"] != m["type"]:
            return False
        if m["type"] == "file" and any(o.get(k) != m.get(k) for k in ("size", "sha256", "mode")):
            return False
    return True


@dataclass
class ArchiveStore:
    """Where this run's archives go and the time they are stamped with."""

    dir: Path
    now: float
    level: int = LEVEL
    history: bool = False  # [history] removed_sessions: the session's history.jsonl lines go in its archive
    _history_index: Any = field(default=None, repr=False, compare=False)

    def archive(self, root: Root, d: Decision) -> Path:
        """Archive the session and delete its originals (see the module docstring for the order)."""
        s = d.session
        target = self.dir / project_dir_name(s.project)
        mkdirs_private(target)
        dfd = os.open(target, DIR_FLAGS)
        try:
            final, idents = self._write_verify_publish(root, d, dfd, target)
            testhooks.point("archive-published")
            os.fsync(dfd)
            testhooks.point("archive-synced")
        finally:
            os.close(dfd)
        try:
            self._delete_originals(root, d, idents)
        except staging.Interfered as e:
            raise staging.Interfered(f"archived to {final}, but {e}") from None
        except (Changed, staging.Busy):
            raise
        except OSError as e:
            raise OSError(e.errno, f"archived to {final}, but removing the originals failed: "
                                   f"{e.strerror or e} (the next sweep finishes the job)", e.filename) from None
        return final

    def _write_verify_publish(self, root: Root, d: Decision, dfd: int, target: Path
                              ) -> tuple[Path, dict[str, Identity]]:
        s = d.session
        base = f"{safe_name(s.session_id)}.{_stamp(self.now)}"
        tmp = f".{base}{PARTIAL}{secrets.token_hex(6)}"
        header = make_header(d, self.now)
        hist = None
        if self.history:
            if self._history_index is None:
                from claude_janitor.removal.history import Index

                self._history_index = Index()
            hist = b"".join(self._history_index.lines_of(root.path, s.session_id)) or None
        try:
            fd = os.open(tmp, NEW_FILE, 0o600, dir_fd=dfd)
            with os.fdopen(fd, "wb", buffering=CHUNK) as out:
                os.fchmod(fd, 0o600)
                manifest, idents = write_archive(out, root, d, header, level=self.level, history=hist)
                testhooks.point("archive-written")
                os.fsync(fd)
                _drop_cache(fd)
            testhooks.point("archive-fsynced")
            got = verify(Path(tmp), dir_fd=dfd)
            if got.header != header or got.manifest != manifest:
                raise ArchiveInvalid("what was read back differs from what was written")
            testhooks.point("archive-verified")
            existing = self._covering(target, s, manifest)
            if existing is not None:
                os.unlink(tmp, dir_fd=dfd)
                return existing, idents
            name = self._publish(tmp, base, dfd)
        except (Changed, Unsafe):
            _unlink_quiet(tmp, dfd)
            raise
        except ArchiveInvalid as e:
            _unlink_quiet(tmp, dfd)
            raise OSError(errno.EIO, f"archive did not verify, originals kept: {e}", str(target)) from None
        except OSError as e:
            _unlink_quiet(tmp, dfd)
            raise OSError(e.errno, f"archive not written, originals kept: {e.strerror or e}",
                          str(target)) from None
        except BaseException:
            _unlink_quiet(tmp, dfd)
            raise
        return target / name, idents

    def _publish(self, tmp: str, base: str, dfd: int) -> str:
        """Give the verified temp file its final name without ever replacing an existing file."""
        for i in range(10_000):
            name = f"{base}-{i}{SUFFIX}" if i else f"{base}{SUFFIX}"
            try:
                os.link(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd, follow_symlinks=False)
            except FileExistsError:
                continue
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
                    raise
                # No hard links here: claim the name exclusively, then move onto our own placeholder.
                try:
                    os.close(os.open(name, NEW_FILE, 0o600, dir_fd=dfd))
                except FileExistsError:
                    continue
                os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
                return name
            testhooks.point("archive-linked")
            os.unlink(tmp, dir_fd=dfd)
            return name
        raise OSError(errno.EEXIST, "no free archive name", base)

    def _covering(self, target: Path, s: Any, manifest: dict[str, Any]) -> Path | None:
        """An existing verified archive of this same session that already holds everything (identical).

        That happens when a sweep was interrupted while deleting the originals, or when a restored
        session expires again unchanged: no second archive is made, the originals just go."""
        for path in reversed(_finals_in(target, f"{safe_name(s.session_id)}.")):
            try:
                info = verify(path)
            except (ArchiveInvalid, OSError):
                continue
            h = info.header
            if (h["session_id"], h["root"], h["project"]) == (s.session_id, s.root, s.project) \
                    and info.manifest is not None and _covers(info.manifest, manifest) \
                    and info.manifest.get("history") == manifest.get("history"):
                return path
        return None

    def _delete_originals(self, root: Root, d: Decision, idents: dict[str, Identity]) -> None:
        """Remove the originals through staging: what is removed is checked to be exactly what was
        archived (every entry's kind, inode, size, mtime), after it was moved out of reach."""
        testhooks.point("archive-delete")
        staging.remove(root, d.session, d.action.value, staging.matches_identities(idents))


def _unlink_quiet(name: str, dfd: int) -> None:
    try:
        os.unlink(name, dir_fd=dfd)
    except FileNotFoundError:
        pass


def archive_actor(root: Root, d: Decision, *, store: ArchiveStore | None = None) -> dict[str, Any]:
    """The sweep's archive action: returns {"archive": path}. ``store`` is bound by ``bind``."""
    if store is None:
        raise TypeError("archive_actor needs an ArchiveStore (sweep.execute binds it through archive.bind)")
    return {"archive": str(store.archive(root, d))}


# ---- run-time maintenance: bind the actor, clean temp leftovers, prune old archives -------------------

def bind(actors: dict[Action, Any], pol: Policy, dirs: JanitorDirs, now: float) -> dict[Action, Any]:
    """The actors with the archive action bound to this run's archive dir and time (added if missing)."""
    actors = dict(actors)
    act = actors.setdefault(Action.ARCHIVE, archive_actor)
    if act is archive_actor:
        actors[Action.ARCHIVE] = functools.partial(archive_actor,
                                                   store=ArchiveStore(archive_dir_for(pol, dirs), now,
                                                                      history=pol.history.removed_sessions))
    return actors


def maintain(pol: Policy, dirs: JanitorDirs, now: float, *, dry_run: bool, audit: AuditLog | None
             ) -> dict[str, Any] | None:
    """Once per sweep: remove temp files left by an interrupted run (real runs only; the caller holds the
    sweep lock) and prune archives past ``archive_retention`` (dry runs only report both).
    Returns a summary, or None when there is no archive dir."""
    adir = archive_dir_for(pol, dirs)
    if not os.path.isdir(adir):
        return None
    info: dict[str, Any] = {"dir": str(adir), "partials": [], "pruned": [], "errors": []}
    for p in partial_files(adir):
        if dry_run:
            info["partials"].append({"path": str(p), "result": "dry-run"})
            continue
        try:
            p.unlink()
            info["partials"].append({"path": str(p), "result": "removed"})
        except FileNotFoundError:
            pass
        except OSError as e:
            info["errors"].append(f"cannot remove leftover temp file {p}: {e.strerror}")
    info["pruned"] = prune(adir, pol.archive_retention, now, dry_run=dry_run, audit=audit, errors=info["errors"])
    return info


def prune(archive_dir: Path, retention: Window | None, now: float, *, dry_run: bool, audit: AuditLog | None,
          errors: list[str] | None = None) -> list[dict[str, Any]]:
    """Remove archives older than ``retention`` (by the archived_at in their header), audited.

    An archive archived exactly ``retention`` ago is kept. Unreadable archives are never pruned."""
    if retention is None or retention.seconds is None:
        return []
    errors = errors if errors is not None else []
    todo: list[tuple[ArchiveInfo, dict[str, Any]]] = []
    for a in list_archives(archive_dir):
        if a.error:
            errors.append(f"archive {a.path} is unreadable ({a.error}); kept, not pruned")
            continue
        age = now - a.archived_at
        if age <= retention.seconds:
            continue
        rec = {"action": "prune-archive", "archive": str(a.path), "session_id": a.session_id,
               "root": a.header.get("root"), "project": a.header.get("project"),
               "archived_at": iso(a.archived_at), "bytes": a.size,
               "reason": f"archived {human_duration(age)} ago > archive_retention "
                         f"{human_duration(retention.seconds)} ({retention.source})"}
        todo.append((a, rec))
    if not todo or dry_run:
        return [{**rec, "result": "dry-run"} for _, rec in todo] if dry_run else []
    if audit:
        audit.append([{**rec, "phase": "intent", "result": "pending"} for _, rec in todo])
    out = []
    for a, rec in todo:
        try:
            a.path.unlink()
            fsync_dir(a.path.parent)
            res = {**rec, "result": "ok"}
        except FileNotFoundError:
            res = {**rec, "result": "vanished"}
        except OSError as e:
            res = {**rec, "result": "failed", "error": f"{e.strerror or e}"}
            errors.append(f"cannot prune archive {a.path}: {e.strerror or e}")
        out.append(res)
    if audit:
        audit.append([{**r, "phase": "result"} for r in out])
    return out


def summary_lines(info: dict[str, Any] | None, dry_run: bool) -> list[str]:
    """Lines for the sweep/report summary about archive maintenance."""
    if not info:
        return []
    lines = []
    verb = "would prune" if dry_run else "pruned"
    pruned = [p for p in info["pruned"] if p["result"] in ("ok", "dry-run")]
    if pruned:
        lines.append(f"archives: {verb} {len(pruned)} past archive_retention "
                     f"({human_bytes(sum(p['bytes'] for p in pruned))}) in {info['dir']}")
        lines += [f"  {p['archive']} ({p['reason']})" for p in pruned[:20]]
        if len(pruned) > 20:
            lines.append(f"  … and {len(pruned) - 20} more (see --json)")
    partials = info["partials"]
    if partials:
        lines.append(f"archives: {'would remove' if dry_run else 'removed'} {len(partials)} leftover temp "
                     "file(s) of an interrupted run")
    lines += [f"archive error: {e}" for e in info["errors"]]
    return lines


# ---- finding and restoring ---------------------------------------------------------------------

def _project_matches(h: dict[str, Any], project: str) -> bool:
    cands = {h.get("project"), h.get("project_path")}
    if project in cands:
        return True
    expanded = os.path.abspath(os.path.expanduser(project))
    return expanded in cands or encode_project(expanded) == h.get("project")


def find_archive(archive_dir: Path, session_id: str, *, project: str | None = None) -> ArchiveInfo:
    """The newest archive of ``session_id`` (in ``project`` if given). JanitorError if none or ambiguous."""
    prefixes = tuple({f"{safe_name(x)}.".lower() for x in (session_id, canonical_id(session_id))})
    found = []
    for path in archive_files(archive_dir):
        if not path.name.lower().startswith(prefixes):  # ids compare case-blind (ids.canonical_id)
            continue
        try:
            a = read_header(path)
        except (ArchiveInvalid, OSError):
            continue
        if same_id(a.session_id, session_id) and (project is None or _project_matches(a.header, project)):
            found.append(a)
    if not found:
        where = f" of project {project}" if project else ""
        raise JanitorError(f"no archive of session {session_id}{where} in {archive_dir} "
                           "(see `janitor archive list`)", 1)
    places = {(a.header["root"], a.header["project"]) for a in found}
    if len(places) > 1:
        opts = ", ".join(sorted(a.header.get("project_path") or a.header["project"] for a in found))
        raise JanitorError(f"session {session_id} was archived from more than one place ({opts}); "
                           "choose one with --project or --archive", 2)
    return max(found, key=_age_key)


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
        m: dict[str, Any] = {"path": e.rel, "type": "dir" if e.is_dir else "file",
                             "mode": stat.S_IMODE(e.st.st_mode)}
        if not e.is_dir:
            fd = os.open(e.name, FILE_OPEN, dir_fd=e.dir_fd)
            try:
                r = _HashReader(fd, os.fstat(fd).st_size, e.rel)
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
        return sorted((m["path"], m["type"], *((m["mode"] & 0o777, m["size"], m["sha256"])
                                               if m["type"] == "file" else ())) for m in ms)
    return key(live) == key(archived)


class _Extractor:
    """Writes verified members into temp names beside each piece's final place."""

    def __init__(self, root: Root, pieces: dict[str, bool], skip: set[str], prefix: str,
                 manifest: dict[str, Any], stamp_ns: int) -> None:
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
        prel = _piece_of(rel, self.pieces)
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
            parts = rel[len(prel) + 1:].split("/")
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
    from claude_janitor.fs.safefs import rmtree_at

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
        by_piece[_piece_of(m["path"], pieces) or ""].append(m)
    base = {"action": "restore", "session_id": sid, "root": str(root_path), "project": h["project"],
            "archive": str(info.path), "paths": list(pieces), "bytes": manifest.get("bytes", 0)}
    with Root(root_path) as root:
        _clean_restore_temps(root, pieces, prefix)
        for rel in pieces:
            try:
                root.lstat(rel)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if _same_as_archived(_live_members(root, rel), by_piece[rel]):
                res.already.append(rel)
                continue
            raise JanitorError(f"{root_path}/{rel} already exists and differs from the archive: refusing to "
                               "overwrite a live file (move it away first if you want the archived one)", 1)
        if len(res.already) == len(pieces):
            _put_history_back(res, hist)
            return res
        if audit:
            audit.append([{**base, "phase": "intent", "result": "pending"}])
        ex = _Extractor(root, pieces, set(res.already), prefix, manifest, time.time_ns())
        published: list[tuple[int, str]] = []
        try:
            again = _wrap(lambda: verify(info.path, sink=ex))
            if again.manifest != manifest or again.header != h:
                raise ArchiveInvalid("the archive changed while being restored")
            ex.finish_dirs()
            testhooks.point("restore-extracted")
            order = sorted((p for p in pieces if p not in res.already), key=lambda p: p.endswith(".jsonl"))
            for rel in order:
                pfd, name = ex.parents[rel]
                tmp = ex.temps[rel]
                if pieces[rel]:
                    if _exists(pfd, name):
                        raise FileExistsError(errno.EEXIST, "appeared during the restore", f"{root_path}/{rel}")
                    os.rename(tmp, name, src_dir_fd=pfd, dst_dir_fd=pfd)
                    fd = os.open(name, DIR_FLAGS, dir_fd=pfd)
                    try:
                        os.utime(fd, ns=(ex.stamp_ns, ex.stamp_ns))
                    finally:
                        os.close(fd)
                else:
                    _publish_file(pfd, tmp, name, f"{root_path}/{rel}")
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
                audit.append([{**base, "phase": "result", "result": "failed", "error": _err(e)}])
            if isinstance(e, FileExistsError):
                raise JanitorError(f"{e.filename} {e.strerror}: refusing to overwrite a live file; "
                                   "nothing was restored", 1) from None
            raise
        finally:
            ex.close()
    _put_history_back(res, hist)
    if audit:
        extra = {"history_lines": res.history.added} if res.history is not None else {}
        audit.append([{**base, "phase": "result", "result": "ok", "restored": res.restored,
                       "already_present": res.already, **extra}])
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


# ---- rendering (plain text; the CLI prints it) -----------------------------------------------------

def render_list(archives: list[ArchiveInfo], archive_dir: Path, *, verified: bool) -> str:
    if not archives:
        return f"no archives in {archive_dir}"
    rows = [["ARCHIVED", "SESSION", "SIZE", "STORED"] + (["CHECK"] if verified else []) + ["PROJECT"]]
    for a in archives:
        h = a.header
        check = ["ok" if a.error is None else "INVALID"] if verified else []
        if not h:
            rows.append(["-", "-", "-", human_bytes(a.size)] + check + [f"{a.path}: {a.error}"])
            continue
        rows.append([iso(a.archived_at) or "-", a.session_id, human_bytes(int(h.get("bytes") or 0)),
                     human_bytes(a.size)] + check + [str(h.get("project_path") or h.get("project") or "-")])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=False)) + "  " + r[-1] for r in rows]
    bad = sum(1 for a in archives if a.error)
    lines.append("")
    lines.append(f"{len(archives)} archives in {archive_dir}, {human_bytes(sum(a.size for a in archives))}"
                 + (f"; {bad} unreadable or not matching their manifest" if bad else ""))
    for a in archives:
        if a.error and a.header:
            lines.append(f"  {a.path}: {a.error}")
    return "\n".join(lines)
