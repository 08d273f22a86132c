"""The hash-chained audit log detects edits, reordering, removal and truncation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from claude_janitor.audit.log import AuditLog
from claude_janitor.audit.verify import verify
from tests.helpers import PKG, package_sources


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    a = AuditLog(tmp_path / "log" / "audit.jsonl")
    a.append([{"action": "delete", "phase": "intent", "session_id": f"s{i}", "result": "pending"} for i in range(3)])
    a.append([{"action": "delete", "phase": "result", "session_id": f"s{i}", "result": "ok"} for i in range(3)])
    return a


def lines(a: AuditLog) -> list[str]:
    return a.path.read_text().splitlines(keepends=True)


def test_intact_log_verifies_and_is_private(log: AuditLog):
    ok, msg, n = verify(log.path)
    assert ok and n == 6, msg
    assert (log.path.stat().st_mode & 0o777) == 0o600
    assert [json.loads(x)["seq"] for x in lines(log)] == [1, 2, 3, 4, 5, 6]


def test_edited_record_detected(log: AuditLog):
    ls = lines(log)
    ls[2] = ls[2].replace('"s2"', '"s9"')
    log.path.write_text("".join(ls))
    ok, msg, _ = verify(log.path)
    assert not ok and "edited" in msg


def test_reordered_records_detected(log: AuditLog):
    ls = lines(log)
    ls[1], ls[2] = ls[2], ls[1]
    log.path.write_text("".join(ls))
    ok, msg, _ = verify(log.path)
    assert not ok and ("reordered" in msg)


def test_removed_middle_record_detected(log: AuditLog):
    ls = lines(log)
    del ls[3]
    log.path.write_text("".join(ls))
    assert not verify(log.path)[0]


@pytest.mark.parametrize("cut", ["whole-records", "mid-line", "everything"])
def test_truncation_detected(log: AuditLog, cut: str):
    data = log.path.read_text()
    if cut == "whole-records":
        log.path.write_text("".join(lines(log)[:4]))
    elif cut == "mid-line":
        log.path.write_text(data[:-20])
    else:
        log.path.unlink()
    ok, msg, _ = verify(log.path)
    assert not ok, msg


def test_chain_continues_across_appends_and_a_deleted_head_is_recorded(log: AuditLog):
    log.head_path.unlink()
    assert not verify(log.path)[0]
    log.append([{"action": "delete", "phase": "intent", "session_id": "x", "result": "pending"}])
    recs = [json.loads(x) for x in lines(log)]
    assert recs[-1]["seq"] == 8 and recs[-1]["prev"] == recs[-2]["hash"]
    assert recs[-2]["action"] == "audit-recovery" and recs[-2]["problem"] == "tampered"
    ok, msg, _ = verify(log.path)
    assert not ok and "head file was missing" in msg, msg


def test_every_whole_file_replace_goes_through_atomicfile():
    """One helper (temp file, fsync, rename, dir fsync) for every file the janitor writes whole and renames
    into place. Archive and restore publish differently: never over an existing name (archive/store.py,
    archive/restore.py). Renames that move things (staging, rotation, a corrupt index set aside) write
    nothing and are not looked at."""
    import re

    found = []
    for f in package_sources():
        rel = f.relative_to(PKG).as_posix()
        if rel == "fs/atomicfile.py" or rel.startswith("archive/"):
            continue
        for n, line in enumerate(f.read_text().splitlines(), 1):
            if re.search(r"\bos\.(replace|rename)\([^,]*(tmp|TMP)|\.(replace|rename)\(\s*tmp\b", line):
                found.append(f"{rel}:{n}: {line.strip()}")
    assert not found, "\n".join(found)


def test_rotation_keys_are_validated_and_shown(tmp_path, jenv):
    from tests.helpers import run_cli, write_config

    root = tmp_path / "claude"
    (root / "projects").mkdir(parents=True)
    write_config(jenv, 'audit_rotate_size = "lots"\naudit_keep_files = -1\naudit_compress = "yes"\n')
    p = run_cli(["sweep", "--claude-dir", str(root)], jenv)
    assert p.returncode == 2
    assert "audit_rotate_size: must be a size" in p.stderr and "audit_keep_files: must be a whole number" in p.stderr
    assert "audit_compress: must be true or false" in p.stderr
    write_config(jenv, 'audit_rotate_size = "2MiB"\naudit_keep_files = 0\n')
    p = run_cli(["doctor", "--claude-dir", str(root)], jenv)
    assert "audit_rotate_size" in p.stdout and "2.0 MiB" in p.stdout and "all" in p.stdout, p.stdout


def test_the_audit_log_is_opened_in_one_place():
    """sweep.audit_log gives every writer the anchor and the rotation settings; an AuditLog made elsewhere
    would leave the anchor behind (a false 'interrupted' note at the next append) and rotate by defaults."""
    found = [
        f"{f.relative_to(PKG).as_posix()}:{n}"
        for f in package_sources()
        for n, line in enumerate(f.read_text().splitlines(), 1)
        if "AuditLog(" in line and not line.lstrip().startswith(("class ", "#"))
    ]
    assert len(found) == 1 and found[0].startswith("sweep/"), found


def test_reconcile_gives_each_open_intent_what_is_on_disk(tmp_path):
    import os

    root = tmp_path / "claude"
    a = AuditLog(tmp_path / "log" / "audit.jsonl", anchor=tmp_path / "data" / "audit.anchor")
    paths = {"present": ["p/a.jsonl", "p/a"], "partly": ["p/b.jsonl", "p/b"], "gone": ["p/c.jsonl", "p/c"]}
    for rel in paths["present"] + paths["partly"][:1]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x")
    a.append(
        [
            {"action": "delete", "phase": "intent", "session_id": k, "root": str(root), "paths": v, "result": "pending"}
            for k, v in paths.items()
        ]
    )
    a.append(
        [
            {
                "action": "delete",
                "phase": "intent",
                "session_id": "other",
                "root": "/elsewhere",
                "paths": ["x"],
                "result": "pending",
            }
        ]
    )
    got = a.reconcile(os.path.lexists, [str(root)])
    assert {r["session_id"]: r["found"] for r in got} == {"present": "present", "partly": "partly", "gone": "gone"}
    assert next(r for r in got if r["found"] == "partly")["left"] == [str(root / "p/b.jsonl")]
    assert a.reconcile(os.path.lexists, [str(root)]) == []  # settled; the other root's intent waits for its sweep
    assert [r["session_id"] for r in a.reconcile(os.path.lexists, None)] == ["other"]
    assert verify(a.path, anchor=a.anchor)[0]
