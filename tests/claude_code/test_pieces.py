"""Every piece real Claude Code sessions leave is recognised as part of its session (nothing under
"unknown"), including the pieces Claude Code ties to a session that a short `-p` run does not write."""

from __future__ import annotations

import json

from tests.helpers import run_json

from .fakeapi import scripted, text, tool


def test_every_piece_of_real_sessions_is_recognised(claude, jenv):
    a, b = claude.project("alpha"), claude.project("beta dir")
    (a / "notes.txt").write_text("hello\n")
    claude.api.reply = scripted(
        {
            "EDITFILE": [
                tool("Read", {"file_path": str(a / "notes.txt")}),
                tool("Edit", {"file_path": str(a / "notes.txt"), "old_string": "hello", "new_string": "bye"}),
                tool("Bash", {"command": "echo hi > made.txt", "description": "make a file"}),
            ],
            "SUBAGENT": [
                tool("Task", {"description": "look around", "prompt": "say hi", "subagent_type": "general-purpose"})
            ],
            "AGAIN": [text("again")],
        }
    )
    s1 = claude.run("EDITFILE please", "--debug", cwd=a)["session_id"]
    s2 = claude.run("SUBAGENT please", cwd=b)["session_id"]
    s3 = claude.run("AGAIN, resumed", "--resume", s2, cwd=b)["session_id"]
    s4 = claude.run("plain", cwd=a)["session_id"]
    assert (a / "made.txt").exists() and (a / "notes.txt").read_text() == "bye\n"

    cfg = claude.config
    # What Claude Code writes beside a transcript in other situations (compaction, remote, desktop; see
    # CLAUDE-CODE-CLEANUP.md), written here under the names it uses, for a real session.
    pa = next((cfg / "projects").glob("*alpha"))
    extra = [
        pa / f"{s1}.precompact.json",
        pa / f"{s1}.ccr-tip.json",
        pa / f"{s1}.desktop-released.json",
        pa / f"{s1}.precompact.json.tmp.0badcafe",
    ]
    for p in extra:
        p.write_text(json.dumps({"reason": "delete"}))
    (pa / s1 / "workflows").mkdir(parents=True)
    (pa / s1 / "workflows" / "w1.json").write_text("{}")
    (pa / s1 / "custom-title.json").write_text('{"title": "t"}')

    _, rep = run_json(["report", "--format", "json", "--claude-dir", str(cfg)], jenv)
    sessions = {s["session_id"]: s for s in rep["sessions"]}
    assert {s1, s2, s4} <= set(sessions), sorted(sessions)
    paths = {sid: {p[len(str(cfg)) + 1 :] for p in s["paths"]} for sid, s in sessions.items()}

    # every entry of projects/ (but auto-memory) and of the per-session stores belongs to the session
    # whose id it carries
    files = claude.files()
    for sid in {s1, s2, s3, s4}:
        mine = {f for f in files if sid in f and not f.startswith("sessions/")}
        covered = {
            f for f in mine if any(f == p or f.rstrip("/") == p or f.startswith(p + "/") for p in paths.get(sid, ()))
        }
        assert mine - covered == set(), (sid, sorted(mine - covered))
    assert any(p.startswith("file-history/") for p in paths[s1])
    assert any(p.startswith("session-env/") for p in paths[s1])
    assert f"debug/{s1}.txt" in paths[s1]
    assert {p.name for p in extra} <= {p.rsplit("/", 1)[-1] for p in paths[s1]}
    assert any((cfg / p / "subagents").is_dir() for p in paths[s2] if p.startswith("projects/"))
    assert not [u for u in rep["unknown"] if any(sid in u for sid in (s1, s2, s3, s4))], rep["unknown"]
    assert not [u for u in rep["unknown"] if "/projects/" in u and "/memory" not in u], rep["unknown"]
