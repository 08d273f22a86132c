"""Config and Claude settings → Policy; every bad input is a clear ConfigError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from claude_janitor.config.claude import claude_root_window, project_window
from claude_janitor.config.janitor import RawConfig, build_policy, read_toml
from claude_janitor.durations import DurationError, parse_duration
from claude_janitor.errors import ConfigError
from claude_janitor.model import Action, Window

DAY = 86400.0


@pytest.mark.parametrize(
    "text,secs",
    [("30d", 30 * DAY), ("12h", 12 * 3600.0), ("90m", 5400.0), ("45s", 45.0), ("2w", 14 * DAY), (" 1.5d ", 1.5 * DAY)],
)
def test_durations(text, secs):
    assert parse_duration(text) == secs


@pytest.mark.parametrize("bad", ["0d", "-3d", "30", "d", "3 days", "", "1y", 30, True, None])
def test_bad_durations_refused(bad):
    with pytest.raises(DurationError):
        parse_duration(bad)


def test_forever():
    assert parse_duration("forever") is None
    with pytest.raises(DurationError):
        parse_duration("forever", allow_forever=False)


def policy(text: str, tmp_path: Path, **kw):
    p = tmp_path / "c.toml"
    p.write_text(text)
    return build_policy(read_toml(p, required=True), **kw)


def test_full_config(tmp_path: Path):
    pol = policy(
        """
retention = "14d"
action = "delete"
grace = "2h"
keep_last = 3
[[rule]]
project = "~/work/*"
retention = "forever"
[[rule]]
project = "/tmp/*"
retention = "1d"
action = "archive"
keep_last = 0
""",
        tmp_path,
    )
    assert pol.retention == Window(14 * DAY, f"janitor config {tmp_path / 'c.toml'}")
    assert pol.grace == 7200 and pol.keep_last == 3 and pol.action is Action.DELETE
    assert [r.pattern for r in pol.rules] == ["~/work/*", "/tmp/*"]
    assert pol.rules[0].retention is None and pol.rules[0].retention_set
    assert pol.rules[1].action is Action.ARCHIVE and pol.rules[1].keep_last == 0


def test_unknown_key_suggests_the_near_name(tmp_path: Path):
    with pytest.raises(ConfigError, match="did you mean 'retention'"):
        policy('retension = "3d"', tmp_path)
    with pytest.raises(ConfigError, match="rule\\[1\\]: unknown key 'projet'.*did you mean 'project'"):
        policy('[[rule]]\nprojet = "x"\nproject = "y"', tmp_path)


def test_all_problems_reported_at_once(tmp_path: Path):
    with pytest.raises(ConfigError) as e:
        policy('retention = "0d"\naction = "shred"\ngrace = "soon"\nkeep_last = -1', tmp_path)
    msg = str(e.value)
    assert "4 problems" in msg
    for key in ("retention", "action", "grace", "keep_last"):
        assert key in msg


def test_broken_toml_and_missing_explicit_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="invalid TOML"):
        policy("retention = ", tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        read_toml(tmp_path / "nope.toml", required=True)
    assert read_toml(tmp_path / "nope.toml", required=False).data == {}


def test_older_than_overrides_default_and_is_validated(tmp_path: Path):
    pol = build_policy(RawConfig(None, {"retention": "30d"}), older_than="2d")
    assert pol.retention == Window(2 * DAY, "--older-than")
    for bad in ("0d", "-1d", "forever", "soon"):
        with pytest.raises(ConfigError, match="--older-than"):
            build_policy(RawConfig(None, {}), older_than=bad)


def test_claude_window_user_then_managed_wins(tmp_path: Path, jenv):
    root = tmp_path / "claude"
    root.mkdir()
    assert claude_root_window(root).seconds == 30 * DAY
    (root / "settings.json").write_text(json.dumps({"cleanupPeriodDays": 7}))
    w = claude_root_window(root)
    assert w.seconds == 7 * DAY and "settings.json" in w.source
    managed = Path(jenv["CLAUDE_JANITOR_MANAGED_DIR"])
    (managed / "managed-settings.d").mkdir(parents=True)
    (managed / "managed-settings.json").write_text(json.dumps({"cleanupPeriodDays": 90}))
    assert claude_root_window(root).seconds == 90 * DAY
    (managed / "managed-settings.d" / "10-org.json").write_text(json.dumps({"cleanupPeriodDays": 60}))
    w = claude_root_window(root)
    assert w.seconds == 60 * DAY and "managed" in w.source and "10-org.json" in w.source


def test_project_settings_apply_to_project_but_managed_still_wins(tmp_path: Path, jenv):
    proj = tmp_path / "proj"
    (proj / ".claude").mkdir(parents=True)
    (proj / ".claude" / "settings.json").write_text(json.dumps({"cleanupPeriodDays": 3}))
    base = Window(30 * DAY, "user")
    assert project_window(base, str(proj)).seconds == 3 * DAY
    (proj / ".claude" / "settings.local.json").write_text(json.dumps({"cleanupPeriodDays": 5}))
    assert project_window(base, str(proj)).seconds == 5 * DAY
    managed = Path(jenv["CLAUDE_JANITOR_MANAGED_DIR"])
    managed.mkdir()
    (managed / "managed-settings.json").write_text(json.dumps({"cleanupPeriodDays": 45}))
    assert project_window(base, str(proj)).seconds == 45 * DAY


@pytest.mark.parametrize(
    "content,msg",
    [
        ("{", "invalid JSON"),
        ("[]", "JSON object"),
        ('{"cleanupPeriodDays": 0}', "≥ 1"),
        ('{"cleanupPeriodDays": -4}', "≥ 1"),
        ('{"cleanupPeriodDays": "7"}', "whole number"),
        ('{"cleanupPeriodDays": 2.5}', "whole number"),
    ],
)
def test_broken_settings_refused(tmp_path: Path, jenv, content, msg):
    root = tmp_path / "claude"
    root.mkdir()
    (root / "settings.json").write_text(content)
    with pytest.raises(ConfigError, match=msg):
        claude_root_window(root)
