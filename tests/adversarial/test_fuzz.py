"""Bad-input fuzzing: random settings.json, TOML and transcript lines never crash the tool with a
traceback and never cause a deletion the policy did not ask for."""

from __future__ import annotations

import json
import math
import os
import tomllib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_janitor.cache.scan import scan_root
from claude_janitor.cache.transcript import read_tail
from claude_janitor.config.claude import cleanup_days, read_settings
from claude_janitor.config.janitor import RawConfig, build_policy
from claude_janitor.errors import ConfigError
from claude_janitor.model import Action, Policy
from claude_janitor.policy import decide
from tests.helpers import run_cli
from tests.helpers.cachegen import DAY, make_session, set_times
from tests.helpers.races import tree_state

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
SLOW = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
settings_docs = st.one_of(
    st.dictionaries(
        st.sampled_from(["cleanupPeriodDays", "env", "permissions", "model", "x"]), json_values, max_size=4
    ).map(json.dumps),
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


toml_values = st.one_of(
    st.text(max_size=12),
    st.integers(-5, 10**6),
    st.booleans(),
    st.floats(allow_nan=False),
    st.sampled_from(["30d", "0d", "-1d", "forever", "12h", "delete", "archive", "1y"]),
)
toml_keys = st.sampled_from(
    [
        "retention",
        "action",
        "grace",
        "keep_last",
        "retension",
        "archive_dir",
        "max_delete_count",
        "max_delete_percent",
        "sweep_interval",
        "audit_sink",
        "zzz",
    ]
)


def toml_text(d: dict, rules: list[dict]) -> str:
    def val(v):
        return json.dumps(v) if not isinstance(v, bool) else str(v).lower()

    out = [f"{k} = {val(v)}" for k, v in d.items()]
    for r in rules:
        out.append("[[rule]]")
        out += [f"{k} = {val(v)}" for k, v in r.items()]
    return "\n".join(out) + "\n"


@FUZZ
@given(
    st.dictionaries(toml_keys, toml_values, max_size=5),
    st.lists(
        st.dictionaries(
            st.sampled_from(["project", "retention", "action", "keep_last", "projet"]), toml_values, max_size=4
        ),
        max_size=3,
    ),
    st.text(max_size=40),
)
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
    st.builds(
        lambda ts, cwd: json.dumps({"timestamp": ts, "cwd": cwd}).encode(),
        st.one_of(
            st.text(max_size=30),
            st.integers(),
            st.floats(allow_nan=True),
            st.none(),
            st.sampled_from(["2020-01-01T00:00:00Z", "2999-01-01T00:00:00Z", "not a date", "2026-13-45T99:99:99Z"]),
        ),
        st.one_of(st.text(max_size=20), st.integers(), st.none()),
    ),
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
    env = dict(
        os.environ,
        XDG_CONFIG_HOME=str(top / "cfg"),
        XDG_STATE_HOME=str(top / "state"),
        XDG_DATA_HOME=str(top / "data"),
        CLAUDE_JANITOR_MANAGED_DIR=str(top / "managed"),
    )
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


# ---- untrusted input, part 2: numbers, nesting, dates and encodings no parser expected -------------------

big_ints = st.one_of(
    st.integers(),
    st.integers(min_value=10**17, max_value=10**400),
    st.integers(min_value=-(10**400), max_value=-(10**17)),
)
any_floats = st.floats(allow_nan=True, allow_infinity=True)
offsets = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(
    lambda m: f"{'+' if m >= 0 else '-'}{abs(m) // 60:02d}:{abs(m) % 60:02d}"
)
date_strings = st.one_of(
    st.builds(
        lambda y, mo, d, h, mi, off: f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:00{off}",
        st.integers(0, 9999),
        st.integers(0, 13),
        st.integers(0, 32),
        st.integers(0, 25),
        st.integers(0, 61),
        st.one_of(st.just("Z"), st.just(""), offsets),
    ),
    st.sampled_from(
        [
            "0001-01-01T00:00:00+23:59",
            "9999-12-31T23:59:59-23:59",
            "2026-02-30T00:00:00Z",
            "Z",
            "2026-01-01T00:00:00.9999999999Z",
            "1e400",
            "NaN",
            "-inf",
        ]
    ),
    st.text(max_size=80),
)
timestamp_values = st.one_of(
    big_ints,
    any_floats,
    date_strings,
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.none()),
)


def nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


def number_text(n: int | float) -> str:
    if isinstance(n, float) and n != n:
        return "NaN"
    if n in (float("inf"), float("-inf")):
        return "Infinity" if n > 0 else "-Infinity"
    return str(n) if isinstance(n, int) else repr(n)


hostile_records = st.one_of(
    st.builds(lambda v: json.dumps({"timestamp": v, "cwd": "/p"}, allow_nan=True).encode(), timestamp_values),
    st.builds(lambda n: b'{"timestamp": ' + number_text(n).encode() + b"}", st.one_of(big_ints, any_floats)),
    st.builds(
        lambda d: ('{"timestamp": "2020-01-01T00:00:00Z", "x": ' + nested(d) + "}").encode(), st.integers(1, 100_000)
    ),
    st.builds(lambda d: ('{"timestamp": ' + nested(d) + "}").encode(), st.integers(1, 50_000)),
    st.builds(
        lambda c: json.dumps({"cwd": c}).encode(),
        st.one_of(st.text(max_size=40), st.just("\x00/x"), st.just("/a\ud800")),
    ),
    st.binary(max_size=120),
    st.builds(lambda b: b'{"timestamp": "2020-01-01T00:00:00Z", "t": "' + b + b'"}', st.binary(max_size=40)),
)


@FUZZ
@given(timestamp_values)
def test_parse_timestamp_is_a_usable_time_or_none(value):
    from claude_janitor.cache.transcript import TS_MAX, parse_timestamp

    got = parse_timestamp(value)
    assert got is None or (isinstance(got, float) and math.isfinite(got) and 0 <= got <= TS_MAX)


@FUZZ
@given(st.lists(hostile_records, min_size=1, max_size=12), st.integers(0, 3))
def test_tail_reader_survives_hostile_records(body, pad_kib):
    """Whatever the last records are, the tail reader returns a usable time (or none) and a usable cwd."""
    import tempfile

    from claude_janitor.cache.transcript import TS_MAX, usable_cwd

    data = b"x" * (pad_kib * 1024) + b"\n" + b"\n".join(body) + b"\n"
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.flush()
        info = read_tail(f.fileno(), len(data))
    assert info.last_time is None or (math.isfinite(info.last_time) and 0 <= info.last_time <= TS_MAX)
    assert info.cwd is None or usable_cwd(info.cwd)


settings_bytes = st.one_of(
    settings_docs.map(lambda t: t.encode("utf-8", "surrogateescape")),
    st.builds(lambda n: b'{"cleanupPeriodDays": ' + number_text(n).encode() + b"}", st.one_of(big_ints, any_floats)),
    st.builds(lambda d: ('{"cleanupPeriodDays": 7, "x": ' + nested(d) + "}").encode(), st.integers(1, 100_000)),
    st.builds(
        lambda k, v: json.dumps({k: v}, allow_nan=True).encode(),
        st.sampled_from(["cleanupPeriodDays", "desktopSessionCleanupPeriodDays"]),
        timestamp_values,
    ),
    st.binary(max_size=200),
    st.just(b"\xef\xbb\xbf{}"),
)


@FUZZ
@given(settings_bytes)
def test_settings_layer_never_raises_and_is_a_window_or_a_reason(tmp_path_factory, raw):
    from claude_janitor.config.claude import settings_layer, window_of

    path = tmp_path_factory.mktemp("s") / "settings.json"
    path.write_bytes(raw)
    layer = settings_layer(path, "user")
    assert layer.exists
    assert (layer.error is None) or (str(path) in layer.error and "\n" not in layer.error)
    assert layer.days is None or (isinstance(layer.days, int) and layer.days >= 1)
    got = window_of([layer])
    assert isinstance(got, str) == (layer.error is not None)


@FUZZ
@given(st.one_of(settings_bytes, st.builds(lambda xs: json.dumps(xs).encode(), st.lists(st.text(max_size=40)))))
def test_pins_file_is_a_set_of_ids_or_a_clear_error(tmp_path_factory, raw):
    from claude_janitor.cache.pins import load_pins

    path = tmp_path_factory.mktemp("p") / "pins.json"
    path.write_bytes(raw)
    try:
        pins = load_pins(path)
    except ConfigError as e:
        assert "pins file" in str(e)
    else:
        assert all(isinstance(p, str) and p == p.lower().strip() for p in pins)


header_values = st.one_of(json_values, big_ints, any_floats, st.text(max_size=30))


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "format",
                "version",
                "session_id",
                "project",
                "root",
                "archived_at",
                "pieces",
                "last_activity",
                "bytes",
                "project_path",
                "reason",
                "x",
            ]
        ),
        header_values,
        max_size=8,
    ),
    st.booleans(),
)
def test_archive_header_check_is_a_header_or_archive_invalid(h, wellformed):
    from claude_janitor.archive.format import FORMAT, VERSION, ArchiveInvalid, check_header
    from claude_janitor.archive.reader import ArchiveInfo
    from claude_janitor.render.archives import render_list
    from claude_janitor.timefmt import iso

    if wellformed:
        base = {
            "format": FORMAT,
            "version": VERSION,
            "session_id": "s",
            "project": "-p",
            "root": "/r",
            "archived_at": 1.0,
            "pieces": [{"rel": "projects/-p/s.jsonl", "store": "transcript", "is_dir": False}],
        }
        h = {**base, **h}
    try:
        got = check_header(h)
    except ArchiveInvalid as e:
        assert str(e)
    else:
        assert math.isfinite(got["archived_at"]) and iso(got["archived_at"])
        info = ArchiveInfo(Path("/a/x.tar.zst"), got, None, 10)
        json.dumps(info.to_dict())
        assert render_list([info], Path("/a"), verified=False)


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["pid", "sessionId", "procStart", "kind", "status", "pidDomain"]),
        st.one_of(header_values, big_ints),
        max_size=6,
    ),
    st.one_of(big_ints.map(str), st.text(max_size=8)),
)
def test_session_record_judge_never_raises(rec, name):
    from claude_janitor.cache import livesessions

    got = livesessions.judge(rec, f"{name}.json")
    assert got is None or isinstance(got.session_id, str)


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.lists(hostile_records, min_size=1, max_size=4), min_size=1, max_size=8))
def test_cli_report_and_sweep_survive_hostile_transcripts(tmp_path_factory, bodies):
    """The real CLI: transcripts ending in hostile records never stop a report (every format) or a sweep,
    and what the sweep acts on is removed."""
    top = tmp_path_factory.mktemp("cli")
    root = top / "claude"
    now = 1_790_000_000.0
    fresh = make_session(root, "/p", now - DAY, side=False)
    for body in bodies:
        g = make_session(root, "/p", now - 90 * DAY, side=False)
        with open(g.paths[0], "ab") as f:
            f.write(b"\n".join(body) + b"\n")
        set_times(g.paths[0], now - 90 * DAY)
    env = dict(
        os.environ,
        XDG_CONFIG_HOME=str(top / "cfg"),
        XDG_STATE_HOME=str(top / "state"),
        XDG_DATA_HOME=str(top / "data"),
        CLAUDE_JANITOR_MANAGED_DIR=str(top / "managed"),
        CLAUDE_JANITOR_POLICY=str(top / "policy.toml"),
        HOME=str(top / "home"),
    )
    args = ["--claude-dir", str(root), "--now", str(now)]
    for cmd in (["report"], ["report", "--format", "markdown"]):
        p = run_cli([*cmd, *args], env)
        assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    p = run_cli(["sweep", "--json", *args], env)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert fresh.paths[0].exists()
    acted = json.loads(p.stdout)["sessions"]
    assert acted and all(s["result"] == "ok" for s in acted)  # (a valid future time keeps its session)
    left = {x.stem for x in (root / "projects" / "-p").glob("*.jsonl")}
    assert left.isdisjoint(s["session_id"] for s in acted)


title_records = st.one_of(
    hostile_records,
    st.builds(
        lambda t, c: json.dumps(
            {"type": t, "message": {"role": "user", "content": c}, "customTitle": c, "summary": c, "entrypoint": c}
        ).encode(),
        st.sampled_from(["user", "summary", "custom-title", "ai-title", "x"]),
        st.one_of(json_values, st.text(max_size=50), st.just("\x1b[31mred\x07")),
    ),
)


@FUZZ
@given(
    st.lists(title_records, min_size=1, max_size=8),
    st.lists(title_records, max_size=4),
    st.one_of(st.none(), st.binary(max_size=80), settings_bytes),
)
def test_transcript_head_tail_and_title_file_never_stop_a_scan(tmp_path_factory, head, tail, title_file):
    """The head (titles, entrypoint), the tail and custom-title.json are untrusted too: scan_root reads all
    of them for a session and never raises; whatever title comes out is one printable line."""
    root = tmp_path_factory.mktemp("t")
    sid = "abcdefab-1111-2222-3333-444455556666"
    proj = root / "projects" / "-p"
    (proj / sid).mkdir(parents=True)
    (proj / f"{sid}.jsonl").write_bytes(b"\n".join([*head, b'{"timestamp": "2020-01-01T00:00:00Z"}', *tail]))
    if title_file is not None:
        (proj / sid / "custom-title.json").write_bytes(title_file)
    res = scan_root(root)
    (s,) = [x for x in res.sessions if x.transcript is not None]
    title = getattr(s, "title", None)
    assert title is None or (isinstance(title, str) and "\n" not in title)
