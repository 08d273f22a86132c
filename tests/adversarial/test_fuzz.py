"""Bad-input fuzzing: random settings.json, TOML and transcript lines never crash the tool with a
traceback and never cause a deletion the policy did not ask for."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

from cachegen import DAY, make_session, set_times
from conftest import run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from janitor.cache import read_tail, scan_root
from janitor.config import RawConfig, build_policy, cleanup_days, read_settings
from janitor.model import Action, ConfigError, Policy
from janitor.policy import decide

from .helpers import tree_state

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
SLOW = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12)
settings_docs = st.one_of(
    st.dictionaries(st.sampled_from(["cleanupPeriodDays", "env", "permissions", "model", "x"]), json_values,
                    max_size=4).map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=60),
    st.binary(max_size=60).map(lambda b: b.decode("latin-1")),
)


@FUZZ
@given(settings_docs)
def test_random_settings_never_crash(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("s") / "settings.json"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    try:
        days = cleanup_days(read_settings(path), path)
    except ConfigError as e:
        assert str(e).startswith("settings file")
    else:
        assert days is None or (isinstance(days, int) and days >= 1)


toml_values = st.one_of(st.text(max_size=12), st.integers(-5, 10**6), st.booleans(), st.floats(allow_nan=False),
                        st.sampled_from(["30d", "0d", "-1d", "forever", "12h", "delete", "archive", "1y"]))
toml_keys = st.sampled_from(["retention", "action", "grace", "keep_last", "retension", "archive_dir",
                             "max_delete_count", "max_delete_percent", "sweep_interval", "audit_sink", "zzz"])


def toml_text(d: dict, rules: list[dict]) -> str:
    def val(v):
        return json.dumps(v) if not isinstance(v, bool) else str(v).lower()
    out = [f"{k} = {val(v)}" for k, v in d.items()]
    for r in rules:
        out.append("[[rule]]")
        out += [f"{k} = {val(v)}" for k, v in r.items()]
    return "\n".join(out) + "\n"


@FUZZ
@given(st.dictionaries(toml_keys, toml_values, max_size=5),
       st.lists(st.dictionaries(st.sampled_from(["project", "retention", "action", "keep_last", "projet"]),
                                toml_values, max_size=4), max_size=3),
       st.text(max_size=40))
def test_random_toml_is_a_policy_or_a_clear_error(d, rules, junk):
    for text in (toml_text(d, rules), junk):
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            continue
        try:
            pol = build_policy(RawConfig(Path("c.toml"), data))
        except ConfigError as e:
            assert str(e)
        else:
            assert isinstance(pol, Policy)
            assert pol.retention is None or pol.retention.seconds is None or pol.retention.seconds > 0


lines = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.builds(lambda ts, cwd: json.dumps({"timestamp": ts, "cwd": cwd}).encode(),
              st.one_of(st.text(max_size=30), st.integers(), st.floats(allow_nan=True), st.none(),
                        st.sampled_from(["2020-01-01T00:00:00Z", "2999-01-01T00:00:00Z", "not a date",
                                         "2026-13-45T99:99:99Z"])),
              st.one_of(st.text(max_size=20), st.integers(), st.none())),
)


@FUZZ
@given(st.lists(lines, max_size=30))
def test_random_transcript_lines_never_crash_and_recent_files_are_never_deleted(tmp_path_factory, body):
    """Whatever a transcript says, a session whose files were touched within the window is kept."""
    root = tmp_path_factory.mktemp("c")
    proj = root / "projects" / "-p"
    proj.mkdir(parents=True)
    tr = proj / "abcdefab-1111-2222-3333-444455556666.jsonl"
    tr.write_bytes(b"\n".join(body))
    now = 1_790_000_000.0
    set_times(tr, now - 2 * DAY)
    fd = os.open(tr, os.O_RDONLY)
    try:
        read_tail(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)
    res = scan_root(root)
    plan = decide(res.sessions, Policy(), now)
    assert [d.action for d in plan.decisions] == [Action.KEEP]


@SLOW
@given(settings_docs, st.dictionaries(toml_keys, toml_values, max_size=4))
def test_cli_with_random_settings_and_config(tmp_path_factory, settings_text, cfg):
    """The real CLI: exit 0 or 2, never a traceback; a run that refuses changes nothing; a run that
    proceeds deletes only what the same run's dry run planned."""
    top = tmp_path_factory.mktemp("cli")
    root = top / "claude"
    now = 1_790_000_000.0
    made = {make_session(root, "/p", now - age * DAY, side=age % 20 == 0).session_id for age in (1, 10, 40, 100)}
    (root / "settings.json").write_text(settings_text, encoding="utf-8", errors="surrogateescape")
    env = dict(os.environ, XDG_CONFIG_HOME=str(top / "cfg"), XDG_STATE_HOME=str(top / "state"),
               XDG_DATA_HOME=str(top / "data"), CLAUDE_JANITOR_MANAGED_DIR=str(top / "managed"))
    cfgfile = top / "janitor.toml"
    cfgfile.write_text(toml_text(cfg, []))
    args = ["--claude-dir", str(root), "--config", str(cfgfile), "--now", str(now)]
    dry = run_cli(["sweep", "--dry-run", "--json", *args], env)
    assert dry.returncode in (0, 2) and "Traceback" not in dry.stderr, dry.stderr
    before = tree_state(root)
    real = run_cli(["sweep", "--json", *args], env)
    assert real.returncode in (0, 2) and "Traceback" not in real.stderr, real.stderr
    if real.returncode == 2 or dry.returncode == 2:
        assert real.returncode == dry.returncode
        assert tree_state(root) == before
        assert len(real.stderr.strip().splitlines()) <= 12
        return
    planned = {s["session_id"] for s in json.loads(dry.stdout)["sessions"]}
    done = {s["session_id"] for s in json.loads(real.stdout)["sessions"] if s["result"] == "ok"}
    assert done <= planned
    remaining = {p.stem for p in (root / "projects" / "-p").glob("*.jsonl")}
    assert remaining == made - done  # exactly what was done is gone; everything else is still there
