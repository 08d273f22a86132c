"""The differential: two `cp -a` copies of one realistic cache; on one, a janitor sweep with Claude Code's
window, then Claude Code's own cleanup; on the other, Claude Code's cleanup alone. After the janitor, Claude
Code finds nothing more to remove but what the janitor deliberately keeps and names in its report."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

from tests.helpers import run_json, wait_for
from tests.helpers.cachegen import make_cache
from tests.helpers.claude import age_tree

from .fakeapi import current_prompt, scripted, text, tool
from .test_live import DAY, session_paths

TS_RE = re.compile(r'"timestamp":"([0-9T:.\-]+Z)"')


def shift_records(path: Path, by: float) -> None:
    """Move every record timestamp of a real transcript ``by`` seconds (an old session, as it would be)."""
    def sub(m: re.Match) -> str:
        t = datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).timestamp() + by
        return f'"timestamp":"{datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")}"'
    path.write_text(TS_RE.sub(sub, path.read_text()))


def tree(top: Path) -> set[str]:
    out = set()
    for dirpath, dirnames, filenames in os.walk(top):
        rel = os.path.relpath(dirpath, top)
        for n in dirnames + filenames:
            out.add(os.path.normpath(os.path.join(rel, n)))
    return out


def claude_cleanups(claude, configs: list[Path]) -> list[set[str]]:
    """Run Claude Code on each config dir at once, long enough for its own cleanup (each turn held until
    the cleanup wrote .last-cleanup); what it removed from each."""
    procs, holds, before = [], [], []
    for config in configs:
        (config / ".last-cleanup").unlink(missing_ok=True)
        before.append(tree(config))
    try:
        for config in configs:
            holds.append(claude.api.hold(lambda b: "CLEANUP" in current_prompt(b)[0]))
            env = dict(claude.env, CLAUDE_CONFIG_DIR=str(config))
            procs.append(subprocess.Popen(claude.argv("CLEANUP run"), cwd=claude.project("cleanup"), env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        assert all(h.arrived.wait(60) for h in holds)
        assert wait_for(lambda: all((c / ".last-cleanup").exists() for c in configs), timeout=60), \
            "Claude Code's cleanup never ran"
    finally:
        for h in holds:
            h.release.set()
    for proc in procs:
        claude.finish(proc)
    return [b - tree(c) for b, c in zip(before, configs, strict=True)]


def owner(rel: str, sessions: list[dict], root: Path) -> dict | None:
    for s in sessions:
        for p in s["paths"]:
            pr = os.path.relpath(p, root)
            if rel == pr or rel.startswith(pr + "/"):
                return s
    return None


def test_after_a_janitor_sweep_claude_code_removes_only_what_the_janitor_names(claude, jenv, tmp_path):
    cfg = claude.config
    a, b = claude.project("alpha"), claude.project("beta")
    (a / "f.txt").write_text("one\n")
    claude.api.reply = scripted({
        "EDIT": [tool("Edit", {"file_path": str(a / "f.txt"), "old_string": "one", "new_string": "two"}),
                 tool("Bash", {"command": "true", "description": "nothing"}), text("edited")],
        "AGENT": [tool("Task", {"description": "d", "prompt": "say hi", "subagent_type": "general-purpose"})],
    })
    old = time.time() - 60 * DAY
    # Real sessions: old in every way; old files but recent records; a desktop session; fresh; old debug log.
    r_old = claude.run("EDIT old", "--debug", cwd=a)["session_id"]
    r_rec = claude.run("AGENT recent records", cwd=b)["session_id"]
    desk_env = dict(claude.env, CLAUDE_CODE_ENTRYPOINT="claude-desktop")
    p = subprocess.run(claude.argv("desktop one"), cwd=b, env=desk_env, capture_output=True, text=True, timeout=120)
    r_desk = json.loads(p.stdout)["session_id"]
    r_fresh = claude.run("fresh", cwd=a)["session_id"]
    r_mixed = claude.run("EDIT mixed", "--debug", cwd=a)["session_id"]
    for sid in (r_old, r_desk):
        shift_records(next((cfg / "projects").glob(f"*/{sid}.jsonl")), -60 * DAY)
    for sid in (r_old, r_rec, r_desk):
        for p in session_paths(cfg, sid):
            age_tree(p, old)
    age_tree(cfg / "debug" / f"{r_mixed}.txt", old)
    make_cache(cfg, time.time(), projects=3, per_project=5, seed=7)  # synthetic sessions of every age

    copy_a, copy_b = tmp_path / "A", tmp_path / "B"
    for c in (copy_a, copy_b):
        subprocess.run(["cp", "-a", str(cfg), str(c)], check=True)

    p, swept = run_json(["sweep", "--json", "--claude-dir", str(copy_a)], jenv)
    assert p.returncode == 0, p.stderr
    _, rep = run_json(["report", "--format", "json", "--claude-dir", str(copy_a)], jenv)
    after_janitor = tree(copy_a)
    removed_a, removed_b = claude_cleanups(claude, [copy_a, copy_b])

    by_id = {s["session_id"]: s for s in rep["sessions"]}
    explained, unexplained = {}, []
    for rel in sorted(removed_a):
        s = owner(rel, rep["sessions"], copy_a)
        if s is not None and "Claude Code's own cleanup" in s["reason"]:
            explained[rel] = s["reason"]
        else:
            unexplained.append((rel, s["reason"] if s else None))
    summary = {
        "janitor_removed": sorted(x["session_id"] for x in swept["sessions"] if x.get("result") == "ok"),
        "claude_code_removed_after_janitor": {r: explained.get(r) for r in sorted(removed_a)},
        "unexplained": unexplained,
        "claude_code_alone_removed": len(removed_b),
        "janitor_removed_paths_claude_code_kept": sorted((tree(cfg) - after_janitor) - removed_b),
        "desktop": by_id.get(r_desk, {}).get("reason"),
        "recent_records": by_id.get(r_rec, {}).get("reason"),
        "mixed": by_id.get(r_mixed, {}).get("reason"),
    }
    out = Path(os.environ.get("CLAUDE_JANITOR_DIFFERENTIAL_OUT", tmp_path / "differential.json"))
    out.write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    assert unexplained == [], unexplained
    # the janitor removed nothing Claude Code would have kept (it goes by whole sessions, and by its rule)
    assert summary["janitor_removed_paths_claude_code_kept"] == []
    assert r_old in summary["janitor_removed"]
    assert "Claude Code's own cleanup" not in by_id[r_fresh]["reason"]
    # a desktop session: Claude Code keeps its transcript, and so does the janitor's default, saying why
    assert "Claude Code keeps desktop sessions: entrypoint claude-desktop" in by_id[r_desk]["reason"]
    assert not any(r_desk in r and r.endswith(".jsonl") for r in removed_b)
    assert "its last record is newer than its files" in by_id[r_rec]["reason"]
    assert f"debug/{r_mixed}.txt" in by_id[r_mixed]["reason"] and f"debug/{r_mixed}.txt" in removed_a
    shutil.rmtree(copy_b)
