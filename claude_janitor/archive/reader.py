"""Reading an archive: the header alone, or the whole stream verified against its manifest."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar

import zstandard

from claude_janitor.archive.format import (
    CHUNK,
    DATA,
    FORMAT,
    HEADER_NAME,
    HISTORY_NAME,
    MANIFEST_NAME,
    MAX_META,
    ArchiveInvalid,
    check_header,
    history_entry,
    need,
    piece_of,
    plain_rel,
)
from claude_janitor.timefmt import iso

T = TypeVar("T")


class MemberVisitor(Protocol):
    """Told each data member as verify() reads it: begin, its verified-as-read bytes, end (restore writes them)."""

    def begin(self, member: dict[str, Any]) -> None: ...
    def data(self, chunk: bytes) -> None: ...
    def end(self) -> None: ...


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
            out.update(
                {
                    "session_id": h.get("session_id"),
                    "root": h.get("root"),
                    "project": h.get("project"),
                    "project_path": h.get("project_path"),
                    "archived_at": iso(h.get("archived_at")),
                    "last_activity": iso(h.get("last_activity")),
                    "bytes": h.get("bytes"),
                    "reason": h.get("reason"),
                    "paths": [p.get("rel") for p in h.get("pieces", [])],
                }
            )
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
    need(m is not None, f"{name} is missing (truncated archive?)")
    assert m is not None
    need(m.name == name and m.isreg(), f"expected {name}, found {m.name!r}")
    need(m.size <= MAX_META, f"{name} is too large")
    ef = tf.extractfile(m)
    assert ef is not None
    raw = ef.read()
    try:
        return raw, json.loads(raw)
    except ValueError as e:
        raise ArchiveInvalid(f"{name} is not valid JSON: {e}") from None


def _read_history(tf: tarfile.TarFile, m: tarfile.TarInfo) -> bytes:
    need(m.isreg() and m.size <= MAX_META, f"{HISTORY_NAME} is not a plain file of a sane size")
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

        return as_invalid(go)


def _read(
    f: IO[bytes],
    *,
    header_only: bool = False,
    visitor: MemberVisitor | None = None,
    history_out: list[bytes] | None = None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
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
        need(m is not None, f"{MANIFEST_NAME} is missing (truncated archive?)")
        assert m is not None
        if m.name == MANIFEST_NAME:
            break
        need(m.name.startswith(DATA), f"unexpected member {m.name!r}")
        rel = plain_rel(m.name[len(DATA) :])
        need(rel not in names, f"member {rel!r} appears twice")
        names.add(rel)
        need(m.isreg() or m.isdir(), f"member {rel!r} is a link or special file; refusing it")
        prel = piece_of(rel, pieces)
        need(prel is not None, f"member {rel!r} is outside the session's pieces")
        assert prel is not None
        if rel == prel:
            need(m.isdir() == pieces[prel], f"member {rel!r} is not the kind of piece the header says")
        else:
            need(rel.rsplit("/", 1)[0] in dirs, f"member {rel!r} comes before its directory")
        need(0 <= m.mode <= 0o7777, f"member {rel!r} has a bad mode")
        entry: dict[str, Any] = {"path": rel, "type": "dir" if m.isdir() else "file", "mode": m.mode}
        if visitor:
            visitor.begin(entry)
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
                if visitor:
                    visitor.data(chunk)
            need(n == m.size, f"member {rel!r} is cut short")
            entry.update(size=n, sha256=sha.hexdigest())
        if visitor:
            visitor.end()
        seen.append(entry)
        m = tf.next()
    missing = sorted(set(pieces) - names)
    need(not missing, f"piece {missing[0]!r} is in the header but not in the archive" if missing else "")
    mb, manifest = _read_meta(tf, m, MANIFEST_NAME)
    need(isinstance(manifest, dict) and manifest.get("format") == FORMAT, "manifest is not a janitor manifest")
    need(manifest.get("header_sha256") == hashlib.sha256(hb).hexdigest(), "header does not match the manifest")
    listed = manifest.get("members")
    need(
        isinstance(listed, list) and len(listed) == len(seen),
        f"manifest lists {len(listed) if isinstance(listed, list) else '?'} members, archive holds {len(seen)}",
    )
    for want, got in zip(listed, seen, strict=True):
        need(
            isinstance(want, dict) and type(want.get("mtime_ns")) is int and 0 <= want["mtime_ns"] < 1 << 62,
            f"bad manifest entry {want!r}",
        )
        exp = {k: v for k, v in want.items() if k != "mtime_ns"}
        need(
            exp == got,
            f"{got['path']}: does not match the manifest (expected "
            f"{exp.get('sha256', exp.get('type'))}, found {got.get('sha256', got.get('type'))})",
        )
    need(
        manifest.get("history") == (None if hist is None else history_entry(hist)),
        f"{HISTORY_NAME} does not match the manifest",
    )
    if hist is not None and history_out is not None:
        history_out.extend(hist.splitlines(keepends=True))
    need(tf.next() is None, "unexpected members after the manifest")
    while zr.read(CHUNK):  # to the end of the zstd frame, so its checksum is checked too
        pass
    return header, manifest


def as_invalid(fn: Callable[[], T]) -> T:
    """``fn()``, with what a malformed tar or zstd stream raises turned into ArchiveInvalid."""
    try:
        return fn()
    except ArchiveInvalid:
        raise
    except (tarfile.TarError, zstandard.ZstdError, EOFError, ValueError, KeyError, TypeError, AttributeError) as e:
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
        header, _ = as_invalid(lambda: _read(f, header_only=True))
    return ArchiveInfo(path, header, None, size)


def verify(
    path: Path,
    *,
    visitor: MemberVisitor | None = None,
    dir_fd: int | None = None,
    history_out: list[bytes] | None = None,
) -> ArchiveInfo:
    """Read the whole archive and check every member against the manifest. Raises ArchiveInvalid/OSError.
    ``history_out`` gets the prompt-history lines the archive holds, if any."""
    with _open_archive(path, dir_fd) as f:
        size = os.fstat(f.fileno()).st_size
        header, manifest = as_invalid(lambda: _read(f, visitor=visitor, history_out=history_out))
    return ArchiveInfo(path, header, manifest, size)
