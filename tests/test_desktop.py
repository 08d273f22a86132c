"""Claude Code's desktop exemption, as the janitor's default follows it (real files, the real CLI): desktop
sessions are kept, or capped by desktopSessionCleanupPeriodDays; managed cleanupPeriodDays turns it off;
a release marker ends it; the janitor's own windows apply but the report says so."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.helpers import run_json
from tests.helpers.cachegen import DAY, record, set_times

CWD = "/home/dev/app"
ENC = "-home-dev-app"


def session(
    root: Path,
    sid: str,
    age: float,
    now: float,
    *,
    entrypoint: str = "cli",
    marker: tuple[str, float] | None = None,
    empty: bool = False,
) -> Path:
    proj = root / "projects" / ENC
    proj.mkdir(parents=True, exist_ok=True)
    tr = proj / f"{sid}.jsonl"
    t = now - age
    if empty:
        tr.write_text("")
    else:
        tr.write_text(
            "".join(json.dumps({**record(sid, CWD, t - 60 + i, i), "entrypoint": entrypoint}) + "\n" for i in range(3))
        )
    set_times(tr, t)
    if marker:
        m = proj / f"{sid}.desktop-released.json"
        m.write_text(json.dumps({"reason": marker[0]}))
        set_times(m, now - marker[1])
    return tr


def sid(n: int) -> str:
    return f"{n:08d}-0000-4000-8000-000000000000"


def decisions(root: Path, jenv: dict, now: float, *extra: str) -> dict[str, tuple[str, str]]:
    p, rep = run_json(["report", "--format", "json", "--claude-dir", str(root), "--now", str(now), *extra], jenv)
    assert p.returncode == 0, p.stderr
    return {s["session_id"]: (s["decision"], s["reason"]) for s in rep["sessions"]}


def test_desktop_sessions_follow_claude_codes_rule(root, jenv, now):
    session(root, sid(1), 60 * DAY, now, entrypoint="claude-desktop")
    session(root, sid(2), 60 * DAY, now)  # cli
    session(root, sid(3), 60 * DAY, now, entrypoint="local-agent")
    session(root, sid(4), 60 * DAY, now, entrypoint="claude-desktop", marker=("delete", 60 * DAY))
    session(root, sid(5), 60 * DAY, now, marker=("archive", 2 * DAY))  # released for archiving: a grace
    session(root, sid(6), 60 * DAY, now, marker=("archive", 40 * DAY))  # its grace is over
    session(root, sid(7), 60 * DAY, now, empty=True)
    d = decisions(root, jenv, now)
    assert d[sid(1)] == (
        "keep",
        "retention forever (Claude Code keeps desktop sessions: entrypoint "
        "claude-desktop; desktopSessionCleanupPeriodDays not set: no ceiling)",
    )
    assert d[sid(2)][0] == "delete"
    assert d[sid(3)][0] == "keep" and "entrypoint local-agent" in d[sid(3)][1]
    assert d[sid(4)][0] == "delete"
    assert d[sid(5)][0] == "keep" and "released by the desktop app" in d[sid(5)][1]
    assert d[sid(6)][0] == "delete"
    assert d[sid(7)][0] == "keep" and "empty transcript" in d[sid(7)][1]

    # The janitor's own window decides, and says what Claude Code would do.
    d = decisions(root, jenv, now, "--older-than", "20d")
    assert d[sid(1)][0] == "delete" and "a desktop session (entrypoint claude-desktop)" in d[sid(1)][1]
    assert "Claude Code's own cleanup would keep it" in d[sid(1)][1]


def test_the_ceiling_and_managed_settings(root, jenv, now):
    session(root, sid(1), 60 * DAY, now, entrypoint="claude-desktop")
    session(root, sid(2), 40 * DAY, now, entrypoint="claude-desktop")
    (root / "settings.json").write_text(json.dumps({"desktopSessionCleanupPeriodDays": 45}))
    d = decisions(root, jenv, now)
    assert d[sid(1)][0] == "delete" and "desktop-session ceiling" in d[sid(1)][1]
    assert d[sid(2)][0] == "keep" and "within retention 45d" in d[sid(2)][1]
    # a ceiling below cleanupPeriodDays: the longer of the two
    (root / "settings.json").write_text(json.dumps({"desktopSessionCleanupPeriodDays": 10}))
    d = decisions(root, jenv, now)
    assert d[sid(2)][0] == "delete" and "retention 30d" in d[sid(2)][1]
    # 0: no ceiling (Claude Code accepts 0 here)
    (root / "settings.json").write_text(json.dumps({"desktopSessionCleanupPeriodDays": 0}))
    assert decisions(root, jenv, now)[sid(1)][0] == "keep"
    # managed settings that set cleanupPeriodDays turn the exemption off
    managed = Path(os.environ["CLAUDE_JANITOR_MANAGED_DIR"])
    managed.mkdir(parents=True)
    (managed / "managed-settings.json").write_text(json.dumps({"cleanupPeriodDays": 30}))
    d = decisions(root, jenv, now)
    assert d[sid(1)][0] == "delete" and d[sid(2)][0] == "delete"
