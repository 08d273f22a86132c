"""Titles, kinds and `replied` read from what the real Claude Code 2.1.328 writes (issue 15 items 1, 3).

How Claude Code marks a run: `entrypoint` on every record — `claude -p` is "sdk-cli" (its
CLAUDE_CODE_ENTRYPOINT "cli" becomes "sdk-cli" in print mode), the Agent SDK sets "sdk-py"/"sdk-ts", the
desktop app "claude-desktop"; any other value passes through. A run's entrypoint is set here the way those
callers set it (the environment variable), and the records are Claude Code's own."""

from __future__ import annotations

import json
import subprocess

from tests.helpers import run_cli, run_json, write_config
from tests.helpers.claude import now


def _run(claude, prompt: str, *args: str, cwd, entrypoint: str | None = None) -> str:
    env = dict(claude.env)
    if entrypoint:
        env["CLAUDE_CODE_ENTRYPOINT"] = entrypoint
    p = subprocess.run(claude.argv(prompt, *args), cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout)["session_id"]


def test_real_sessions_have_titles_kinds_and_replied(claude, jenv):
    w = claude.project("work")
    headless = _run(claude, "Nightly: summarise the failing CI jobs", cwd=w)
    sdk = _run(claude, "Classify these support tickets", cwd=w, entrypoint="sdk-py")
    stepped = _run(claude, "Nightly: bump dependencies", cwd=w)
    _run(claude, "No, leave numpy pinned and rerun", "--resume", stepped, cwd=w, entrypoint="claude-desktop")
    rerun = _run(claude, "Nightly: lint everything", cwd=w)
    _run(claude, "Nightly: now fix the lint errors", "--resume", rerun, cwd=w)

    _, rep = run_json(["report", "--format", "json", "--claude-dir", str(claude.config)], jenv)
    s = {x["session_id"]: x for x in rep["sessions"]}
    assert (s[headless]["kind"], s[headless]["entrypoint"]) == ("headless", "sdk-cli")
    assert (s[headless]["title"], s[headless]["title_source"]) == (
        "Nightly: summarise the failing CI jobs",
        "first prompt",
    )
    assert (s[sdk]["kind"], s[sdk]["title"]) == ("sdk", "Classify these support tickets")
    assert s[stepped]["kind"] == "headless" and s[stepped]["replied"] is True
    assert s[rerun]["replied"] is False and s[headless]["replied"] is False
    assert s[rerun]["title"] == "Nightly: lint everything"  # the first prompt, not the latest

    # A rule for headless runs expires them sooner; the one someone stepped into is kept like a conversation.
    write_config(jenv, '[[rule]]\nreplied = true\n\n[[rule]]\nkind = "headless"\nretention = "3d"\n')
    later = str(now() + 5 * 86400)  # the records carry their own times: look from five days on
    p = run_cli(["report", "--format", "json", "--claude-dir", str(claude.config), "--now", later], jenv)
    d = {x["session_id"]: (x["decision"], x["rule"]) for x in json.loads(p.stdout)["sessions"]}
    assert d[headless] == ("delete", "rule #2 (kind headless)") and d[rerun][0] == "delete"
    assert d[stepped] == ("keep", "rule #1 (replied true)") and d[sdk][0] == "keep"
    table = run_cli(["report", "--claude-dir", str(claude.config)], jenv).stdout
    row = next(line for line in table.splitlines() if stepped in line)
    assert "headless (-p), replied" in row and "Nightly: bump dependencies" in row
