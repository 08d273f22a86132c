"""Forward audit records to existing log pipelines: journald or syslog."""

from __future__ import annotations

import json
import socket
from typing import Any

JOURNAL_SOCKET = "/run/systemd/journal/socket"
IDENT = "claude-janitor"


def _journal_fields(rec: dict[str, Any]) -> bytes:
    fields = {
        "MESSAGE": f"{rec.get('action')} {rec.get('phase', '')} {rec.get('session_id', '')} "
                   f"{rec.get('result', '')}".strip(),
        "SYSLOG_IDENTIFIER": IDENT,
        "PRIORITY": "3" if rec.get("result") == "failed" else "6",
        "JANITOR_AUDIT": json.dumps(rec, sort_keys=True),
    }
    out = b""
    for k, v in fields.items():
        data = v.encode()
        if b"\n" in data:
            out += k.encode() + b"\n" + len(data).to_bytes(8, "little") + data + b"\n"
        else:
            out += k.encode() + b"=" + data + b"\n"
    return out


def forward(sinks: tuple[str, ...], records: list[dict[str, Any]]) -> None:
    """Best effort: the JSONL log is the record of truth; a sink that is down never fails a sweep."""
    for sink in sinks:
        try:
            if sink == "journald":
                with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                    for rec in records:
                        s.sendto(_journal_fields(rec), JOURNAL_SOCKET)
            elif sink == "syslog":
                import syslog

                syslog.openlog(IDENT, 0, syslog.LOG_USER)
                for rec in records:
                    syslog.syslog(syslog.LOG_INFO, json.dumps(rec, sort_keys=True))
        except OSError:
            continue
