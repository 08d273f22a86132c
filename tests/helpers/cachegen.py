"""Generate realistic Claude Code caches on real disk, for tests and benchmarks."""

from __future__ import annotations

import json
import os
import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path

DAY = 86400.0


def encode(cwd: str) -> str:
    return "".join(c if c.isascii() and c.isalnum() else "-" for c in cwd)


def record(
    sid: str, cwd: str, t: float, i: int, kind: str = "user", text: str = "hello", entrypoint: str | None = None
) -> dict:
    from datetime import UTC, datetime

    return {
        **({"entrypoint": entrypoint} if entrypoint else {}),
        "parentUuid": None if i == 0 else f"u{i - 1}",
        "isSidechain": False,
        "userType": "external",
        "cwd": cwd,
        "sessionId": sid,
        "version": "2.1.331",
        "gitBranch": "main",
        "type": kind,
        "uuid": f"u{i}",
        "timestamp": datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z"),
        "message": {"role": kind, "content": text},
    }


def set_times(path: Path, t: float) -> None:
    os.utime(path, (t, t), follow_symlinks=False)


@dataclass
class GenSession:
    session_id: str
    project: str
    cwd: str
    last: float
    paths: list[Path] = field(default_factory=list)


def make_session(
    root: Path,
    cwd: str,
    last: float,
    *,
    sid: str | None = None,
    records: int = 5,
    side: bool = True,
    pad: int = 0,
    rng: random.Random | None = None,
    entrypoint: str | None = None,
    prompts: list[str] | None = None,
) -> GenSession:
    """One session: transcript with ``records`` lines ending at ``last``, plus side stores. ``entrypoint``
    goes on every record (as Claude Code writes it: cli, sdk-cli, sdk-py …); ``prompts`` are the user
    records' texts, in order (default "message N")."""
    sid = sid or (str(uuid.UUID(int=rng.getrandbits(128), version=4)) if rng else str(uuid.uuid4()))
    proj = root / "projects" / encode(cwd)
    proj.mkdir(parents=True, exist_ok=True)
    g = GenSession(sid, encode(cwd), cwd, last)
    tr = proj / f"{sid}.jsonl"
    with open(tr, "w") as f:
        for i in range(records):
            t = last - (records - 1 - i) * 60
            text = "x" * pad if pad else f"message {i}"
            if prompts and i % 2 == 0 and i // 2 < len(prompts):
                text = prompts[i // 2]
            f.write(json.dumps(record(sid, cwd, t, i, "user" if i % 2 == 0 else "assistant", text, entrypoint)) + "\n")
        f.write(json.dumps({"type": "last-prompt", "sessionId": sid}) + "\n")  # no timestamp
    os.chmod(tr, 0o600)
    set_times(tr, last)
    g.paths.append(tr)
    if side:
        sdir = proj / sid / "subagents"
        sdir.mkdir(parents=True)
        (sdir / "agent-a1.jsonl").write_text(json.dumps(record(sid, cwd, last - 120, 0)) + "\n")
        (proj / sid / "tool-results").mkdir()
        (proj / sid / "tool-results" / "r1.txt").write_text("result\n")
        fh = root / "file-history" / sid
        fh.mkdir(parents=True)
        (fh / "abc@v1").write_text("old file content\n")
        se = root / "session-env" / sid
        se.mkdir(parents=True)
        tk = root / "tasks" / sid
        tk.mkdir(parents=True)
        (tk / "1.json").write_text("{}")
        td = root / "todos"
        td.mkdir(exist_ok=True)
        (td / f"{sid}-agent-{sid}.json").write_text("[]")
        dbg = root / "debug"
        dbg.mkdir(exist_ok=True)
        (dbg / f"{sid}.txt").write_text("debug line\n")
        for p in [proj / sid, fh, se, tk, td / f"{sid}-agent-{sid}.json", dbg / f"{sid}.txt"]:
            g.paths.append(p)
        for p in sorted([*proj.joinpath(sid).rglob("*"), *fh.rglob("*"), *tk.rglob("*")], reverse=True):
            set_times(p, last - 60)
        for p in g.paths[1:]:
            set_times(p, last - 60)
    return g


# How sessions were started, as Claude Code marks it (`entrypoint`): mostly interactive, some `claude -p`
# runs from scripts and CI, SDK apps. Not the desktop app: Claude Code's own cleanup exempts desktop
# sessions, which would change the default decisions the tests built on make_cache expect.
ENTRYPOINTS = ("cli", "sdk-cli", "cli", "sdk-cli", "sdk-py", "cli", "sdk-ts")
PROMPTS = (
    "Fix the flaky test in tests/test_api.py",
    "Summarise yesterday's CI failures",
    "Why does the login page 500 on Safari?",
    "nightly: update the changelog from merged PRs",
    "Refactor the billing module into smaller functions",
    "Review this diff for security issues",
    "Write a migration that adds an index on orders.created_at",
    "triage new issues and label them",
    "Explain how the cache invalidation works here",
)


def make_cache(
    root: Path,
    now: float,
    *,
    projects: int = 6,
    per_project: int = 8,
    seed: int = 1,
    max_age_days: float = 120,
    side: bool = True,
    extras: bool = True,
) -> list[GenSession]:
    """A cache with many projects and sessions of many ages, side stores, and the odd hostile entry."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for p in range(projects):
        cwd = f"/home/dev/src/project-{p}" if p % 3 else f"/home/dev/work/client {p}"
        for _ in range(per_project):
            age = rng.uniform(0, max_age_days) * DAY
            n = len(out)  # entrypoint and prompt by position: the rng's sequence (ages, ids) stays as it was
            out.append(
                make_session(
                    root,
                    cwd,
                    now - age,
                    side=side,
                    rng=rng,
                    entrypoint=ENTRYPOINTS[n % 7],
                    prompts=[PROMPTS[n % len(PROMPTS)]],
                )
            )
            if side and len(out) % 4 == 1:  # what compaction / remote sessions leave beside a transcript
                g = out[-1]
                for suffix in (".precompact.json", ".ccr-tip.json"):
                    f = root / "projects" / g.project / f"{g.session_id}{suffix}"
                    f.write_text("{}")
                    set_times(f, g.last - 60)
                    g.paths.append(f)
    if extras:
        (root / "history.jsonl").write_text(json.dumps({"display": "hi", "timestamp": 1}) + "\n")
        mem = root / "projects" / encode("/home/dev/src/project-1") / "memory"
        mem.mkdir(parents=True, exist_ok=True)
        (mem / "MEMORY.md").write_text("remember\n")
        set_times(mem / "MEMORY.md", now - 400 * DAY)
        (root / "projects" / "README.txt").write_text("not a project\n")
        (root / "shell-snapshots").mkdir(exist_ok=True)
        (root / "shell-snapshots" / "snapshot-bash-1.sh").write_text("export A=1\n")
    return out
