"""Reports people read: grouped tables, markdown, per-store usage, doctor, pins, the progress line.

Real files in tmp_path and the real CLI in a subprocess; time is passed with --now."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from claude_janitor.render.progress import Progress
from tests.helpers import run_cli, run_json, write_config
from tests.helpers.cachegen import DAY, make_cache, make_session, set_times


@pytest.fixture
def cache(root: Path, now: float):
    return make_cache(root, now, projects=4, per_project=5, seed=11)


def args(root: Path, now: float, *more: str) -> list[str]:
    return [*more, "--claude-dir", str(root), "--now", str(now)]


# ---- report ------------------------------------------------------------------------------------


def test_report_table_puts_projects_first_most_reclaimable_on_top(cache, root, jenv, now):
    p = run_cli(args(root, now, "report"), jenv)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("PROJECT"))
    assert "RECLAIMABLE" in lines[head] and "SESSIONS" in lines[head]
    overview = lines[head + 1 : head + 1 + 4]
    _, doc = run_json(args(root, now, "report", "--format", "json"), jenv)
    by_project = doc["totals"]["by_project"]
    expected = sorted(by_project, key=lambda k: (-by_project[k]["bytes_reclaimable"], -by_project[k]["bytes"], k))
    assert [row.split("  ")[0] for row in overview] == expected
    # Every session appears under its project's heading, with a human age and size.
    for s in doc["sessions"]:
        row = next(line for line in lines if s["session_id"] in line)
        assert re.search(r"\d+(\.\d)?[smhd]\b", row) and re.search(r"\d+(\.\d)? (B|KiB|MiB)", row), row
    assert "\x1b[" not in p.stdout  # no colour when stdout is not a terminal


def test_json_is_written_as_json_dumps_indent_2_writes_it_byte_for_byte(cache, root, jenv, now):
    """The JSON report is made a session at a time (render.report._flat_dumps, not json's Python encoder):
    it must be exactly what json.dumps(doc, indent=2, ensure_ascii=True) writes, also for a project dir
    name that is not UTF-8, a title with quotes, escapes and non-ASCII, and notes."""
    title = 't\u00eftle "\\n\u2028 \U0001f600'
    odd = make_session(root, '/home/dev/caf\u00e9 "q" \\ x', now - 90 * DAY, prompts=[title])
    bad = root / "projects" / os.fsdecode(b"raw-\xff-name")
    bad.mkdir()
    os.rename(root / "projects" / odd.project / f"{odd.session_id}.jsonl", bad / f"{odd.session_id}.jsonl")
    for cmd in (["report", "--format", "json"], ["sweep", "--dry-run", "--json"]):
        p = run_cli(args(root, now, *cmd), jenv)
        assert p.returncode in (0, 1), p.stderr
        doc = json.loads(p.stdout)
        assert any("\\udcff" in json.dumps(s["paths"]) for s in doc["sessions"])  # the non-UTF-8 name is there
        assert p.stdout.rstrip("\n") == json.dumps(doc, indent=2, ensure_ascii=True)


def test_report_summary_leaves_out_sessions(cache, root, jenv, now):
    p = run_cli(args(root, now, "report", "--summary"), jenv)
    assert p.returncode == 0, p.stderr
    assert "PROJECT" in p.stdout and "would delete" in p.stdout
    assert not any(g.session_id in p.stdout for g in cache)


def test_markdown_report_is_pasteable(root, jenv, now):
    make_session(root, "/home/dev/a|b <c>", now - 90 * DAY)  # a pipe would break a markdown table
    make_session(root, "/home/dev/ok", now - 1 * DAY)
    p = run_cli(args(root, now, "report", "--format", "markdown"), jenv)
    assert p.returncode == 0, p.stderr
    md = p.stdout
    assert md.startswith("# claude-janitor report (dry run)")
    assert "| Project | Sessions | Size | Reclaimable | Oldest | Newest |" in md
    assert "/home/dev/a\\|b <c>" in md
    width = 0
    for line in md.splitlines():
        if line.startswith("|"):
            # Every table row has as many unescaped cells as its header.
            cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
            width = width or len(cells)
            assert len(cells) == width, line
        else:
            width = 0
    assert md.count("<details>") == md.count("</details>") == 2
    assert "**delete**" in md


# ---- du ----------------------------------------------------------------------------------------


def test_du_shows_each_store_with_what_a_sweep_would_reclaim(cache, root, jenv, now):
    big = root / "debug" / f"{cache[0].session_id}.txt"
    big.write_bytes(b"x" * 300_000)
    set_times(big, cache[0].last - 60)
    p, doc = run_json(args(root, now, "du", "--format", "json"), jenv)
    assert p.returncode == 0, p.stderr
    (r,) = doc["roots"]
    stores = {s["store"]: s for s in r["stores"]}
    assert {
        "projects",
        "debug",
        "file-history",
        "todos",
        "tasks",
        "session-env",
        "shell-snapshots",
        "history.jsonl",
    } <= set(stores)
    # Bytes match the files on disk, store by store.
    for name in ("debug", "file-history", "todos"):
        files = [f for f in (root / name).rglob("*") if f.is_file()]
        assert stores[name]["files"] == len(files)
        assert stores[name]["bytes"] == sum(f.stat().st_size for f in files)
    # Reclaimable per store is what the plan would remove from that store.
    _, plan = run_json(args(root, now, "report", "--format", "json"), jenv)
    gone = [s for s in plan["sessions"] if s["decision"] != "keep"]
    want = sum(
        (root / "debug" / f"{s['session_id']}.txt").stat().st_size
        for s in gone
        if (root / "debug" / f"{s['session_id']}.txt").exists()
    )
    assert stores["debug"]["reclaimable"] == want
    assert r["reclaimable_bytes"] == plan["totals"]["bytes_reclaimable"]
    assert stores["history.jsonl"]["reclaimable"] == 0 and not stores["history.jsonl"]["per_session"]
    disk = [s["disk_bytes"] for s in r["stores"]]
    assert disk == sorted(disk, reverse=True)
    if now - cache[0].last > 30 * DAY:
        assert stores["debug"]["reclaimable"] >= 300_000


def test_du_table_and_report_stores_agree(cache, root, jenv, now):
    a = run_cli(args(root, now, "du"), jenv)
    b = run_cli(args(root, now, "report", "--stores"), jenv)
    assert a.returncode == b.returncode == 0, a.stderr + b.stderr
    assert a.stdout == b.stdout
    assert "file-history/" in a.stdout and "ON DISK" in a.stdout and "RECLAIMABLE" in a.stdout
    md = run_cli(args(root, now, "du", "--format", "markdown"), jenv)
    assert "| Store | Files |" in md.stdout and "`file-history/`" in md.stdout


# ---- doctor ------------------------------------------------------------------------------------


def test_doctor_says_where_each_value_comes_from(cache, root, jenv, now, tmp_path):
    cfg = write_config(jenv, 'retention = "7d"\ngrace = "2h"\n')
    policy = tmp_path / "policy.toml"
    policy.write_text('retention = "90d"\n')
    managed = Path(jenv["CLAUDE_JANITOR_MANAGED_DIR"])
    managed.mkdir()
    (managed / "managed-settings.json").write_text(
        json.dumps({"cleanupPeriodDays": 14, "env": {"DISABLE_TELEMETRY": "1"}})
    )
    (root / "settings.json").write_text(json.dumps({"cleanupPeriodDays": 60, "env": {"DISABLE_BUG_COMMAND": "true"}}))
    (root / ".last-cleanup").write_text("")
    set_times(root / ".last-cleanup", now - 3 * 3600)
    env = {**jenv, "CLAUDE_JANITOR_POLICY": str(policy), "DISABLE_ERROR_REPORTING": "1"}
    env.pop("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", None)
    env.pop("DISABLE_TELEMETRY", None)
    env.pop("DISABLE_BUG_COMMAND", None)
    p, doc = run_json(args(root, now, "doctor", "--json"), env)
    assert p.returncode == 0, p.stderr
    rows = {r["key"]: r for r in doc["policy"]}
    assert rows["retention"]["value"] == "90d" and rows["retention"]["source"] == f"managed policy {policy}"
    assert rows["grace"]["value"] == "2h" and rows["grace"]["source"] == f"janitor config {cfg}"
    assert rows["keep_last"]["source"] == "default"
    (c,) = doc["claude"]
    assert c["cleanup_window"] == "14d" and c["cleanup_managed"] is True
    assert str(managed / "managed-settings.json") in c["cleanup_source"]
    assert {s["file"]: s.get("cleanupPeriodDays") for s in c["settings"]} == {
        str(root / "settings.json"): 60,
        str(managed / "managed-settings.json"): 14,
    }
    lc = c["last_cleanup"]
    assert lc["last_run"] == pytest.approx(now - 3 * 3600) and "skipped by Claude Code for another 21h" in lc["status"]
    priv = {x["name"]: x for x in c["privacy"]}
    assert priv["DISABLE_TELEMETRY"]["state"] == "on" and "(managed)" in priv["DISABLE_TELEMETRY"]["source"]
    assert priv["DISABLE_BUG_COMMAND"]["source"] == f"env in {root / 'settings.json'}"
    assert priv["DISABLE_ERROR_REPORTING"]["source"] == "environment"
    assert priv["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"]["state"] == "not set"
    text = run_cli(args(root, now, "doctor"), env)
    assert text.returncode == 0
    assert f"managed policy {policy}" in text.stdout and "ran 3h ago" in text.stdout
    assert "No problems found." in text.stdout


def test_doctor_finds_project_overrides_and_broken_files(root, jenv, now, tmp_path):
    proj = tmp_path / "work" / "app"
    (proj / ".claude").mkdir(parents=True)
    (proj / ".claude" / "settings.json").write_text('{"cleanupPeriodDays": 3}')
    make_session(root, str(proj), now - DAY)
    env = {
        **jenv,
        "CLAUDE_JANITOR_POLICY": str(tmp_path / "none.toml"),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    p, doc = run_json(args(root, now, "doctor", "--json"), env)
    assert p.returncode == 0, p.stderr
    (c,) = doc["claude"]
    assert c["project_overrides"] == [
        {"project": str(proj), "file": str(proj / ".claude" / "settings.json"), "cleanupPeriodDays": 3}
    ]
    assert c["last_cleanup"]["last_run"] is None
    assert all(x["state"] == "on" for x in c["privacy"])  # implied by NONESSENTIAL_TRAFFIC
    (root / "settings.json").write_text('{"cleanupPeriodDays": 0}')
    write_config(jenv, 'retension = "7d"\n')
    p = run_cli(args(root, now, "doctor"), env)
    assert p.returncode == 2
    assert "Problems" in p.stdout and "cleanupPeriodDays must be a whole number" in p.stdout
    assert "did you mean 'retention'" in p.stdout
    assert "own sweep" in p.stdout  # the rest is still reported


# ---- pins --------------------------------------------------------------------------------------


def test_pin_protects_a_session_until_unpinned(root, jenv, now):
    old = make_session(root, "/home/dev/p", now - 90 * DAY)
    other = make_session(root, "/home/dev/p", now - 80 * DAY)
    p = run_cli(["pin", old.session_id, "--claude-dir", str(root)], jenv)
    assert p.returncode == 0 and p.stdout.strip() == f"pinned: {old.session_id}", p.stdout + p.stderr
    pins_file = Path(jenv["XDG_STATE_HOME"]) / "claude-janitor" / "pins.json"
    assert json.loads(pins_file.read_text()) == [old.session_id]
    assert stat.S_IMODE(pins_file.stat().st_mode) == 0o600
    assert run_cli(["pin"], jenv).stdout.split() == [old.session_id]
    p, doc = run_json(args(root, now, "sweep", "--json"), jenv)
    assert p.returncode == 0, p.stderr
    assert [s["session_id"] for s in doc["sessions"]] == [other.session_id]
    assert old.paths[0].exists() and not other.paths[0].exists()
    _, rep = run_json(args(root, now, "report", "--format", "json"), jenv)
    assert [(s["pinned"], s["reason"]) for s in rep["sessions"]] == [(True, "pinned")]
    p = run_cli(["unpin", old.session_id], jenv)
    assert p.stdout.strip() == f"unpinned: {old.session_id}"
    assert json.loads(pins_file.read_text()) == []
    run_cli(args(root, now, "sweep"), jenv)
    assert not old.paths[0].exists()


def test_pin_rejects_non_ids_and_concurrent_pins_all_land(jenv):
    p = run_cli(["pin", "../../etc/passwd"], jenv)
    assert p.returncode == 2 and "is not a session id" in p.stderr
    ids = [f"{i:08x}-0000-4000-8000-000000000000" for i in range(6)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "claude_janitor", "pin", sid],
            env=jenv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for sid in ids
    ]
    assert all(pr.wait(60) == 0 for pr in procs)
    assert run_cli(["pin"], jenv).stdout.split() == sorted(ids)
    pins_dir = Path(jenv["XDG_STATE_HOME"]) / "claude-janitor"
    assert not [f for f in os.listdir(pins_dir) if f.endswith(".tmp")]


# ---- progress ----------------------------------------------------------------------------------


def run_on_tty(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pseudo-terminal (stdout a pipe); returns (code, stdout, tty text)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "claude_janitor", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=slave,
        stdin=subprocess.DEVNULL,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    out = proc.stdout.read().decode() if proc.stdout else ""
    code = proc.wait(60)
    os.close(master)
    return code, out, b"".join(chunks).decode(errors="replace")


def test_progress_line_on_a_terminal_only_and_never_with_json(cache, root, jenv, now):
    env = {**jenv, "CLAUDE_JANITOR_PROGRESS_DELAY": "0"}
    code, out, tty = run_on_tty(args(root, now, "sweep", "--dry-run"), env)
    assert code == 0
    assert "scanning" in tty and "checking" in tty and "\r\x1b[2K" in tty
    assert "\x1b" not in out and "would delete" in out  # the result itself is untouched
    code, out, tty = run_on_tty(args(root, now, "sweep", "--dry-run", "--json"), env)
    assert code == 0 and tty == "" and json.loads(out)["dry_run"] is True
    code, out, tty = run_on_tty(args(root, now, "report", "--format", "json"), env)
    assert code == 0 and tty == ""
    p = run_cli(args(root, now, "sweep", "--dry-run"), env)  # stderr a pipe: no progress
    assert p.stderr == ""
    code, _, tty = run_on_tty(args(root, now, "sweep", "--dry-run"), jenv)  # quick run: under 1 s
    assert code == 0 and "scanning" not in tty


def test_progress_renders_bar_and_count_and_erases_itself():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    s = Tty()
    p = Progress(s, delay=0)
    p.phase("scanning", None, "entries")(1234)
    assert "scanning… 1,234 entries" in s.getvalue()
    p.drawn_at = 0
    p.phase("sweeping", 10, "sessions")
    p.drawn_at = 0
    p(5)
    assert "5/10 sessions" in s.getvalue() and "█" * 14 + "░" * 14 in s.getvalue()
    p.close()
    assert s.getvalue().endswith("\r\x1b[2K")
    quiet = Tty()
    q = Progress(quiet, delay=60)
    q.phase("scanning")(10)
    q.close()
    assert quiet.getvalue() == ""
    piped = io.StringIO()
    Progress(piped, delay=0).phase("x", 3)(1)
    assert piped.getvalue() == ""


def test_help_lists_the_new_commands(jenv):
    p = run_cli(["--help"], jenv)
    for cmd in ("doctor", "du", "pin", "unpin", "report", "sweep"):
        assert re.search(rf"^\s+{cmd}\s", p.stdout, re.M), cmd


def test_shell_completion_as_documented(jenv):
    p = run_cli([], {**jenv, "_JANITOR_COMPLETE": "bash_source"})
    assert p.returncode == 0 and "_janitor_completion()" in p.stdout
    env = {**jenv, "_JANITOR_COMPLETE": "bash_complete", "COMP_WORDS": "janitor report --format ", "COMP_CWORD": "3"}
    assert run_cli([], env).stdout.split() == ["plain,table", "plain,json", "plain,markdown"]
    env = {**env, "COMP_WORDS": "janitor d", "COMP_CWORD": "1"}
    assert {"plain,doctor", "plain,du", "plain,daemon"} <= set(run_cli([], env).stdout.split())
