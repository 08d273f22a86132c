"""Helpers for the archive tests: what a session looks like on disk, and what an archive holds."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path

import zstandard

from claude_janitor.archive.format import DATA, FORMAT, HEADER_NAME, MANIFEST_NAME, PARTIAL, RESTORE_TMP, VERSION


def entries(root: Path, sid: str) -> dict[str, tuple]:
    """Every dir and file under ``root`` whose path names the session: kind, mode, mtime_ns (+ size, sha)."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            rel = str(p.relative_to(root))
            if sid not in rel or RESTORE_TMP in rel:
                continue
            st = p.lstat()
            if stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns)
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            else:
                out[rel] = (
                    "file",
                    stat.S_IMODE(st.st_mode),
                    st.st_mtime_ns,
                    st.st_size,
                    hashlib.sha256(p.read_bytes()).hexdigest(),
                )
    return out


def timeless(e: dict[str, tuple]) -> dict[str, tuple]:
    """``entries`` without the times: what a restore brings back (it gives everything the restore time)."""
    return {k: (v[0], v[1], *v[3:]) if v[0] in ("dir", "file") else v for k, v in e.items()}


def manifest_entries(manifest: dict) -> dict[str, tuple]:
    """The same shape as ``entries`` from an archive's manifest."""
    out: dict[str, tuple] = {}
    for m in manifest["members"]:
        if m["type"] == "dir":
            out[m["path"]] = ("dir", m["mode"], m["mtime_ns"])
        else:
            out[m["path"]] = ("file", m["mode"], m["mtime_ns"], m["size"], m["sha256"])
    return out


def files_only(e: dict[str, tuple]) -> dict[str, tuple]:
    """Files (content, size, mode, mtime) and dir names: what must survive any crash."""
    return {k: v if v[0] == "file" else ("dir",) for k, v in e.items()}


def archive_files(adir: Path) -> list[Path]:
    return sorted(p for p in adir.rglob("*") if p.is_file() and not p.name.startswith("."))


def leftovers(*dirs: Path) -> list[Path]:
    return sorted(p for d in dirs if d.exists() for p in d.rglob("*") if PARTIAL in p.name or RESTORE_TMP in p.name)


def craft(
    path: Path,
    header: dict,
    members: list[tuple[tarfile.TarInfo, bytes | None]],
    *,
    manifest_members: list[dict] | None = None,
) -> Path:
    """Write an archive by hand (for hostile-input tests): the manifest matches what is written unless
    ``manifest_members`` is given."""
    hb = json.dumps(header).encode()
    listed = []
    for ti, data in members:
        m = {
            "path": ti.name[len(DATA) :],
            "type": "dir" if ti.isdir() else "file",
            "mode": ti.mode,
            "mtime_ns": int(ti.mtime * 1e9),
        }
        if ti.isreg():
            m.update(size=len(data or b""), sha256=hashlib.sha256(data or b"").hexdigest())
        elif not ti.isdir():
            m["type"] = "link"
        listed.append(m)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "header_sha256": hashlib.sha256(hb).hexdigest(),
        "members": manifest_members if manifest_members is not None else listed,
    }
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in ((HEADER_NAME, hb),):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
        for ti, data in members:
            if ti.isreg():
                ti.size = len(data or b"")
                tf.addfile(ti, io.BytesIO(data or b""))
            else:
                tf.addfile(ti)
        mb = json.dumps(manifest).encode()
        ti = tarfile.TarInfo(MANIFEST_NAME)
        ti.size = len(mb)
        tf.addfile(ti, io.BytesIO(mb))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(zstandard.ZstdCompressor().compress(raw.getvalue()))
    return path


def tar_member(
    name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o600, mtime: float = 1_700_000_000, linkname: str = ""
) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(DATA + name)
    ti.type, ti.mode, ti.mtime, ti.linkname = kind, mode, mtime, linkname
    return ti
