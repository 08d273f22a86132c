"""Forward audit records to existing log pipelines: journald or syslog.

journald: the native protocol (one datagram per record on /run/systemd/journal/socket) with the record's
fields as journal fields, so `journalctl SYSLOG_IDENTIFIER=claude-janitor JANITOR_SESSION_ID=…` finds them.
syslog: an RFC 3164 line (what rsyslog, syslog-ng and journald all read on /dev/log, /var/run/syslog on
macOS) whose message is the record's JSON, at facility user.

Both are best effort: the JSONL audit log is the record of truth, and a sink that is down never fails a
sweep. The socket paths can be moved with CLAUDE_JANITOR_JOURNAL_SOCKET / CLAUDE_JANITOR_SYSLOG_SOCKET.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
import time
from typing import Any

JOURNAL_SOCKET = "/run/systemd/journal/socket"
IDENT = "claude-janitor"
FACILITY_USER = 1
SEV_ERR, SEV_INFO = 3, 6


def journal_socket() -> str:
    return os.environ.get("CLAUDE_JANITOR_JOURNAL_SOCKET") or JOURNAL_SOCKET


def syslog_socket() -> str:
    if os.environ.get("CLAUDE_JANITOR_SYSLOG_SOCKET"):
        return os.environ["CLAUDE_JANITOR_SYSLOG_SOCKET"]
    return "/var/run/syslog" if sys.platform == "darwin" else "/dev/log"


def _severity(rec: dict[str, Any]) -> int:
    return SEV_ERR if rec.get("result") == "failed" else SEV_INFO


def _message(rec: dict[str, Any]) -> str:
    parts = [str(rec.get(k)) for k in ("action", "phase", "session_id", "result") if rec.get(k) is not None]
    if rec.get("error"):
        parts.append(f"({rec['error']})")
    return " ".join(parts)


def journal_fields(rec: dict[str, Any]) -> dict[str, str]:
    """The journal fields for one audit record (field names: uppercase letters, digits, underscores)."""
    fields = {
        "MESSAGE": _message(rec),
        "PRIORITY": str(_severity(rec)),
        "SYSLOG_IDENTIFIER": IDENT,
        "SYSLOG_PID": str(os.getpid()),
        "JANITOR_AUDIT": json.dumps(rec, sort_keys=True, ensure_ascii=True),
    }
    for key in ("seq", "action", "phase", "session_id", "result", "project", "root", "bytes", "hash"):
        if rec.get(key) is not None:
            fields[f"JANITOR_{key.upper()}"] = str(rec[key])
    return fields


def encode_journal(fields: dict[str, str]) -> bytes:
    """systemd's native journal protocol: KEY=value lines; values with a newline use the binary form."""
    out = bytearray()
    for k, v in fields.items():
        data = v.encode("utf-8", "backslashreplace")
        if b"\n" in data:
            out += k.encode() + b"\n" + len(data).to_bytes(8, "little") + data + b"\n"
        else:
            out += k.encode() + b"=" + data + b"\n"
    return bytes(out)


def encode_syslog(rec: dict[str, Any], now: float | None = None) -> bytes:
    """One RFC 3164 datagram as the local syslog daemon expects it: <PRI>Mmm dd hh:mm:ss ident[pid]: msg."""
    pri = FACILITY_USER * 8 + _severity(rec)
    # Not timefmt's: RFC 3164 fixes this stamp (local time, English month, day padded with a space).
    t = time.localtime(now)
    stamp = f"{time.strftime('%b', t)} {t.tm_mday:2d} {time.strftime('%H:%M:%S', t)}"
    body = json.dumps(rec, sort_keys=True, ensure_ascii=True)
    return f"<{pri}>{stamp} {IDENT}[{os.getpid()}]: {body}".encode()


def forward(sinks: tuple[str, ...], records: list[dict[str, Any]]) -> None:
    """Send each record to each sink; best effort (a missing or full socket is skipped silently)."""
    for sink in sinks:
        if sink == "journald":
            target, payloads = journal_socket(), [encode_journal(journal_fields(r)) for r in records]
        elif sink == "syslog":
            target, payloads = syslog_socket(), [encode_syslog(r) for r in records]
        else:
            continue
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.settimeout(1.0)
                for p in payloads:
                    try:
                        s.sendto(p, target)
                    except OSError as e:
                        if e.errno in (errno.ENOENT, errno.ECONNREFUSED, errno.EACCES):  # nobody there
                            raise
                        continue  # e.g. EMSGSIZE for one huge record: skip that one
        except OSError:
            continue
