"""Fleet roll-out: a managed janitor policy that wins key by key, and audit records into journald/syslog.

The sinks are tested on the wire: the test binds its own AF_UNIX datagram socket and points the sink at it."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest

from claude_janitor.audit.sinks import encode_journal
from tests.helpers import run_cli, run_json, write_config
from tests.helpers.cachegen import DAY, make_session


@pytest.fixture
def policy_file(tmp_path: Path, jenv: dict[str, str]) -> Path:
    p = tmp_path / "etc" / "claude-janitor" / "policy.toml"
    p.parent.mkdir(parents=True)
    jenv["CLAUDE_JANITOR_POLICY"] = str(p)
    return p


def sessions(root: Path, now: float) -> dict[str, object]:
    return {
        "d10": make_session(root, "/home/dev/app", now - 10 * DAY),
        "d40": make_session(root, "/home/dev/app", now - 40 * DAY),
        "w40": make_session(root, "/home/dev/work/x", now - 40 * DAY),
        "d100": make_session(root, "/home/dev/app", now - 100 * DAY),
    }


def decisions(root: Path, now: float, env: dict[str, str]) -> dict[str, dict]:
    p, doc = run_json(["report", "--format", "json", "--claude-dir", str(root), "--now", str(now)], env)
    assert p.returncode == 0, p.stderr
    return {s["session_id"]: s for s in doc["sessions"]}


def test_managed_policy_wins_key_by_key(root, jenv, now, policy_file):
    ss = sessions(root, now)
    write_config(jenv, 'retention = "7d"\naction = "delete"\n')
    d = decisions(root, now, jenv)
    assert d[ss["d10"].session_id]["decision"] == "delete"  # the user's 7d
    policy_file.write_text('retention = "60d"\n')
    d = decisions(root, now, jenv)
    assert {k: d[g.session_id]["decision"] for k, g in ss.items()} == {
        "d10": "keep",
        "d40": "keep",
        "w40": "keep",
        "d100": "delete",
    }
    assert f"managed policy {policy_file}" in d[ss["d100"].session_id]["reason"]
    # The user's other keys still apply: their action, and their rules for projects the policy is silent on.
    write_config(jenv, 'retention = "7d"\n[[rule]]\nproject = "/home/dev/work/*"\nretention = "30d"\n')
    d = decisions(root, now, jenv)
    assert d[ss["w40"].session_id]["decision"] == "delete" and d[ss["d40"].session_id]["decision"] == "keep"
    # A managed rule list replaces the user's (rule is one key); `rule = []` removes them.
    policy_file.write_text('retention = "60d"\nrule = []\n')
    d = decisions(root, now, jenv)
    assert d[ss["w40"].session_id]["decision"] == "keep"


def test_one_run_overrides_cannot_beat_the_managed_policy(root, jenv, now, policy_file):
    ss = sessions(root, now)
    policy_file.write_text('retention = "60d"\n')
    p = run_cli(["sweep", "--older-than", "1d", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert p.returncode == 2
    assert f"retention is set by the managed policy {policy_file}" in p.stderr
    assert all(g.paths[0].exists() for g in ss.values())
    # --action is still the user's to choose while the policy does not set it.
    p = run_cli(["sweep", "--action", "delete", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert p.returncode == 0, p.stderr
    assert not ss["d100"].paths[0].exists() and ss["d40"].paths[0].exists()


def test_broken_policy_and_config_are_reported_together(root, jenv, now, policy_file):
    make_session(root, "/home/dev/app", now - 100 * DAY)
    policy_file.write_text('retention = "sixty days"\ngrase = "1h"\n')
    write_config(jenv, "keep_last = -1\n")
    p = run_cli(["sweep", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert p.returncode == 2
    assert str(policy_file) in p.stderr and "did you mean 'grace'" in p.stderr
    assert "keep_last" in p.stderr
    policy_file.write_text("retention = [")
    p = run_cli(["sweep", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert p.returncode == 2 and "invalid TOML" in p.stderr and str(policy_file) in p.stderr


def receiver(tmp_path: Path, name: str) -> tuple[socket.socket, str]:
    path = str(tmp_path / name)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.setblocking(False)
    return s, path


def drain(s: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(s.recv(1 << 20))
        except BlockingIOError:
            return out


def parse_journal(data: bytes) -> dict[str, str]:
    fields = {}
    i = 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            fields[k.decode()] = v.decode()
            i = nl + 1
        else:
            n = int.from_bytes(data[nl + 1 : nl + 9], "little")
            fields[line.decode()] = data[nl + 9 : nl + 9 + n].decode()
            assert data[nl + 9 + n : nl + 10 + n] == b"\n"
            i = nl + 10 + n
    return fields


def audit_lines(jenv: dict[str, str]) -> list[dict]:
    log = Path(run_cli(["audit", "path"], jenv).stdout.strip())
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_journald_sink_sends_each_audit_record_as_journal_fields(root, jenv, now, tmp_path, policy_file):
    old = make_session(root, "/home/dev/app", now - 100 * DAY)
    keep = make_session(root, "/home/dev/app", now - DAY)
    sock, path = receiver(tmp_path, "journal.sock")
    policy_file.write_text('audit_sink = "journald"\n')  # rolled out by the fleet, not set by the user
    env = {**jenv, "CLAUDE_JANITOR_JOURNAL_SOCKET": path}
    p = run_cli(["sweep", "--claude-dir", str(root), "--now", str(now)], env)
    assert p.returncode == 0, p.stderr
    got = [parse_journal(d) for d in drain(sock)]
    records = audit_lines(jenv)
    assert [g["JANITOR_PHASE"] for g in got] == ["intent", "result"]
    for g, rec in zip(got, records, strict=True):
        assert g["SYSLOG_IDENTIFIER"] == "claude-janitor" and g["PRIORITY"] == "6"
        assert g["JANITOR_SESSION_ID"] == old.session_id != keep.session_id
        assert json.loads(g["JANITOR_AUDIT"]) == rec  # the very record, hash chain included
        assert g["JANITOR_HASH"] == rec["hash"] and g["JANITOR_SEQ"] == str(rec["seq"])
        assert g["MESSAGE"].startswith(f"delete {rec['phase']} {old.session_id}")
    assert run_cli(["audit", "verify"], jenv).returncode == 0


def test_journal_binary_form_for_values_with_newlines():
    data = encode_journal({"MESSAGE": "two\nlines", "X": "plain"})
    assert data == b"MESSAGE\n" + (9).to_bytes(8, "little") + b"two\nlines\nX=plain\n"
    assert parse_journal(data) == {"MESSAGE": "two\nlines", "X": "plain"}


def test_syslog_sink_sends_rfc3164_lines(root, jenv, now, tmp_path):
    old = make_session(root, "/home/dev/app", now - 100 * DAY)
    sock, path = receiver(tmp_path, "log.sock")
    write_config(jenv, 'audit_sink = "syslog"\n')
    env = {**jenv, "CLAUDE_JANITOR_SYSLOG_SOCKET": path}
    p = run_cli(["sweep", "--claude-dir", str(root), "--now", str(now)], env)
    assert p.returncode == 0, p.stderr
    got = [d.decode() for d in drain(sock)]
    assert len(got) == 2
    records = audit_lines(jenv)
    for line, rec in zip(got, records, strict=True):
        m = re.match(r"^<14>[A-Z][a-z]{2} [ 123]\d \d\d:\d\d:\d\d claude-janitor\[\d+\]: (\{.*\})$", line)
        assert m, line
        assert json.loads(m.group(1)) == rec and rec["session_id"] == old.session_id


def test_a_sink_that_is_down_never_fails_a_sweep(root, jenv, now, tmp_path):
    old = make_session(root, "/home/dev/app", now - 100 * DAY)
    write_config(jenv, 'audit_sink = "journald"\n')
    env = {**jenv, "CLAUDE_JANITOR_JOURNAL_SOCKET": str(tmp_path / "nobody-listens.sock")}
    p = run_cli(["sweep", "--claude-dir", str(root), "--now", str(now)], env)
    assert p.returncode == 0, p.stderr
    assert not old.paths[0].exists()
    assert [r["phase"] for r in audit_lines(jenv)] == ["intent", "result"]
