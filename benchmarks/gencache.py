"""Generate large, realistic Claude Code caches fast (10k–100k sessions, ~1M files) for the benchmarks.

Same layout as tests/helpers/cachegen.py (whose record format it reuses), but written with raw os calls and
one shared transcript template, so 100k sessions with all their side stores take about a minute:

  projects/<enc cwd>/<sid>.jsonl                 transcript (template body + session-specific tail)
  projects/<enc cwd>/<sid>/subagents/agent-*.jsonl, tool-results/*.txt
  file-history/<sid>/<hash>@v1, @v2              session-env/<sid>/        tasks/<sid>/1.json
  todos/<sid>-agent-<sid>.json                   debug/<sid>.txt
  plus shell-snapshots/, paste-cache/, image-cache/, plans/, history.jsonl and auto-memory.

Records carry ``"entrypoint": "cli"`` as Claude Code 2.1's do. Every file's mtime matches its session's last
activity (side files a minute earlier), and session ages are spread uniformly over ``max_age_days``, so
``find -mtime +N`` and ``janitor --older-than Nd`` select the same sessions. A few transcripts are large
(``big``: 10 MB each, ``huge``: 100 MB each).

    python benchmarks/gencache.py DIR --sessions 10000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.helpers.cachegen import encode  # noqa: E402
from tests.helpers.cachegen import record as _bare_record  # noqa: E402


def record(*args: object, **kw: object) -> dict:
    """A transcript record as Claude Code 2.1 writes it: with the run's ``entrypoint`` on every record
    (what the janitor reads for a session's kind and Claude Code's desktop exemption)."""
    rec = _bare_record(*args, **kw)  # type: ignore[arg-type]
    return {"entrypoint": "cli", **rec} if rec.get("type") in ("user", "assistant") else rec


DAY = 86400.0
O_NEW = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC


def _write(path: str, data: bytes, t_ns: int, mode: int = 0o644) -> None:
    fd = os.open(path, O_NEW, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.utime(path, ns=(t_ns, t_ns))


def _template(records: int, pad: int) -> bytes:
    """A transcript body shared by every session (its timestamps are old; the tail carries the real one)."""
    sid = "00000000-0000-4000-8000-000000000000"
    lines = []
    for i in range(records):
        rec = record(
            sid,
            "/home/dev/src/template",
            1_600_000_000 + i * 60,
            i,
            "user" if i % 2 == 0 else "assistant",
            ("lorem ipsum " * (pad // 12 + 1))[:pad],
        )
        lines.append(json.dumps(rec))
    return ("\n".join(lines) + "\n").encode()


def _tail(sid: str, cwd: str, last: float) -> bytes:
    recs = [
        record(sid, cwd, last - 60, 1000, "user", "last question"),
        record(sid, cwd, last, 1001, "assistant", "last answer"),
        {"type": "last-prompt", "sessionId": sid},
    ]  # no timestamp, as Claude Code writes it
    return ("\n".join(json.dumps(r) for r in recs) + "\n").encode()


def _big_body(target: int) -> bytes:
    block = _template(200, 4000)
    reps = max(1, target // len(block))
    return block * reps


def generate(
    root: Path,
    *,
    sessions: int,
    now: float | None = None,
    seed: int = 7,
    max_age_days: float = 120,
    per_project: int = 500,
    big: int = 0,
    huge: int = 0,
    side: bool = True,
    quiet: bool = False,
) -> dict:
    """Write the cache under ``root`` (must not exist). Returns counts (sessions, files, dirs, bytes)."""
    now = time.time() if now is None else now
    rng = random.Random(seed)
    root.mkdir(parents=True)
    r = str(root)
    for d in (
        "projects",
        "file-history",
        "session-env",
        "tasks",
        "todos",
        "debug",
        "shell-snapshots",
        "paste-cache",
        "image-cache",
        "plans",
    ):
        os.mkdir(os.path.join(r, d))
    templates = [_template(n, pad) for n, pad in ((6, 80), (20, 300), (40, 900), (80, 2000))]
    weights = [40, 35, 20, 5]
    files = dirs = total = 0
    nproj = max(1, sessions // per_project)
    cwds = [f"/home/dev/src/project-{p}" if p % 4 else f"/home/dev/work/client {p}/app" for p in range(nproj)]
    for c in cwds:
        os.mkdir(os.path.join(r, "projects", encode(c)))
        dirs += 1
    big_body = _big_body(10 * 1024 * 1024) if big else b""
    huge_body = _big_body(100 * 1024 * 1024) if huge else b""
    fh_payload = b"previous version of a source file\n" * 40
    started = time.monotonic()
    for i in range(sessions):
        cwd = cwds[i % nproj]
        sid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        last = now - rng.uniform(0, max_age_days) * DAY
        t = int(last * 1e9)
        ts = t - 60 * 10**9
        proj = os.path.join(r, "projects", encode(cwd))
        if i < huge:
            body = huge_body
        elif i < huge + big:
            body = big_body
        else:
            body = rng.choices(templates, weights)[0]
        data = body + _tail(sid, cwd, last)
        _write(os.path.join(proj, sid + ".jsonl"), data, t, 0o600)
        files += 1
        total += len(data)
        if not side:
            continue
        sdir = os.path.join(proj, sid)
        os.mkdir(sdir)
        os.mkdir(os.path.join(sdir, "subagents"))
        os.mkdir(os.path.join(sdir, "tool-results"))
        agent = json.dumps(record(sid, cwd, last - 120, 0, "user", "subagent task")).encode() + b"\n"
        _write(os.path.join(sdir, "subagents", "agent-a1.jsonl"), agent, ts, 0o600)
        _write(os.path.join(sdir, "tool-results", "toolu_01.txt"), b"command output\n" * 20, ts)
        for sub in ("subagents", "tool-results"):
            os.utime(os.path.join(sdir, sub), ns=(ts, ts))
        os.utime(sdir, ns=(ts, ts))
        fh = os.path.join(r, "file-history", sid)
        os.mkdir(fh)
        _write(os.path.join(fh, "3f2a9c@v1"), fh_payload, ts)
        _write(os.path.join(fh, "3f2a9c@v2"), fh_payload, ts)
        os.utime(fh, ns=(ts, ts))
        se = os.path.join(r, "session-env", sid)
        os.mkdir(se)
        os.utime(se, ns=(ts, ts))
        tk = os.path.join(r, "tasks", sid)
        os.mkdir(tk)
        _write(os.path.join(tk, "1.json"), b'{"id":"1","subject":"task","status":"completed"}', ts)
        os.utime(tk, ns=(ts, ts))
        _write(os.path.join(r, "todos", f"{sid}-agent-{sid}.json"), b"[]", ts)
        _write(os.path.join(r, "debug", f"{sid}.txt"), b"[DEBUG] startup\n" * 30, ts, 0o600)
        files += 7
        dirs += 6
        total += len(agent) + 300 + 2 * len(fh_payload) + 48 + 2 + 480
        if i % 50 == 0:
            _write(os.path.join(r, "shell-snapshots", f"snapshot-bash-{i}.sh"), b"export A=1\n" * 100, ts)
            _write(os.path.join(r, "paste-cache", f"{i:08x}.txt"), b"pasted text\n" * 200, ts)
            _write(os.path.join(r, "image-cache", f"{i:08x}.png"), b"\x89PNG" + b"\0" * 20000, ts)
            files += 3
            total += 1100 + 2400 + 20004
        if not quiet and i and i % 20000 == 0:
            rate = i / (time.monotonic() - started)
            print(f"  {i} sessions ({rate:.0f}/s)", file=sys.stderr)
    _write(
        os.path.join(r, "history.jsonl"),
        b"".join(
            json.dumps(
                {"display": "hi", "timestamp": int(now * 1000) - k, "project": cwds[0], "sessionId": "x"}
            ).encode()
            + b"\n"
            for k in range(1000)
        ),
        int(now * 1e9),
    )
    mem = os.path.join(r, "projects", encode(cwds[0]), "memory")
    os.mkdir(mem)
    _write(os.path.join(mem, "MEMORY.md"), b"remember this\n", int((now - 400 * DAY) * 1e9))
    _write(os.path.join(r, "plans", "plan-1.md"), b"# plan\n", int(now * 1e9))
    _write(os.path.join(r, "settings.json"), b"{}\n", int(now * 1e9))
    return {"sessions": sessions, "files": files + 5, "dirs": dirs, "bytes": total, "now": now}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", type=Path)
    ap.add_argument("--sessions", type=int, default=10000)
    ap.add_argument("--big", type=int, default=0, help="10 MB transcripts")
    ap.add_argument("--huge", type=int, default=0, help="100 MB transcripts")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    t0 = time.monotonic()
    info = generate(a.root, sessions=a.sessions, big=a.big, huge=a.huge, seed=a.seed)
    print(json.dumps({**info, "seconds": round(time.monotonic() - t0, 1)}))


if __name__ == "__main__":
    main()
