"""The differential: two `cp -a` copies of one realistic cache; on one, a janitor sweep with Claude Code's
window, then Claude Code's own cleanup; on the other, Claude Code's cleanup alone. After the janitor, Claude
Code finds nothing more to remove but what the janitor deliberately keeps and names in its report.

"Cache" here is the Claude dir and, with it, the user's ``claude-cli-nodejs/<cwd>/`` logs (in
$XDG_CACHE_HOME) and Claude Code's tmp dir (``claude-<uid>/`` …): each copy has its own three, and the
janitor sweeps copy A as the user's own Claude dir ($CLAUDE_CONFIG_DIR), so that it manages all three."""

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


class Copy:
    """One copy of the whole cache: the Claude dir, the XDG cache dir (claude-cli-nodejs/) and the tmp dir."""

    def __init__(self, base: Path) -> None:
        self.config = base
        self.cache, self.tmp = base.with_name(base.name + "-cache"), base.with_name(base.name + "-tmp")

    def make(self, config: Path, cache: Path, tmp: Path) -> Copy:
        for src, dst in ((config, self.config), (cache, self.cache), (tmp, self.tmp)):
            subprocess.run(["cp", "-a", str(src), str(dst)], check=True)
        return self

    def tree(self) -> set[str]:
        """Every path of the three, the cache's and tmp's prefixed "cache:" and "tmp:"."""
        return (
            tree(self.config)
            | {f"cache:{r}" for r in tree(self.cache / "claude-cli-nodejs")}
            | {f"tmp:{r}" for r in tree(self.tmp)}
        )

    def janitor_env(self, jenv: dict[str, str]) -> dict[str, str]:
        """The janitor, sweeping this copy as the user's own Claude dir: its cache and tmp dirs too."""
        return {
            **jenv,
            "CLAUDE_CONFIG_DIR": str(self.config),
            "XDG_CACHE_HOME": str(self.cache),
            "CLAUDE_CODE_TMPDIR": str(self.tmp),
        }


def claude_cleanups(claude, copies: list[Copy]) -> list[set[str]]:
    """Run Claude Code on each copy at once, long enough for its own cleanup (each turn held until the
    cleanup wrote .last-cleanup); what it removed from each (Claude dir, cache and tmp dirs)."""
    procs, holds, before = [], [], []
    configs = [c.config for c in copies]
    for c in copies:
        (c.config / ".last-cleanup").unlink(missing_ok=True)
        before.append(c.tree())
    try:
        for c in copies:
            holds.append(claude.api.hold(lambda b: "CLEANUP" in current_prompt(b)[0]))
            env = dict(claude.env, CLAUDE_CONFIG_DIR=str(c.config), XDG_CACHE_HOME=str(c.cache), TMPDIR=str(c.tmp))
            procs.append(
                subprocess.Popen(
                    claude.argv("CLEANUP run"),
                    cwd=claude.project("cleanup"),
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        assert all(h.arrived.wait(60) for h in holds)
        assert wait_for(lambda: all((c / ".last-cleanup").exists() for c in configs), timeout=60), (
            "Claude Code's cleanup never ran"
        )
    finally:
        for h in holds:
            h.release.set()
    for proc in procs:
        claude.finish(proc)
    return [b - c.tree() for b, c in zip(before, copies, strict=True)]


def tmp_owner(rel: str, sessions: list[dict]) -> dict | None:
    """The session a tmp ``claude-<uid>/<cwd>/<id>/…`` path belongs to."""
    parts = rel.split("/")
    if rel.startswith("tmp:claude-") and len(parts) >= 3:
        return next((s for s in sessions if s["session_id"] == parts[2]), None)
    return None


def iso_name(t: float) -> str:
    """A claude-cli-nodejs log name: the time it was written, as Claude Code names it."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H-%M-%S-") + f"{int(t * 1000) % 1000:03d}Z"


def put(path: Path, t: float, data: str = "x\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data)
    os.utime(path, (t, t))
    return path


def cli_logs(cache: Path, cwd: Path, other_cwd: str) -> dict[str, str]:
    """claude-cli-nodejs/<cwd>/ error and MCP logs of every age (Claude Code goes by the time in the name;
    each file's own time is when it was written, that time). What each should become."""
    now = time.time()
    enc = re.sub(r"[^a-zA-Z0-9]", "-", str(cwd))
    logs = cache / "claude-cli-nodejs"
    want = {}
    for rel, t, fate in [
        (f"{enc}/errors/{iso_name(now - 60 * DAY)}.txt", now - 60 * DAY, "gone"),
        (f"{enc}/errors/{iso_name(now - 2 * DAY)}.txt", now - 2 * DAY, "kept"),
        (f"{enc}/mcp-logs-plugin-x-srv/{iso_name(now - 45 * DAY)}.jsonl", now - 45 * DAY, "gone"),
        (f"{enc}/mcp-logs-plugin-x-srv/{iso_name(now - DAY)}.jsonl", now - DAY, "kept"),
        (f"{enc}/errors/not-a-time.txt", now - 90 * DAY, "kept"),  # no time in its name: both keep it
        (f"{enc}/errors/{iso_name(now + 30 * DAY)}.txt", now, "kept"),  # a time in the future
        # another cwd's: Claude Code sweeps only the folder of the cwd it runs in; the janitor sweeps all
        (f"{other_cwd}/errors/{iso_name(now - 60 * DAY)}.txt", now - 60 * DAY, "janitor"),
    ]:
        put(logs / rel, min(t, now))
        want[f"cache:{rel}"] = fate
    return want


def tmp_leftovers(tmp: Path, old: float) -> dict[str, str]:
    """What Claude Code leaves in its tmp dir, of every age; what each should become."""
    now = time.time()
    me = f"claude-{os.getuid()}"
    want = {}
    for rel, t, kind, fate in [
        (f"{me}/cc-transcript-a1.txt", old, "file", "gone"),
        (f"{me}/cc-transcript-b2.txt", now - DAY, "file", "kept"),
        (f"{me}/auto-mode-builtins-x.md", old, "file", "gone"),
        (f"{me}/cache-break-state-0c5e8a6e-4a48-4f7e-8c4c-5d2f0a7d1e11.json", old, "file", "gone"),
        (f"{me}/speculation", now - 5 * DAY, "dir", "gone"),  # at most 3 days
        (f"{me}/other.txt", old, "file", "kept"),  # not a name Claude Code ages
        ("claude-preview-k3j4Q9", old, "dir", "gone"),
        ("claude-paste-" + "ab" * 16, old, "dir", "gone"),
        ("cc-history-prefetch-77", old, "dir", "gone"),
        ("claude-preview-fresh1", now - DAY, "dir", "kept"),
        ("claude-pdf-x1y2z3", old, "dir", "kept"),  # never swept by Claude Code
        ("claude-preview-not-6", old, "dir", "kept"),  # not mkdtemp's 6 characters: not Claude Code's
        # a session folder of no session (Claude Code removes one only with its transcript: never, here);
        # the janitor ages it by its mtime
        (f"{me}/-home-dev-gone/0c5e8a6e-4a48-4f7e-8c4c-5d2f0a7d1e11", old, "dir", "janitor"),
        (f"{me}/-home-dev-gone/1c5e8a6e-4a48-4f7e-8c4c-5d2f0a7d1e11", now - DAY, "dir", "kept"),
    ]:
        path = tmp / rel
        if kind == "dir":
            put(path / "sub" / "f.bin", t)
            put(path / "g.bin", t)
            age_tree(path, t)
        else:
            put(path, t)
        want[f"tmp:{rel}"] = fate
    return want


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
    claude.api.reply = scripted(
        {
            "EDIT": [
                tool("Edit", {"file_path": str(a / "f.txt"), "old_string": "one", "new_string": "two"}),
                tool("Bash", {"command": "true", "description": "nothing"}),
                text("edited"),
            ],
            "AGENT": [tool("Task", {"description": "d", "prompt": "say hi", "subagent_type": "general-purpose"})],
        }
    )
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
    # the tmp dir as the real runs left it (the aged sessions' folders aged with them), plus every family
    for d in claude.tmp.glob(f"claude-{os.getuid()}/*/*"):
        if d.name in (r_old, r_rec, r_desk):
            age_tree(d, old)
    want = tmp_leftovers(claude.tmp, old)
    cache = Path(jenv["XDG_CACHE_HOME"])
    want |= cli_logs(cache, claude.project("cleanup"), "-home-dev-elsewhere")

    a, b = Copy(tmp_path / "A").make(cfg, cache, claude.tmp), Copy(tmp_path / "B").make(cfg, cache, claude.tmp)
    copy_a = a.config
    before = a.tree()

    p, swept = run_json(["sweep", "--json"], a.janitor_env(jenv))
    assert p.returncode == 0, p.stderr
    _, rep = run_json(["report", "--format", "json"], a.janitor_env(jenv))
    after_janitor = a.tree()
    removed_a, removed_b = claude_cleanups(claude, [a, b])

    by_id = {s["session_id"]: s for s in rep["sessions"]}
    explained, unexplained = {}, []
    for rel in sorted(removed_a):
        s = owner(rel, rep["sessions"], copy_a) or tmp_owner(rel, rep["sessions"])
        if s is not None and "Claude Code's own cleanup" in s["reason"]:
            explained[rel] = s["reason"]
        else:
            unexplained.append((rel, s["reason"] if s else None))
    janitor_gone = before - after_janitor
    fates = {
        rel: (
            "gone" if rel in janitor_gone or rel in removed_a else "kept",
            "janitor" if rel in janitor_gone else "Claude Code" if rel in removed_a else None,
            rel in removed_b,
        )
        for rel in want
    }
    summary = {
        "janitor_removed": sorted(x["session_id"] for x in swept["sessions"] if x.get("result") == "ok"),
        "janitor_stores": {
            d["store"]: {k: d.get(k) for k in ("removed", "failed", "kept", "errors")}
            for d in swept["stores"]
            if d.get("removed") or d.get("failed")
        },
        "claude_code_removed_after_janitor": {r: explained.get(r) for r in sorted(removed_a)},
        "unexplained": unexplained,
        "claude_code_alone_removed": len(removed_b),
        # removed by the janitor though Claude Code alone kept it, but for what it removes on purpose
        # (another cwd's logs, an old session folder of no session: see tmp_leftovers, cli_logs)
        "janitor_removed_paths_claude_code_kept": sorted(
            r
            for r in janitor_gone - removed_b
            if not any(r == k or r.startswith(k + "/") for k, f in want.items() if f == "janitor")
        ),
        # removed by Claude Code alone, but by neither the janitor nor Claude Code after it: the janitor's
        # removal must not make Claude Code forget what it would have removed
        "claude_code_alone_removed_kept_after_both": sorted(removed_b - janitor_gone - removed_a),
        "cache_and_tmp": {
            r: f"{f[0]} (by {f[1]}); Claude Code alone: {'gone' if f[2] else 'kept'}" for r, f in sorted(fates.items())
        },
        "desktop": by_id.get(r_desk, {}).get("reason"),
        "recent_records": by_id.get(r_rec, {}).get("reason"),
        "mixed": by_id.get(r_mixed, {}).get("reason"),
    }
    out = Path(os.environ.get("CLAUDE_JANITOR_DIFFERENTIAL_OUT", tmp_path / "differential.json"))
    out.write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    assert unexplained == [], unexplained
    # the cli logs and tmp leftovers: each as planned, all by the janitor (Claude Code found none left)
    for rel, fate in want.items():
        gone, by, alone = fates[rel]
        if fate == "kept":
            assert gone == "kept" and not alone, (rel, fates[rel])
        else:
            assert by == "janitor", (rel, fates[rel])
            assert alone == (fate == "gone"), (rel, fates[rel])  # the other cwd's: Claude Code alone keeps it
    assert summary["claude_code_alone_removed_kept_after_both"] == []
    # the janitor removed nothing Claude Code would have kept (it goes by whole sessions, and by its rule)
    assert summary["janitor_removed_paths_claude_code_kept"] == []
    assert r_old in summary["janitor_removed"]
    assert "Claude Code's own cleanup" not in by_id[r_fresh]["reason"]
    # a desktop session: Claude Code keeps its transcript, and so does the janitor's default, saying why
    assert "Claude Code keeps desktop sessions: entrypoint claude-desktop" in by_id[r_desk]["reason"]
    assert not any(r_desk in r and r.endswith(".jsonl") for r in removed_b)
    assert "its last record is newer than its files" in by_id[r_rec]["reason"]
    assert f"debug/{r_mixed}.txt" in by_id[r_mixed]["reason"] and f"debug/{r_mixed}.txt" in removed_a
    for c in (b.config, b.cache, b.tmp):
        shutil.rmtree(c)
