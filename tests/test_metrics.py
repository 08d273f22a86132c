"""metrics_file (issue 15 item 5): Prometheus text after every sweep, for node_exporter's textfile collector.
Real files, the real CLI and a real daemon process."""

from __future__ import annotations

import os
import re
import signal
import stat
import time
from pathlib import Path

from tests.helpers import run_cli, wait_for, write_config
from tests.helpers.cachegen import DAY, make_session
from tests.helpers.daemonproc import Daemon


def parse(text: str) -> dict[str, float]:
    """name{labels} → value; every line is a comment or a sample (the exposition format)."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"# (HELP|TYPE) claude_janitor_\w+ ", line), line
            continue
        m = re.fullmatch(r'(claude_janitor_\w+(?:\{(?:\w+="(?:[^"\\]|\\.)*",?)*\})?) (-?[0-9.e+]+)', line)
        assert m, line
        out[m.group(1)] = float(m.group(2))
    return out


def test_a_sweep_writes_metrics_and_a_failed_one_keeps_the_last_success(root, jenv, now, tmp_path):
    prom = tmp_path / "textfile" / "claude_janitor.prom"
    prom.parent.mkdir()
    write_config(jenv, f'metrics_file = "{prom}"\nmax_delete_count = 2\n')
    old = [make_session(root, "/home/dev/app", now - 60 * DAY) for _ in range(2)]
    make_session(root, "/home/dev/app", now - 1 * DAY)
    removed = sum(
        sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size
        for g in old
        for p in g.paths
    )
    t0 = time.time()
    p = run_cli(["sweep", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert p.returncode == 0, p.stderr
    m = parse(prom.read_text())
    assert stat.S_IMODE(prom.stat().st_mode) == 0o644  # node_exporter runs as another user
    assert m['claude_janitor_sessions{decision="delete"}'] == 2 and m['claude_janitor_sessions{decision="keep"}'] == 1
    assert m['claude_janitor_sessions_acted{result="ok"}'] == 2
    assert m["claude_janitor_last_sweep_reclaimed_bytes"] == removed
    assert m['claude_janitor_last_sweep_success{kind="oneshot"}'] == 1 and m["claude_janitor_guard_tripped"] == 0
    assert t0 - 1 <= m["claude_janitor_last_success_timestamp_seconds"] <= time.time() + 1
    assert m[f'claude_janitor_store_bytes{{root="{root}",store="sessions"}}'] > 0
    assert "claude_janitor_daemon_up" not in prom.read_text()  # a one-shot sweep says nothing of a daemon
    first = m["claude_janitor_last_success_timestamp_seconds"]

    # The guard refuses the next one (3 > max_delete_count 2): a failed sweep, the last success kept
    for _ in range(3):
        make_session(root, "/home/dev/app", now - 60 * DAY)
    p = run_cli(["sweep", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert p.returncode == 2 and "max_delete_count" in p.stderr
    m = parse(prom.read_text())
    assert m["claude_janitor_guard_tripped"] == 1 and m['claude_janitor_last_sweep_success{kind="oneshot"}'] == 0
    assert m["claude_janitor_last_success_timestamp_seconds"] == first
    assert m["claude_janitor_last_sweep_timestamp_seconds"] >= first
    assert not [n for n in os.listdir(prom.parent) if n != prom.name]  # no temp file left beside it

    # a dry run writes nothing; an unwritable place is a warning, not a failed sweep
    before = prom.read_text()
    run_cli(["sweep", "--dry-run", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert prom.read_text() == before
    write_config(jenv, f'metrics_file = "{tmp_path}/no/such/dir/x.prom"\n')
    p = run_cli(["sweep", "--force", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert p.returncode == 0 and "warning: metrics file" in p.stderr
    write_config(jenv, "metrics_file = 5\n")
    p = run_cli(["sweep", "--claude-dir", str(root), "--now", str(now)], jenv)
    assert p.returncode == 2 and "metrics_file: must be a path string" in p.stderr


def test_metrics_hold_no_session_ids_or_titles(root, jenv, now, tmp_path):
    prom = tmp_path / "m.prom"
    write_config(jenv, f'metrics_file = "{prom}"\n')
    g = make_session(root, "/home/dev/app", now - 60 * DAY, prompts=["SECRET prompt"])
    assert run_cli(["sweep", "--claude-dir", str(root), "--now", str(now)], jenv).returncode == 0
    text = prom.read_text()
    assert g.session_id not in text and "SECRET" not in text and "/home/dev/app" not in text


def test_the_daemon_writes_metrics_with_daemon_up(root, jenv, tmp_path):
    prom = tmp_path / "d.prom"
    write_config(jenv, f'metrics_file = "{prom}"\nretention = "3s"\ngrace = "0s"\nsweep_interval = "1d"\n')
    (root / "projects").mkdir(parents=True, exist_ok=True)
    make_session(root, "/w/old", time.time() - 10 * DAY)
    d = Daemon(root, jenv, tmp_path)
    try:
        assert wait_for(lambda: prom.exists() and "claude_janitor_daemon_up 1" in prom.read_text(), timeout=60), (
            d.output()
        )
        m = parse(prom.read_text())
        assert m['claude_janitor_last_sweep_success{kind="full"}'] == 1
        assert m['claude_janitor_sessions_acted{result="ok"}'] == 1
        assert m["claude_janitor_last_sweep_reclaimed_bytes"] > 0
        # a new session expires by a wake-up: an incremental sweep's numbers
        make_session(root, "/w/new", time.time())
        assert wait_for(lambda: 'kind="incremental"' in prom.read_text(), timeout=30), d.output()
        assert d.stop(signal.SIGTERM) == 0, d.output()
        m = parse(prom.read_text())
        assert m["claude_janitor_daemon_up"] == 0 and m['claude_janitor_last_sweep_success{kind="incremental"}'] == 1
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
        d.log.close()


def test_readme_shows_a_scrape_example_and_an_alert():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert "--collector.textfile.directory" in readme and "claude_janitor_last_success_timestamp_seconds" in readme
    assert "2 * 86400" in readme or "172800" in readme
