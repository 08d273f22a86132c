"""`janitor show ID` (issue 15 item 2): one session, everything the janitor knows. Real files, the real CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.helpers import run_cli, write_config
from tests.helpers.cachegen import DAY, make_session


def args(root: Path, now: float, *more: str) -> list[str]:
    return [*more, "--claude-dir", str(root), "--now", str(now)]


def test_show_tells_pieces_title_kind_decision_and_why(root, jenv, now):
    (root / "settings.json").parent.mkdir(parents=True, exist_ok=True)
    (root / "settings.json").write_text(json.dumps({"cleanupPeriodDays": 20}))
    g = make_session(root, "/home/dev/app", now - 25 * DAY, entrypoint="sdk-cli", prompts=["Nightly: lint"])
    write_config(jenv, '[[rule]]\nkind = "interactive"\nretention = "90d"\n')
    p = run_cli(args(root, now, "show", g.session_id), jenv)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "title:     Nightly: lint  (first prompt)" in out and "kind:      headless (-p)" in out
    assert "project:   /home/dev/app" in out and "decision:  delete" in out
    assert "rule: no [[rule]] matches (project /home/dev/app, kind headless, entrypoint sdk-cli" in out
    assert f"window: 20d, from cleanupPeriodDays in {root}/settings.json" in out, out
    for piece in ("transcript", "file-history/", "debug/", "session-dir"):
        assert piece in out
    assert "archives:  none" in out
    doc = json.loads(run_cli(args(root, now, "show", g.session_id, "--json"), jenv).stdout)
    (s,) = doc["sessions"]
    assert s["kind"] == "headless" and s["title"] == "Nightly: lint" and s["decision"] == "delete"
    assert {pc["store"] for pc in s["pieces"]} >= {"transcript", "session-dir", "file-history", "debug", "todos"}
    assert sum(pc["bytes"] for pc in s["pieces"]) == s["bytes"]
    steps = {r["step"]: r["detail"] for r in s["reasoning"]}
    assert steps["window"].startswith("20d, from cleanupPeriodDays") and steps["decision"].startswith("delete: ")
    assert (
        "title"
        not in json.loads(run_cli(args(root, now, "show", g.session_id, "--json", "--no-titles"), jenv).stdout)[
            "sessions"
        ][0]
    )
    # a matching rule is named, with its window
    g2 = make_session(root, "/home/dev/app", now - 25 * DAY, entrypoint="cli")
    out = run_cli(args(root, now, "show", g2.session_id), jenv).stdout
    assert "rule: rule #1 (kind interactive) matches" in out and "window: 90d, from rule #1 (kind interactive)" in out
    assert "decision: keep: within retention 90d" in out


def test_show_unknown_malformed_and_several(root, jenv, now):
    g = make_session(root, "/home/dev/a", now - 5 * DAY, entrypoint="cli")
    p = run_cli(args(root, now, "show", "not-an-id"), jenv)
    assert p.returncode == 2 and "'not-an-id' is not a session id" in p.stderr and p.stdout == ""
    p = run_cli(args(root, now, "show", "0c8e8a53-9f3e-4a2b-8b59-1d2f6b0a7c11"), jenv)
    assert p.returncode == 2 and "no session 0c8e8a53-9f3e-4a2b-8b59-1d2f6b0a7c11 under" in p.stderr
    # the same id in a second project: both are listed (and the side stores they cannot share)
    src = root / "projects" / g.project / f"{g.session_id}.jsonl"
    other = root / "projects" / "-home-dev-b"
    other.mkdir()
    shutil.copy2(src, other / src.name)
    p = run_cli(args(root, now, "show", g.session_id.upper()), jenv)
    assert p.returncode == 0, p.stderr
    assert "sessions have this id" in p.stdout
    assert "[projects/-home-dev-a]" in p.stdout and "[projects/-home-dev-b]" in p.stdout
    doc = json.loads(run_cli(args(root, now, "show", g.session_id, "--json"), jenv).stdout)
    assert {s["project"] for s in doc["sessions"]} >= {"-home-dev-a", "-home-dev-b"}


def test_show_lists_archives_of_the_session(root, jenv, now):
    g = make_session(root, "/home/dev/a", now - 50 * DAY, entrypoint="cli")
    p = run_cli(args(root, now, "sweep", "--action", "archive"), jenv)
    assert p.returncode == 0, p.stderr
    p = run_cli(args(root, now, "show", g.session_id), jenv)
    assert p.returncode == 0, p.stderr
    assert "is not in the cache; archived: " in p.stdout and ".tar.zst" in p.stdout
    p = run_cli(["restore", g.session_id, "--claude-dir", str(root)], jenv)
    assert p.returncode == 0, p.stderr
    p = run_cli(args(root, now, "show", g.session_id), jenv)
    assert "archives:\n" in p.stdout and ".tar.zst  archived 20" in p.stdout
