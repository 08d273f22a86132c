"""Writing one session into an archive stream (tar + zstd, with its header and manifest)."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from typing import IO, Any

import zstandard

from claude_janitor import testhooks
from claude_janitor.archive.format import (
    CHUNK,
    DATA,
    FILE_OPEN,
    FORMAT,
    HEADER_NAME,
    HISTORY_NAME,
    LEVEL,
    MANIFEST_NAME,
    VERSION,
    history_entry,
    json_bytes,
)
from claude_janitor.archive.walk import Entry, Identity, ident, walk
from claude_janitor.fs.safefs import Root
from claude_janitor.fs.tree import Changed
from claude_janitor.model import Decision


class HashReader:
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


def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mtime, ti.mode = len(data), int(mtime), 0o600
    tf.addfile(ti, io.BytesIO(data))


def write_archive(
    out: IO[bytes], root: Root, d: Decision, header: dict[str, Any], *, level: int = LEVEL, history: bytes | None = None
) -> tuple[dict[str, Any], dict[str, Identity]]:
    """Stream the session into ``out``: returns the manifest and the identity of every entry read.
    ``history``: the session's lines of history.jsonl, stored as a member of their own after the header."""
    idents: dict[str, Identity] = {}
    members: list[dict[str, Any]] = []
    zw = zstandard.ZstdCompressor(level=level, write_checksum=True).stream_writer(out, closefd=False)
    hb = json_bytes(header)
    # copybufsize is a real TarFile argument that typeshed does not list for open()
    with tarfile.open(fileobj=zw, mode="w|", format=tarfile.PAX_FORMAT, copybufsize=CHUNK) as tf:  # type: ignore[call-overload]
        _add_bytes(tf, HEADER_NAME, hb, header["archived_at"])
        if history is not None:
            _add_bytes(tf, HISTORY_NAME, history, header["archived_at"])
        for p in d.session.pieces:
            for e in walk(root, p.rel, ino=p.ino):
                member, idents[e.rel] = _add_entry(tf, e)
                members.append(member)
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "header_sha256": hashlib.sha256(hb).hexdigest(),
            "members": members,
            "files": sum(1 for m in members if m["type"] == "file"),
            "bytes": sum(m.get("size", 0) for m in members),
        }
        if history is not None:
            manifest["history"] = history_entry(history)
        _add_bytes(tf, MANIFEST_NAME, json_bytes(manifest), header["archived_at"])
    zw.close()  # type: ignore[no-untyped-call]  # (zstandard's stubs leave it unannotated)
    out.flush()
    return manifest, idents


def _add_entry(tf: tarfile.TarFile, e: Entry) -> tuple[dict[str, Any], Identity]:
    """One walked dir or file into the tar stream: its manifest member and the identity it was read with."""
    ti = tarfile.TarInfo(DATA + e.rel)
    ti.mode = stat.S_IMODE(e.st.st_mode)
    if e.is_dir:
        ti.type = tarfile.DIRTYPE
        ti.mtime = e.st.st_mtime_ns / 1e9
        tf.addfile(ti)
        return {"path": e.rel, "type": "dir", "mode": ti.mode, "mtime_ns": e.st.st_mtime_ns}, ident(e.st)
    fd = os.open(e.name, FILE_OPEN, dir_fd=e.dir_fd)
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode) or before.st_ino != e.st.st_ino:
            raise Changed(f"{e.rel} changed while being archived")
        ti.size, ti.mtime = before.st_size, before.st_mtime_ns / 1e9
        reader = HashReader(fd, before.st_size, e.rel)
        tf.addfile(ti, reader)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if ident(after) != ident(before):
        raise Changed(f"{e.rel} was written to while being archived")
    testhooks.point("archive-member")
    member = {
        "path": e.rel,
        "type": "file",
        "mode": ti.mode,
        "mtime_ns": before.st_mtime_ns,
        "size": before.st_size,
        "sha256": reader.sha.hexdigest(),
    }
    return member, ident(before)
