"""The stores beyond sessions (issue 12 item 4): every family Claude Code ages is aged by the janitor, by
Claude Code's own rule unless [stores] says otherwise; report/du/doctor show them; one audit intent and
result per store; a file changed between the check and its removal is kept (and reported: exit 1); symlinks
are never followed.

Real files in tmp_path and the real CLI in a subprocess; time is passed with --now."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers import run_cli, run_json, wait_for, write_config
from tests.helpers.cachegen import DAY, make_session, set_times

H = 3600.0


def put(path: Path, t: float, data: str = "x\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data)
    set_times(path, t)
    return path


def putdir(path: Path, t: float) -> Path:
    put(path / "f.bin", t)
    set_times(path, t)
    return path


def empty(path: Path, t: float) -> Path:
    path.mkdir(parents=True)
    set_times(path, t)
    return path


class Stores:
    """One entry (or more) of every family, old and fresh, plus things no one may touch."""

    def __init__(self, root: Path, jenv: dict[str, str], now: float) -> None:
        old, fresh = now - 40 * DAY, now - 2 * DAY
        cache = Path(jenv["XDG_CACHE_HOME"]) / "claude-cli-nodejs" / "-home-dev-x"
        tmp = Path(jenv["CLAUDE_CODE_TMPDIR"])
        me = tmp / f"claude-{os.getuid()}"
        self.live = make_session(root, "/home/dev/x", now - 2 * DAY)  # a kept session: its pieces stay
        self.gone: dict[str, list[Path]] = {
            "image-cache": [putdir(root / "image-cache" / "0f3c", now - 2 * H)],
            "paste-cache": [put(root / "paste-cache" / "a1b2c3d4e5f60718.txt", old, "SECRET-PASTE\n")],
            "shell-snapshots": [put(root / "shell-snapshots" / "snapshot-bash-1-abc.sh", old)],
            "plans": [put(root / "plans" / "brave-otter.md", old)],
            "debug": [put(root / "debug" / "mcp-foo.txt", old)],
            "todos": [put(root / "todos" / "stray.json", old)],
            "session-leftovers": [
                putdir(root / "file-history" / "not-a-session", old),
                putdir(root / "uploads" / "u1", old),
            ],
            "backups": [put(root / "backups" / ".claude.json.backup.1", old)],
            "statsig": [put(root / "statsig" / "statsig.cached.evaluations.1", old)],
            "logs": [put(root / "logs" / "x.log", old)],
            "access-audit": [put(root / "access-audit" / "a.jsonl", old)],
            "telemetry": [
                put(root / "telemetry" / "q" / "1.json", old),
                put(root / "traces" / "t.json", old),
                put(root / "startup-perf" / "s.txt", old),
            ],
            "usage-data": [
                put(root / "usage-data" / "facets" / "f.json", old),
                put(root / "usage-data" / "report.html", old),
            ],
            "feedback": [
                put(root / "feedback-bundles" / "b.zip", old),
                put(root / "feedback" / "drafts" / "d.json", old),
            ],
            "dump-prompts": [put(root / "dump-prompts" / "d.jsonl", now - 5 * DAY)],  # cap 3 days
            "file-transfers": [put(root / "file-transfers" / "f", now - 2 * DAY)],  # cap 1 day
            "teams": [
                put(root / "teams" / "t1" / "inboxes" / "i.json", old),
                putdir(root / "teams" / "t2.deleted-0c5e8a6e-4a48-4f7e-8c4c-5d2f0a7d1e11", now - 2 * H),
            ],
            "fork-seeds": [put(root / "remote-control" / "fork-seeds" / "s.json", old)],
            "caches": [
                put(root / "mcp-needs-auth-cache.json", old),
                put(root / "cache" / "model-access.json", old),
                put(root / "cache" / "model-catalog" / "m.json", old),
            ],
            "tmp-files": [put(root / "history.jsonl.tmp.0123abcd", old)],
            "project-files": [
                empty(root / "projects" / "-gone-project", now - 2 * H),
                put(root / "projects" / "-home-dev-x" / "bridge-pointer.json", old),
            ],
            "plugin-set-aside": [
                putdir(root / "plugins" / "data" / ".set-aside" / "2026-08-01T00-00-00-000Z.0123456789ab", now - H * 2)
            ],  # name: 51 days
            "cli-logs": [put(cache / "errors" / "2026-08-01T00-00-00-000Z.txt", now - 2 * H)],
            "tmp": [
                put(me / "cc-transcript-1.txt", old),
                putdir(me / "speculation", now - 5 * DAY),
                putdir(tmp / "claude-preview-x1y2z3", old),
                putdir(tmp / ("claude-paste-" + "a" * 32), old),
                putdir(me / "-home-dev-gone" / "0c5e8a6e-4a48-4f7e-8c4c-5d2f0a7d1e11", old),
            ],  # of no session
        }
        self.kept: dict[str, list[Path]] = {
            "image-cache": [put(root / "image-cache" / "new.png", now - 10 * 60)],  # within grace (1h)
            "paste-cache": [put(root / "paste-cache" / "new.txt", fresh), put(root / "paste-cache" / "x.bin", old)],
            "shell-snapshots": [put(root / "shell-snapshots" / "snapshot-zsh-2.sh", fresh)],
            "plans": [put(root / "plans" / "calm-heron.md", fresh)],
            "debug": [put(root / "debug" / "latest", old), put(root / "debug" / f"{self.live.session_id}.txt", old)],
            "dump-prompts": [put(root / "dump-prompts" / "e.jsonl", now - 2 * DAY)],
            "caches": [put(root / "cache" / "model-catalog" / "masked-ids.json", old)],
            "plugin-set-aside": [
                putdir(root / "plugins" / "data" / ".set-aside" / "2026-09-20T00-00-00-000Z.0123456789ab", old)
            ],
            "cli-logs": [
                put(cache / "mcp-logs-srv" / "2026-09-20T00-00-00-000Z.jsonl", old),
                put(cache / "errors" / "garbage.txt", old),
            ],
            "tmp": [
                putdir(tmp / "claude-pdf-x", old),
                put(me / "other.txt", old),
                putdir(tmp / "claude-preview-x1", old),  # not mkdtemp's 6 characters: not Claude Code's
                putdir(me / "-home-dev-x" / self.live.session_id, old),
            ],  # its session is kept
            "project-files": [empty(root / "projects" / "-just-started", now - 10 * 60)],  # within grace
            # never aged by Claude Code: never touched
            "never": [
                put(root / "projects" / "-home-dev-x" / "memory" / "MEMORY.md", old),
                put(root / "settings.json", old, "{}"),
                put(root / ".credentials.json", old, "{}"),
                put(root / "history.jsonl", old, ""),
                put(root / "plugins" / "cache" / "p" / "x.js", old),
                put(root / "sessions" / "123.json", old, "{}"),
                put(root / "hfi-auth.json", old, "{}"),
            ],
        }

    def all_gone(self) -> list[Path]:
        return [p for ps in self.gone.values() for p in ps]

    def all_kept(self) -> list[Path]:
        return [p for ps in self.kept.values() for p in ps] + self.live.paths


@pytest.fixture
def env_own(jenv: dict[str, str], root: Path) -> dict[str, str]:
    """The user's own Claude dir ($CLAUDE_CONFIG_DIR): its cache and tmp stores are the janitor's too."""
    return {**jenv, "CLAUDE_CONFIG_DIR": str(root)}


def audit_records(jenv: dict[str, str]) -> list[dict]:
    log = Path(jenv["XDG_STATE_HOME"]) / "claude-janitor" / "log" / "audit.jsonl"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_every_family_is_aged_by_claude_codes_rule(root, env_own, now):
    s = Stores(root, env_own, now)
    p, doc = run_json(["report", "--format", "json", "--now", str(now)], env_own)
    assert p.returncode == 0, p.stderr
    planned = {d["store"]: d for d in doc["stores"]}
    for key, paths in s.gone.items():
        assert planned[key]["to_remove"] == len(paths), (key, planned.get(key))
    assert all(p.exists() for p in s.all_gone())  # a report changes nothing
    assert not any("paste-cache" in u or "debug/mcp-foo" in u for u in doc["unknown"])  # store entries, not unknown

    p, doc = run_json(["sweep", "--json", "--now", str(now)], env_own)
    assert p.returncode == 0, p.stderr
    still = [str(x) for x in s.all_gone() if os.path.lexists(x)]
    assert still == []
    lost = [str(x) for x in s.all_kept() if not x.exists()]
    assert lost == []
    done = {d["store"]: d for d in doc["stores"]}
    assert done["paste-cache"]["result"] == "ok" and done["paste-cache"]["removed"] == 1
    assert done["dump-prompts"]["window_source"].endswith("at most 3d")


def test_another_claude_dir_leaves_the_users_cache_and_tmp_alone(root, jenv, now):
    s = Stores(root, jenv, now)
    p = run_cli(["sweep", "--claude-dir", str(root), "--now", str(now)], jenv)  # not $CLAUDE_CONFIG_DIR
    assert p.returncode == 0, p.stderr
    assert not s.gone["paste-cache"][0].exists()
    assert all(x.exists() for x in s.gone["cli-logs"] + s.gone["tmp"])


def test_overrides_and_forever(root, env_own, now):
    write_config(env_own, '[stores]\npaste-cache = "7d"\nimage-cache = "1d"\nplans = "forever"\ndebug = "3d"\n')
    paste = put(root / "paste-cache" / "ten-days.txt", now - 10 * DAY)
    paste_new = put(root / "paste-cache" / "five-days.txt", now - 5 * DAY)
    img = putdir(root / "image-cache" / "s1", now - 2 * H)
    img_old = putdir(root / "image-cache" / "s2", now - 2 * DAY)
    plan = put(root / "plans" / "ancient.md", now - 400 * DAY)
    dbg = put(root / "debug" / "four.txt", now - 4 * DAY)
    snap = put(root / "shell-snapshots" / "ten.sh", now - 10 * DAY)  # no override: 30 days
    p, doc = run_json(["sweep", "--json", "--now", str(now)], env_own)
    assert p.returncode == 0, p.stderr
    assert not paste.exists() and paste_new.exists()
    assert img.exists() and not img_old.exists()
    assert plan.exists() and not dbg.exists() and snap.exists()
    by = {d["store"]: d for d in doc["stores"]}
    assert by["plans"]["kept"] == {
        "kept forever (stores.plans in janitor config "
        f"{Path(env_own['XDG_CONFIG_HOME']) / 'claude-janitor' / 'config.toml'})": 1
    }
    assert "stores.paste-cache" in by["paste-cache"]["window_source"]


def test_unknown_store_key_is_refused_with_a_suggestion(root, jenv, now):
    write_config(jenv, '[stores]\npaste_cache = "7d"\n')
    keep = put(root / "paste-cache" / "old.txt", now - 90 * DAY)
    p = run_cli(["sweep", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert p.returncode == 2 and "did you mean 'paste-cache'" in p.stderr, p.stderr
    assert keep.exists()
    write_config(jenv, '[stores]\npaste-cache = "soon"\n')
    p = run_cli(["sweep", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert p.returncode == 2 and "stores.paste-cache" in p.stderr and keep.exists()


def test_report_du_and_doctor_show_the_stores(root, jenv, now):
    write_config(jenv, '[stores]\npaste-cache = "7d"\n')
    put(root / "paste-cache" / "old.txt", now - 10 * DAY, "y" * 5000)
    put(root / "paste-cache" / "new.txt", now - 1 * DAY, "z" * 100)
    put(root / "plans" / "p.md", now - 1 * DAY)
    a = ["--claude-dir", str(root), "--now", str(now)]
    table = run_cli(["report", *a], jenv)
    assert table.returncode == 0, table.stderr
    assert "Stores beyond sessions" in table.stdout
    row = next(line for line in table.stdout.splitlines() if line.startswith("paste-cache"))
    assert "7d" in row and "1 (4.9 KiB)" in row, row
    assert "store paste-cache in" in table.stdout and "would remove 1 of 2 entries" in table.stdout
    md = run_cli(["report", "--format", "markdown", *a], jenv)
    assert "## Stores beyond sessions" in md.stdout and "| `paste-cache` | 2 |" in md.stdout
    p, du = run_json(["du", "--format", "json", *a], jenv)
    st = {u["store"]: u for u in du["roots"][0]["stores"]}
    assert st["paste-cache"]["reclaimable"] == 5000 and st["paste-cache"]["stores"] == ["paste-cache"]
    assert du["roots"][0]["reclaimable_bytes"] == 5000
    doc = run_cli(["doctor", *a], jenv)
    line = next(x for x in doc.stdout.splitlines() if x.strip().startswith("paste-cache"))
    assert "7d" in line and "stores.paste-cache in janitor config" in line, line
    assert any(x.strip().startswith("image-cache") and "0s" in x for x in doc.stdout.splitlines())
    assert "history.jsonl      not pruned" in doc.stdout
    p, dj = run_json(["doctor", "--json", *a], jenv)
    fams = {x["store"]: x for x in dj["claude"][0]["stores"]}
    assert fams["shell-snapshots"]["windows"] == [30 * DAY] and fams["dump-prompts"]["windows"] == [3 * DAY]


def test_one_audit_intent_and_result_per_store_without_names_or_content(root, jenv, now):
    put(root / "paste-cache" / "a.txt", now - 40 * DAY, "SECRET-ONE\n")
    put(root / "paste-cache" / "b.txt", now - 41 * DAY, "SECRET-TWO\n")
    put(root / "plans" / "p.md", now - 40 * DAY, "PLAN-TEXT\n")
    p = run_cli(["sweep", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert p.returncode == 0, p.stderr
    recs = [r for r in audit_records(jenv) if r["action"] == "delete-store"]
    assert [(r["store"], r["phase"]) for r in recs] == [
        ("paste-cache", "intent"),
        ("paste-cache", "result"),
        ("plans", "intent"),
        ("plans", "result"),
    ]
    res = recs[1]
    assert (res["files"], res["removed"], res["bytes_removed"], res["result"]) == (2, 2, 22, "ok")
    text = (Path(jenv["XDG_STATE_HOME"]) / "claude-janitor" / "log" / "audit.jsonl").read_text()
    assert "SECRET" not in text and "a.txt" not in text and "PLAN-TEXT" not in text
    assert run_cli(["audit", "verify"], jenv).returncode == 0


def test_a_file_changed_between_the_check_and_its_removal_is_kept(root, jenv, now, tmp_path):
    a = put(root / "paste-cache" / "a.txt", now - 40 * DAY, "one\n")
    b = put(root / "paste-cache" / "b.txt", now - 40 * DAY, "two\n")
    hold = tmp_path / "hold"
    hold.mkdir()
    env = {**jenv, "JANITOR_TEST_PAUSE_AT": f"store-before-remove:{hold}"}
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "claude_janitor", "sweep", "--json", "--claude-dir", str(root), "--now", str(now)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_for(lambda: (hold / "store-before-remove.reached").exists(), timeout=60)
        with open(a, "a") as f:  # the first entry checked (sorted by name) changes after its check
            f.write("appended by Claude Code\n")
        (hold / "store-before-remove.go").touch()
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    # changed after its check, during its removal: put back and reported as a failure (exit 1), as a session
    assert proc.returncode == 1, err
    assert a.read_text() == "one\nappended by Claude Code\n" and not b.exists()
    (sd,) = [d for d in json.loads(out)["stores"] if d["store"] == "paste-cache"]
    assert (sd["removed"], sd["failed"], sd["kept_changed"]) == (1, 1, 0)
    assert "paste-cache/a.txt: changed during removal, kept" in sd["errors"][0]
    res = [r for r in audit_records(jenv) if r["action"] == "delete-store" and r["phase"] == "result"]
    assert (res[0]["failed"], res[0]["result"]) == (1, "failed")


def test_symlinked_store_dirs_and_entries_are_not_followed(root, jenv, now, tmp_path):
    outside = tmp_path / "outside"
    victim = put(outside / "old.txt", now - 90 * DAY)
    victim_dir = putdir(outside / "d", now - 90 * DAY)
    (root / "paste-cache").symlink_to(outside)  # the whole store dir is a symlink
    put(root / "plans" / "real.md", now - 90 * DAY)
    (root / "plans" / "link.md").symlink_to(victim)
    (root / "image-cache").mkdir()
    (root / "image-cache" / "s1").symlink_to(victim_dir)
    os.utime(root / "plans" / "link.md", (now - 90 * DAY,) * 2, follow_symlinks=False)
    p, doc = run_json(["sweep", "--json", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert p.returncode == 0, p.stderr
    assert victim.exists() and (victim_dir / "f.bin").exists()
    assert (root / "plans" / "link.md").is_symlink() and (root / "image-cache" / "s1").is_symlink()
    assert not (root / "plans" / "real.md").exists()
    notes = [n for d in doc["stores"] for n in d["notes"]]
    assert "paste-cache (symlink, not followed)" in notes and "plans/link.md (symlink, not followed)" in notes


def test_a_store_dir_swapped_for_a_symlink_after_the_scan_is_not_followed(root, jenv, now, tmp_path):
    outside = tmp_path / "outside"
    victim = put(outside / "a.txt", now - 90 * DAY)
    put(root / "paste-cache" / "a.txt", now - 90 * DAY)
    hold = tmp_path / "hold"
    hold.mkdir()
    env = {**jenv, "JANITOR_TEST_PAUSE_AT": f"after-plan:{hold}"}
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "claude_janitor", "sweep", "--json", "--claude-dir", str(root), "--now", str(now)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_for(lambda: (hold / "after-plan.reached").exists(), timeout=60)
        os.rename(root / "paste-cache", root / "paste-cache.moved")
        (root / "paste-cache").symlink_to(outside)
        (hold / "after-plan.go").touch()
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert victim.exists() and (root / "paste-cache.moved" / "a.txt").exists()
    (sd,) = [d for d in json.loads(out)["stores"] if d["store"] == "paste-cache"]
    assert sd["removed"] == 0 and sd["failed"] + sd["kept_changed"] == 1
    assert proc.returncode in (0, 1), err


def test_dry_run_and_the_guard_change_nothing(root, jenv, now):
    old = put(root / "paste-cache" / "a.txt", now - 40 * DAY)
    p, doc = run_json(["sweep", "--dry-run", "--json", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert p.returncode == 0 and old.exists()
    (sd,) = [d for d in doc["stores"] if d["store"] == "paste-cache"]
    assert (sd["result"], sd["removed"], sd["to_remove"]) == ("dry-run", 1, 1)
    # A clock that jumped forward expires every session: the guard refuses the run, stores included.
    for i in range(5):
        make_session(root, f"/w/{i}", now - 40 * DAY)
    p = run_cli(["sweep", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert p.returncode == 2 and "refusing" in p.stderr and old.exists()


def test_the_daemons_full_sweep_ages_the_stores(root, jenv):
    import time

    now = time.time()
    old = put(root / "paste-cache" / "a.txt", now - 40 * DAY)
    new = put(root / "paste-cache" / "b.txt", now - 1 * DAY)
    (root / "projects").mkdir()
    args = ["_daemon-full-sweep", "--claude-dir", str(root), "--now", repr(now), "--parent-pid", str(os.getpid())]
    p = run_cli(args, jenv, input="")
    assert p.returncode == 0, p.stderr
    assert not old.exists() and new.exists()
    assert [r["phase"] for r in audit_records(jenv) if r["action"] == "delete-store"] == ["intent", "result"]


def test_an_empty_project_dir_that_gets_a_file_is_kept_with_it(root, jenv, now, tmp_path):
    proj = empty(root / "projects" / "-w-new", now - 2 * H)
    hold = tmp_path / "hold"
    hold.mkdir()
    env = {**jenv, "JANITOR_TEST_PAUSE_AT": f"store-before-remove:{hold}"}
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "claude_janitor", "sweep", "--json", "--claude-dir", str(root), "--now", str(now)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_for(lambda: (hold / "store-before-remove.reached").exists(), timeout=60)
        (proj / "0c5e8a6e-4a48-4f7e-8c4c-5d2f0a7d1e11.jsonl").write_text("{}\n")  # Claude Code starts a session
        set_times(proj, now - 2 * H)  # even with the folder's mtime put back, rmdir alone never takes a file
        (hold / "store-before-remove.go").touch()
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert (proj / "0c5e8a6e-4a48-4f7e-8c4c-5d2f0a7d1e11.jsonl").exists()
    (sd,) = [d for d in json.loads(out)["stores"] if d["store"] == "project-files"]
    assert (sd["removed"], sd["kept_changed"]) == (0, 1)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_the_image_cache_of_a_running_session_is_kept(root, jenv, now):
    import subprocess
    import sys

    from claude_janitor.cache import livesessions

    sid = "0c5e8a6e-4a48-4f7e-8c4c-5d2f0a7d1e11"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (root / "sessions").mkdir()
        (root / "sessions" / f"{child.pid}.json").write_text(
            json.dumps(
                {
                    "pid": child.pid,
                    "sessionId": sid,
                    "kind": "interactive",
                    "status": "idle",
                    "procStart": livesessions.proc_start(child.pid),
                }
            )
        )
        mine = putdir(root / "image-cache" / sid, now - 5 * H)  # an idle session left open: no fresh times
        other = putdir(root / "image-cache" / "1f2e3d4c-0000-4000-8000-000000000000", now - 5 * H)
        p, doc = run_json(["sweep", "--json", "--claude-dir", str(root), "--now", str(now)], jenv)
    finally:
        child.kill()
        child.wait()
    assert p.returncode == 0, p.stderr
    assert mine.exists() and not other.exists()
    (sd,) = [d for d in doc["stores"] if d["store"] == "image-cache"]
    assert sd["kept"] == {"belongs to a session in use": 1}


def test_the_service_may_write_the_cli_logs_of_the_users_own_claude_dir(jenv, root, monkeypatch):
    from claude_janitor.config.paths import janitor_dirs
    from claude_janitor.service import manager as svc

    logs = f"-{jenv['XDG_CACHE_HOME']}/claude-cli-nodejs"
    rw = next(
        x
        for x in svc.render_systemd(svc.setup_for([root], janitor_dirs(), None))["claude-janitor.service"].splitlines()
        if x.startswith("ReadWritePaths=")
    )
    assert logs not in rw  # another Claude dir: the user's cache dir is none of its business
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(root))
    unit = svc.render_systemd(svc.setup_for([root], janitor_dirs(), None))["claude-janitor.service"]
    rw = next(x for x in unit.splitlines() if x.startswith("ReadWritePaths="))
    assert logs in rw  # ProtectHome=read-only would otherwise make every removal there fail
    # and the service knows it sweeps the user's own dir, with the same cache dir, as the shell did
    assert f"CLAUDE_CONFIG_DIR={root}" in unit and f"XDG_CACHE_HOME={jenv['XDG_CACHE_HOME']}" in unit


def test_a_running_daemon_ages_the_stores_in_its_full_sweep(root, jenv):
    import signal
    import subprocess
    import sys
    import time

    now = time.time()
    old = put(root / "shell-snapshots" / "snapshot-bash-1.sh", now - 40 * DAY)
    new = put(root / "shell-snapshots" / "snapshot-bash-2.sh", now - 1 * DAY)
    (root / "projects").mkdir()
    d = subprocess.Popen(
        [sys.executable, "-m", "claude_janitor", "daemon", "--claude-dir", str(root)],
        env=jenv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert wait_for(lambda: not old.exists() or d.poll() is not None, timeout=120)
        assert d.poll() is None and not old.exists() and new.exists()
        assert wait_for(
            lambda: [r["phase"] for r in audit_records(jenv) if r["action"] == "delete-store"] == ["intent", "result"],
            timeout=60,
        )
    finally:
        d.send_signal(signal.SIGTERM)
        try:
            out, _ = d.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            d.kill()
            out, _ = d.communicate()
    assert d.returncode == 0, out


def test_a_tmp_session_folder_goes_with_its_session_and_only_then(root, env_own, now, tmp_path):
    """claude-<uid>/<cwd>/<id>/ (started, tasks/): Claude Code removes it when it removes the transcript. The
    janitor removes it in the sweep that removes its session, checking first that the transcript is gone."""
    from tests.helpers.races import Paused

    me = Path(env_own["CLAUDE_CODE_TMPDIR"]) / f"claude-{os.getuid()}" / "-p"
    gone = make_session(root, "/p", now - 90 * DAY)
    stays = make_session(root, "/p", now - 90 * DAY)
    folders = {g.session_id: putdir(me / g.session_id, now - 2 * H) for g in (gone, stays)}
    run = Paused(["sweep", "--json", "--now", str(now)], env_own, "before-session@2", tmp_path / "hook")
    second = next(p for p in (root / "projects" / "-p").glob("*.jsonl"))  # the one not removed yet
    with open(second, "a") as f:  # written to during the sweep: that session stays, and so does its folder
        f.write('{"type":"user","message":"still here"}\n')
    p = run.release()
    assert p.returncode == 0, p.stdout + p.stderr  # a session changed since the scan is skipped, kept
    kept_id = second.stem
    assert {s["session_id"]: s["result"] for s in json.loads(p.stdout)["sessions"]}[kept_id] == "skipped"
    removed_id = gone.session_id if kept_id == stays.session_id else stays.session_id
    assert not folders[removed_id].exists() and folders[kept_id].exists()
    (sd,) = [d for d in json.loads(p.stdout)["stores"] if d["store"] == "tmp"]
    assert (sd["removed"], sd["kept_changed"]) == (1, 1), sd
