"""The real CLI in a subprocess against a generated realistic cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers import run_cli, run_json, write_config
from tests.helpers.cachegen import DAY, make_cache, make_session, set_times


def snapshot(tree: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(tree):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            st = p.lstat()
            out[str(p.relative_to(tree))] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture
def cache(root: Path, now: float, tmp_path: Path):
    gens = make_cache(root, now, projects=6, per_project=8, seed=7)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("do not touch")
    # A symlink out of the tree inside an expired session's folder, and one as a project.
    old = [g for g in gens if now - g.last > 60 * DAY][0]
    os.symlink(outside, root / "projects" / old.project / old.session_id / "escape")
    for p in (
        root / "projects" / old.project / old.session_id / "escape",
        root / "projects" / old.project / old.session_id,
    ):
        set_times(p, old.last - 60)  # keep it expired
    os.symlink(outside, root / "projects" / "-escape-project")
    return gens, outside, old


def test_report_json_lists_every_session_with_decisions(cache, root, jenv, now):
    gens, _, _ = cache
    p, doc = run_json(["report", "--format", "json", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert p.returncode == 0, p.stderr
    assert doc["dry_run"] is True
    ids = {s["session_id"] for s in doc["sessions"]}
    assert ids == {g.session_id for g in gens}
    for s in doc["sessions"]:
        assert set(s) >= {"session_id", "project", "decision", "reason", "last_activity", "bytes", "paths"}
        g = next(g for g in gens if g.session_id == s["session_id"])
        assert s["decision"] == ("delete" if now - g.last > 30 * DAY else "keep"), s
    t = doc["totals"]
    assert t["sessions"] == len(gens) and t["delete"] + t["keep"] == len(gens)
    assert t["bytes_reclaimable"] == sum(s["bytes"] for s in doc["sessions"] if s["decision"] != "keep")
    assert any("-escape-project" in u for u in doc["unknown"])


def test_report_changes_nothing_and_writes_no_audit(cache, root, jenv, now):
    before = snapshot(root)
    for fmt in ("table", "json", "markdown"):
        p = run_cli(["report", "--format", fmt, "--claude-dir", str(root), "--now", str(now)], jenv)
        assert p.returncode == 0, p.stderr
    assert snapshot(root) == before
    p = run_cli(["audit", "path"], jenv)
    assert not Path(p.stdout.strip()).exists()


def test_report_table_and_markdown_are_grouped_by_project(cache, root, jenv, now):
    p = run_cli(["report", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert "DRY RUN" in p.stdout and "/home/dev/src/project-1" in p.stdout and "reclaimable" in p.stdout
    m = run_cli(["report", "--format", "markdown", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert m.stdout.startswith("# claude-janitor report") and "| Session |" in m.stdout
    assert "## `/home/dev/work/client 0`" in m.stdout


def test_sweep_deletes_expired_sessions_whole_and_keeps_the_rest(cache, root, jenv, now):
    gens, outside, old = cache
    dry, plan = run_json(["sweep", "--dry-run", "--json", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert dry.returncode == 0
    p, doc = run_json(["sweep", "--json", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert p.returncode == 0, p.stderr
    assert doc["dry_run"] is False
    # dry-run and real run planned exactly the same actions
    assert sorted((s["session_id"], s["decision"]) for s in plan["sessions"]) == sorted(
        (s["session_id"], s["decision"]) for s in doc["sessions"]
    )
    for g in gens:
        expired = now - g.last > 30 * DAY
        for path in g.paths:
            assert path.exists() != expired, (path, expired)
    # symlink target outside the cache untouched
    assert (outside / "precious.txt").read_text() == "do not touch"
    assert os.path.islink(root / "projects" / "-escape-project")
    # never touched
    assert (root / "history.jsonl").exists()
    assert (root / "projects" / "-home-dev-src-project-1" / "memory" / "MEMORY.md").exists()
    assert (root / "shell-snapshots" / "snapshot-bash-1.sh").exists()
    # audit: an intent and a result per action, and a chain that verifies
    log = Path(run_cli(["audit", "path"], jenv).stdout.strip())
    recs = [json.loads(x) for x in log.read_text().splitlines()]
    n = sum(1 for g in gens if now - g.last > 30 * DAY)
    assert len([r for r in recs if r["phase"] == "intent"]) == n
    assert len([r for r in recs if r["phase"] == "result" and r["result"] == "ok"]) == n
    assert all("message" not in json.dumps(r) for r in recs)  # no transcript content
    v = run_cli(["audit", "verify"], jenv)
    assert v.returncode == 0, v.stderr


def test_second_sweep_is_a_no_op(cache, root, jenv, now):
    run_cli(["sweep", "--claude-dir", str(root), "--now", str(now)], jenv)
    before = snapshot(root)
    p, doc = run_json(["sweep", "--json", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert p.returncode == 0 and doc["sessions"] == []
    assert snapshot(root) == before


def test_config_rules_and_older_than(root, jenv, now):
    keep = make_session(root, "/home/dev/keepme", now - 300 * DAY)
    short = make_session(root, "/home/dev/scratch", now - 2 * DAY)
    normal = make_session(root, "/home/dev/normal", now - 10 * DAY)
    write_config(
        jenv,
        '[[rule]]\nproject = "/home/dev/keep*"\nretention = "forever"\n'
        '[[rule]]\nproject = "/home/dev/scratch"\nretention = "1d"\n',
    )
    _, doc = run_json(["report", "--format", "json", "--claude-dir", str(root), "--now", str(now)], jenv)
    dec = {s["session_id"]: (s["decision"], s["rule"]) for s in doc["sessions"]}
    assert dec[keep.session_id] == ("keep", "rule #1 (/home/dev/keep*)")
    assert dec[short.session_id] == ("delete", "rule #2 (/home/dev/scratch)")
    assert dec[normal.session_id][0] == "keep"
    _, doc = run_json(
        ["sweep", "--dry-run", "--json", "--older-than", "5d", "--claude-dir", str(root), "--now", str(now)], jenv
    )
    assert {s["session_id"] for s in doc["sessions"]} == {short.session_id, normal.session_id}


def test_claude_dir_from_env_and_project_settings_scope(root, jenv, now, tmp_path):
    proj = tmp_path / "repo"
    (proj / ".claude").mkdir(parents=True)
    (proj / ".claude" / "settings.json").write_text(json.dumps({"cleanupPeriodDays": 1}))
    in_repo = make_session(root, str(proj), now - 3 * DAY)
    elsewhere = make_session(root, "/home/dev/other", now - 3 * DAY)
    env = dict(jenv, CLAUDE_CONFIG_DIR=str(root))
    _, doc = run_json(["report", "--format", "json", "--now", str(now)], env)
    dec = {s["session_id"]: s for s in doc["sessions"]}
    assert dec[in_repo.session_id]["decision"] == "delete"
    assert "applies to this project only" in dec[in_repo.session_id]["reason"]
    assert dec[elsewhere.session_id]["decision"] == "keep"


@pytest.mark.parametrize(
    "setup,needle",
    [
        (lambda r, j: write_config(j, "retention = "), "invalid TOML"),
        (lambda r, j: write_config(j, 'retension = "3d"'), "did you mean 'retention'"),
        (lambda r, j: write_config(j, 'retention = "0d"'), "greater than zero"),
        (lambda r, j: write_config(j, "retention = " + "[" * 5000), "invalid TOML"),
    ],
)
def test_bad_input_is_one_clear_line_exit_2_and_changes_nothing(cache, root, jenv, now, setup, needle):
    setup(root, jenv)
    before = snapshot(root)
    p = run_cli(["sweep", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert p.returncode == 2
    assert needle in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) <= 2
    assert snapshot(root) == before


@pytest.mark.parametrize(
    "content,needle", [("{oops", "invalid JSON"), ('{"cleanupPeriodDays": 0}', "cleanupPeriodDays")]
)
def test_broken_claude_settings_keep_what_depends_on_them_and_change_nothing_else(
    cache, root, jenv, now, content, needle
):
    """A broken Claude Code settings file is not a janitor config error: every session whose window comes
    from Claude Code's settings is kept, with the file named; the run itself goes on (exit 0)."""
    (root / "settings.json").write_text(content)
    before = snapshot(root)
    p = run_cli(["sweep", "--json", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert any(needle in w and str(root / "settings.json") in w for w in out["warnings"])
    assert snapshot(root) == before


def test_missing_cache_dir_and_unknown_option(jenv, tmp_path):
    p = run_cli(["sweep", "--claude-dir", str(tmp_path / "nope")], jenv)
    assert p.returncode == 2 and "does not exist" in p.stderr
    p = run_cli(["sweep", "--frobnicate"], jenv)
    assert p.returncode == 2 and "No such option" in p.stderr
    p = run_cli(["sweep", "--older-than", "-5d", "--claude-dir", str(tmp_path)], jenv)
    assert p.returncode == 2 and "--older-than" in p.stderr


def test_root_that_is_a_symlink_is_refused(root, jenv, tmp_path, now):
    make_session(root, "/p", now - 90 * DAY)
    link = tmp_path / "link"
    os.symlink(root, link)
    p = run_cli(["sweep", "--claude-dir", str(link), "--now", str(now)], jenv)
    assert p.returncode == 2 and "symlink" in p.stderr
    assert len(list((root / "projects" / "-p").glob("*.jsonl"))) == 1


def test_pinned_session_is_kept(root, jenv, now):
    g = make_session(root, "/p", now - 90 * DAY)
    pins = Path(jenv["XDG_STATE_HOME"]) / "claude-janitor" / "pins.json"
    pins.parent.mkdir(parents=True)
    pins.write_text(json.dumps([g.session_id]))
    p, doc = run_json(["sweep", "--json", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert p.returncode == 0 and doc["sessions"] == []
    assert g.paths[0].exists()


def test_help_explains_itself(jenv):
    p = run_cli(["--help"], jenv)
    assert p.returncode == 0 and "Exit codes" in p.stdout
    for cmd in ("sweep", "report", "audit"):
        assert cmd in p.stdout
    s = run_cli(["sweep", "--help"], jenv)
    assert "--dry-run" in s.stdout and "--older-than" in s.stdout


def test_default_cache_missing_is_nothing_to_do(jenv, tmp_path):
    env = dict(jenv, HOME=str(tmp_path / "fresh-home"))
    p = run_cli(["report"], env)
    assert p.returncode == 0, p.stderr
    assert "no Claude Code cache" in p.stdout


def test_readme_test_command_is_what_ci_runs():
    root = Path(__file__).parent.parent
    readme = (root / "README.md").read_text().split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    assert "janitor report" in readme[0]
    assert readme[1] in (root / ".ci" / "run").read_text()
