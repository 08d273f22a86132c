"""Archive → restore → resume with the real Claude Code: the resumed turn carries the earlier conversation,
and the restored session keeps every piece through Claude Code's own cleanup (which ages by mtime)."""

from __future__ import annotations

import json
import time

from tests.helpers import run_cli, run_json, wait_for
from tests.helpers.claude import age_tree

from .fakeapi import current_prompt, scripted, text, tool
from .test_live import DAY, session_paths


def test_archive_restore_resume_and_claude_codes_own_cleanup(claude, jenv):
    cfg, w = claude.config, claude.project("restored")
    (w / "notes.txt").write_text("hello\n")
    claude.api.reply = scripted(
        {
            "ORIGINAL": [
                tool("Edit", {"file_path": str(w / "notes.txt"), "old_string": "hello", "new_string": "bye"}),
                tool("Task", {"description": "look", "prompt": "say hi", "subagent_type": "general-purpose"}),
                tool("Bash", {"command": "true", "description": "nothing"}),
                text("ORIGINAL-REPLY"),
            ],
            "RESUMED": [text("resumed reply")],
        }
    )
    sid = claude.run("ORIGINAL prompt, with a Read first", "--debug", cwd=w)["session_id"]
    control = claude.run("control", cwd=w)["session_id"]
    pdir = next((cfg / "projects").glob("*restored"))
    (pdir / f"{sid}.precompact.json").write_text("{}")  # what compaction leaves beside a transcript
    (pdir / sid / "custom-title.json").write_text('{"title": "mine"}')
    before = {str(p.relative_to(cfg)) for p in session_paths(cfg, sid)}
    assert {
        f"file-history/{sid}",
        f"session-env/{sid}",
        f"debug/{sid}.txt",
        f"projects/{pdir.name}/{sid}",
        f"projects/{pdir.name}/{sid}.jsonl",
        f"projects/{pdir.name}/{sid}.precompact.json",
    } <= before
    assert (pdir / sid / "subagents").is_dir()
    old = time.time() - 60 * DAY
    for s in (sid, control):
        for p in session_paths(cfg, s):
            age_tree(p, old)

    # Archived by the janitor (two months later as far as the janitor is told), restored now.
    later = time.time() + 60 * DAY
    p, doc = run_json(["sweep", "--json", "--action", "archive", "--claude-dir", str(cfg), "--now", str(later)], jenv)
    assert p.returncode == 0, p.stderr
    assert {s["session_id"]: s["result"] for s in doc["sessions"]}.get(sid) == "ok", doc
    assert session_paths(cfg, sid) == []
    t0 = time.time()
    r = run_cli(["restore", "--claude-dir", str(cfg), sid], jenv)
    assert r.returncode == 0, r.stderr
    back = {str(p.relative_to(cfg)) for p in session_paths(cfg, sid)}
    assert back == before
    assert all(p.stat().st_mtime >= t0 - 1 for p in session_paths(cfg, sid))
    # the control session is archived too: put it back as it was, old, for Claude Code's cleanup below
    assert run_cli(["restore", "--claude-dir", str(cfg), control], jenv).returncode == 0
    for p in session_paths(cfg, control):
        age_tree(p, old)

    # Resumed, in a turn long enough for Claude Code's own cleanup to run (5 s after start, once no
    # .last-cleanup from the last 24 h holds it back): the turn is held until the cleanup has written it.
    (cfg / ".last-cleanup").unlink()
    h = claude.api.hold(lambda b: "RESUMED" in current_prompt(b)[0])
    proc = claude.start("RESUMED prompt", "--resume", sid, cwd=w)
    try:
        assert h.arrived.wait(60)
        assert wait_for(lambda: (cfg / ".last-cleanup").exists(), timeout=60), "Claude Code's cleanup never ran"
    finally:
        h.release.set()
    out = claude.finish(proc)
    assert out["session_id"] == sid
    sent = json.dumps(h.body)
    assert "ORIGINAL prompt" in sent and "ORIGINAL-REPLY" in sent and "tool_result" in sent  # earlier turns
    assert session_paths(cfg, control) == []  # the cleanup ran, with its 30-day window
    assert {str(p.relative_to(cfg)) for p in session_paths(cfg, sid)} >= before  # every piece survived
    assert (pdir / sid / "subagents").is_dir() and any((cfg / "file-history" / sid).iterdir())
