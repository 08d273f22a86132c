"""Session titles and kinds in every report, and rules by kind / entrypoint / replied (issue 15 items 1, 3).

Real transcripts written to tmp_path in the shape Claude Code 2.1.328 writes them (the real CLI's own runs are
in tests/claude_code/test_titles.py), the real CLI in a subprocess, time passed with --now."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from claude_janitor.cache import titles
from tests.helpers import run_cli, run_json, write_config
from tests.helpers.cachegen import DAY, encode, make_session, record


def args(root: Path, now: float, *more: str) -> list[str]:
    return [*more, "--claude-dir", str(root), "--now", str(now)]


def by_id(doc: dict) -> dict[str, dict]:
    return {s["session_id"]: s for s in doc["sessions"]}


def append(path: Path, *recs: dict | bytes) -> None:
    with open(path, "ab") as f:
        for r in recs:
            f.write(r if isinstance(r, bytes) else json.dumps(r).encode() + b"\n")


def transcript(root: Path, g) -> Path:
    return root / "projects" / g.project / f"{g.session_id}.jsonl"


def rewrite(path: Path, recs: list[dict | bytes], t: float) -> None:
    import os

    path.write_bytes(b"")
    append(path, *recs)
    os.utime(path, (t, t))


def user(sid: str, cwd: str, t: float, i: int, text, entrypoint: str = "cli", **extra) -> dict:
    r = record(sid, cwd, t, i, "user", text, entrypoint)
    r["promptId"] = f"p{i}"
    r.update(extra)
    return r


# ---- titles -------------------------------------------------------------------------------------------


def test_title_is_the_first_real_prompt_not_meta_commands_or_tool_results(root, jenv, now):
    g = make_session(root, "/home/dev/app", now - 40 * DAY, side=False)
    sid, cwd, t = g.session_id, g.cwd, now - 40 * DAY
    rewrite(
        transcript(root, g),
        [
            {"type": "queue-operation", "operation": "dequeue", "timestamp": "2026-01-01T00:00:00Z", "sessionId": sid},
            {"type": "file-history-snapshot", "messageId": "m", "snapshot": {}},
            user(
                sid,
                cwd,
                t,
                0,
                "<local-command-caveat>Caveat: The messages below were generated…</local-command-caveat>",
                isMeta=True,
            ),
            user(sid, cwd, t, 1, "<command-name>/clear</command-name><command-message>clear</command-message>"),
            user(sid, cwd, t, 2, [{"type": "tool_result", "tool_use_id": "x", "content": "ls output"}]),
            user(sid, cwd, t, 3, "sidechain task", isSidechain=True),
            user(sid, cwd, t, 4, [{"type": "text", "text": "  Port the  parser\nto Rust  "}]),
            record(sid, cwd, t, 5, "assistant", "ok", "cli"),
        ],
        t,
    )
    _, doc = run_json(args(root, now, "report", "--format", "json"), jenv)
    s = by_id(doc)[sid]
    assert s["title"] == "Port the parser to Rust" and s["title_source"] == "first prompt"
    assert s["kind"] == "interactive" and s["entrypoint"] == "cli" and s["replied"] is False


def test_claude_codes_own_title_wins_file_then_custom_then_ai_then_summary(root, jenv, now):
    t = now - 40 * DAY
    gs = [
        make_session(root, "/home/dev/app", t, side=False, entrypoint="cli", prompts=["first prompt"]) for _ in range(4)
    ]
    append(transcript(root, gs[0]), {"type": "summary", "summary": "Compacted: parser work", "leafUuid": "u1"})
    append(
        transcript(root, gs[1]),
        {"type": "summary", "summary": "older summary"},
        {"type": "ai-title", "aiTitle": "Parser port to Rust", "sessionId": gs[1].session_id},
    )
    append(
        transcript(root, gs[2]),
        {"type": "ai-title", "aiTitle": "AI title", "sessionId": gs[2].session_id},
        {"type": "custom-title", "customTitle": "old name", "sessionId": gs[2].session_id},
        {"type": "custom-title", "customTitle": "my rename", "sessionId": gs[2].session_id},
    )
    d = root / "projects" / gs[3].project / gs[3].session_id
    d.mkdir()
    (d / "custom-title.json").write_text(json.dumps({"customTitle": "from the sidecar"}))
    append(transcript(root, gs[3]), {"type": "custom-title", "customTitle": "record", "sessionId": "x"})
    _, doc = run_json(args(root, now, "report", "--format", "json"), jenv)
    got = {sid: (s["title"], s["title_source"]) for sid, s in by_id(doc).items()}
    assert got[gs[0].session_id] == ("Compacted: parser work", "summary")
    assert got[gs[1].session_id] == ("Parser port to Rust", "Claude Code's title")
    assert got[gs[2].session_id] == ("my rename", "title set in Claude Code")  # the last one wins
    assert got[gs[3].session_id] == ("from the sidecar", "title set in Claude Code")


def test_kinds_from_entrypoint(root, jenv, now):
    t = now - 2 * DAY
    eps = {
        "cli": "interactive",
        "sdk-cli": "headless",
        "sdk-py": "sdk",
        "sdk-ts": "sdk",
        "claude-desktop": "desktop",
        "claude-vscode": "interactive",
        "mcp": "headless",
        None: "unknown",
        "something-new": "unknown",
    }
    gs = {ep: make_session(root, "/home/dev/app", t, side=False, entrypoint=ep) for ep in eps}
    orphan = root / "file-history" / "0c8e8a53-9f3e-4a2b-8b59-1d2f6b0a7c11"
    orphan.mkdir(parents=True)
    (orphan / "f@v1").write_text("x")
    _, doc = run_json(args(root, now, "report", "--format", "json"), jenv)
    s = by_id(doc)
    for ep, kind in eps.items():
        assert (s[gs[ep].session_id]["kind"], s[gs[ep].session_id]["entrypoint"]) == (kind, ep)
    assert s[orphan.name]["kind"] == "side-files" and s[orphan.name]["title"] is None
    p = run_cli(args(root, now, "report"), jenv)
    assert "headless (-p)" in p.stdout and "side files only" in p.stdout and " SDK " in p.stdout


def test_titles_are_terminal_safe_cut_and_left_out_with_no_titles(root, jenv, now):
    evil = "\x1b]0;pwned\x07\x1b[2J\x1b[31mred\x1b[0m \u202eevil\u202c\r\nline two " + "long " * 100
    g = make_session(root, "/home/dev/app", now - 40 * DAY, side=False, entrypoint="cli", prompts=[evil])
    p = run_cli(args(root, now, "report"), jenv)
    assert p.returncode == 0, p.stderr
    row = next(line for line in p.stdout.splitlines() if g.session_id in line)
    assert "\x1b" not in p.stdout and "\r" not in p.stdout and "\u202e" not in p.stdout and "\x07" not in p.stdout
    assert "red evil line two long" in row and "…" in row and "long " * 20 not in row
    _, doc = run_json(args(root, now, "report", "--format", "json"), jenv)
    assert by_id(doc)[g.session_id]["title"].startswith("red evil line two long")
    assert len(by_id(doc)[g.session_id]["title"]) <= 200
    md = run_cli(args(root, now, "report", "--format", "markdown"), jenv).stdout
    assert "red evil line two" in md
    for extra in (
        ["report"],
        ["report", "--format", "markdown"],
        ["report", "--format", "json"],
        ["sweep", "--dry-run", "--json"],
    ):
        p = run_cli(args(root, now, *extra, "--no-titles"), jenv)
        assert p.returncode == 0, p.stderr
        assert "evil" not in p.stdout and "TITLE" not in p.stdout and "Title" not in p.stdout, extra
        assert g.session_id in p.stdout


def test_titles_never_reach_the_audit_log(root, jenv, now):
    g = make_session(
        root, "/home/dev/app", now - 40 * DAY, entrypoint="sdk-cli", prompts=["SECRET-PROMPT-TEXT deploy with token"]
    )
    append(transcript(root, g), {"type": "ai-title", "aiTitle": "SECRET-AI-TITLE", "sessionId": g.session_id})
    import os

    os.utime(transcript(root, g), (now - 40 * DAY, now - 40 * DAY))
    p = run_cli(args(root, now, "sweep", "--json"), jenv)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["sessions"][0]["title"] == "SECRET-AI-TITLE"  # shown to the user …
    log = Path(run_cli(["audit", "path"], jenv).stdout.strip())
    text = log.read_text()
    assert g.session_id in text  # … the deletion is recorded …
    assert "SECRET" not in text  # … but not what the session said


def test_head_read_is_bounded_and_hostile_heads_are_skipped(root, jenv, now):
    t = now - 40 * DAY
    far = make_session(root, "/home/dev/app", t, side=False)  # the first prompt only after 200 KiB of records
    sid, cwd = far.session_id, far.cwd
    rewrite(
        transcript(root, far),
        [
            *[{"type": "attachment", "entrypoint": "cli", "pad": "y" * 1000} for _ in range(200)],
            user(sid, cwd, t, 0, "too far to be read"),
            record(sid, cwd, t, 1, "assistant", "ok", "cli"),
        ],
        t,
    )
    huge = make_session(root, "/home/dev/app", t, side=False)  # one 1 MiB first prompt: cut, still a title
    rewrite(
        transcript(root, huge),
        [
            user(huge.session_id, cwd, t, 0, "Summarise this log: " + 'é\\"x' * 300_000, entrypoint="sdk-cli"),
            record(huge.session_id, cwd, t, 1, "assistant", "ok", "sdk-cli"),
        ],
        t,
    )
    bad = make_session(root, "/home/dev/app", t, side=False)
    rewrite(
        transcript(root, bad),
        [
            b"\xff\xfe garbage\n",
            b"[" * 100_000 + b"\n",
            b'{"type":"user","message":{"content":' + b"[" * 5000 + b"\n",
            json.dumps({"type": "user", "message": "not a dict", "entrypoint": 5}).encode() + b"\n",
            json.dumps({"type": "user", "message": {"content": [1, None, {"type": "text", "text": 7}]}}).encode()
            + b"\n",
            record(bad.session_id, cwd, t, 1, "assistant", "ok"),
        ],
        t,
    )
    p, doc = run_json(args(root, now, "report", "--format", "json"), jenv)
    s = by_id(doc)
    assert s[sid]["title"] is None and s[sid]["kind"] == "interactive"  # not read past the head's 8 KiB
    assert s[huge.session_id]["title"].startswith('Summarise this log: é\\"x')
    assert s[huge.session_id]["kind"] == "headless"
    assert s[bad.session_id]["title"] is None and s[bad.session_id]["kind"] == "unknown"
    assert all(x["decision"] == "delete" for x in s.values())


# ---- replied ----------------------------------------------------------------------------------------


def test_replied_is_a_human_prompt_after_the_first(root, jenv, now):
    t = now - 10 * DAY
    cwd = "/home/dev/app"
    runs = {}
    for name, later in (
        ("alone", []),
        ("resumed by script", [("sdk-cli", "next step")]),
        ("stepped in", [("cli", "no, do it differently")]),
        ("vscode", [("claude-vscode", "looks good, continue")]),
    ):
        g = make_session(root, cwd, t, side=False)
        recs = [
            user(g.session_id, cwd, t, 0, "nightly: triage", "sdk-cli"),
            record(g.session_id, cwd, t, 1, "assistant", "done", "sdk-cli"),
        ]
        for i, (ep, text) in enumerate(later, 2):
            recs += [
                user(g.session_id, cwd, t, 2 * i, text, ep),
                record(g.session_id, cwd, t, 2 * i + 1, "assistant", "ok", ep),
            ]
        rewrite(transcript(root, g), recs, t)
        runs[name] = g.session_id
    _, doc = run_json(args(root, now, "report", "--format", "json"), jenv)
    s = by_id(doc)
    assert {n: s[sid]["replied"] for n, sid in runs.items()} == {
        "alone": False,
        "resumed by script": False,
        "stepped in": True,
        "vscode": True,
    }
    assert all(s[sid]["kind"] == "headless" for sid in runs.values())
    row = next(
        line for line in run_cli(args(root, now, "report"), jenv).stdout.splitlines() if runs["stepped in"] in line
    )
    assert "headless (-p), replied" in row


# ---- rules by kind, entrypoint, replied ------------------------------------------------------------


def test_rules_by_kind_entrypoint_and_replied_with_keep_last_per_rule(root, jenv, now):
    cwd = "/home/dev/app"
    interactive = [make_session(root, cwd, now - (5 + i) * DAY, side=False, entrypoint="cli") for i in range(3)]
    headless = [make_session(root, cwd, now - (4 + i) * DAY, side=False, entrypoint="sdk-cli") for i in range(5)]
    sdk = make_session(root, cwd, now - 10 * DAY, side=False, entrypoint="sdk-py")
    other = make_session(root, "/home/dev/other", now - 10 * DAY, side=False, entrypoint="sdk-cli")
    stepped = make_session(root, cwd, now - 9 * DAY, side=False)
    rewrite(
        transcript(root, stepped),
        [
            user(stepped.session_id, cwd, now - 9 * DAY, 0, "nightly", "sdk-cli"),
            user(stepped.session_id, cwd, now - 9 * DAY, 2, "wait, also check the logs", "cli"),
        ],
        now - 9 * DAY,
    )
    write_config(
        jenv,
        """
retention = "30d"
[[rule]]
replied = true            # automated runs someone stepped into: kept like conversations
[[rule]]
kind = "headless"
project = "/home/dev/app"
retention = "3d"
keep_last = 2
[[rule]]
entrypoint = "sdk-*"
retention = "1d"
""",
    )
    p, doc = run_json(args(root, now, "report", "--format", "json"), jenv)
    s = by_id(doc)
    assert [s[g.session_id]["decision"] for g in interactive] == ["keep"] * 3
    assert [s[g.session_id]["decision"] for g in headless] == ["keep", "keep", "delete", "delete", "delete"]
    assert (
        "most recent sessions of its project under rule #2 (project /home/dev/app, kind headless) (keep_last)"
        in s[headless[0].session_id]["reason"]
    )
    assert s[headless[4].session_id]["rule"] == "rule #2 (project /home/dev/app, kind headless)"
    assert (s[sdk.session_id]["decision"], s[sdk.session_id]["rule"]) == ("delete", "rule #3 (entrypoint sdk-*)")
    # another project's headless run is not under rule #2: the entrypoint rule takes it
    assert s[other.session_id]["rule"] == "rule #3 (entrypoint sdk-*)"
    assert (s[stepped.session_id]["decision"], s[stepped.session_id]["rule"]) == ("keep", "rule #1 (replied true)")
    # the interactive sessions' default keep_last would not count the headless runs (no rule: own group)
    d = run_cli(args(root, now, "doctor"), jenv)
    assert "rule #2 (project /home/dev/app, kind headless)  retention 3d" in d.stdout, d.stdout
    assert "rule #1 (replied true)  retention (default)" in d.stdout


def test_bad_rules_are_refused_with_clear_errors_and_doctor_lists_them(root, jenv, now):
    g = make_session(root, "/home/dev/app", now - 90 * DAY, side=False, entrypoint="sdk-cli")
    write_config(
        jenv,
        """
[[rule]]
kind = "headles"
retention = "3d"
[[rule]]
retention = "1d"
[[rule]]
replied = "yes"
[[rule]]
entrypoint = 5
[[rule]]
project = "/x"
kinds = "sdk"
""",
    )
    p = run_cli(args(root, now, "sweep"), jenv)
    assert p.returncode == 2
    err = p.stderr
    assert "rule[1]: kind: must be one of 'interactive', 'headless'" in err and "did you mean 'headless'?" in err
    assert "rule[2]: says which sessions it is for with at least one of project, kind, entrypoint, replied" in err
    assert "rule[3]: replied: must be true or false, got 'yes'" in err
    assert "rule[4]: entrypoint: must be a name or glob" in err
    assert "rule[5]: unknown key 'kinds' (did you mean 'kind'?)" in err
    assert transcript(root, g).exists()  # nothing changed
    d = run_cli(args(root, now, "doctor"), jenv)
    assert d.returncode == 2 and "kind: must be one of" in d.stdout and "unknown key 'kinds'" in d.stdout


def test_sweep_applies_a_kind_rule(root, jenv, now):
    keep = make_session(root, "/home/dev/app", now - 5 * DAY, entrypoint="cli")
    gone = make_session(root, "/home/dev/app", now - 5 * DAY, entrypoint="sdk-cli")
    write_config(jenv, '[[rule]]\nkind = "headless"\nretention = "3d"\n')
    p = run_cli(args(root, now, "sweep"), jenv)
    assert p.returncode == 0, p.stderr
    assert transcript(root, keep).exists() and not transcript(root, gone).exists()
    assert not (root / "file-history" / gone.session_id).exists() and (root / "file-history" / keep.session_id).exists()


def test_cachegen_report_excerpt_shows_titles_and_kinds(root, jenv, now):
    from tests.helpers.cachegen import make_cache

    make_cache(root, now, projects=2, per_project=4, seed=5)
    p = run_cli(args(root, now, "report"), jenv)
    assert p.returncode == 0
    assert all(k in p.stdout for k in ("KIND", "TITLE", "interactive", "headless (-p)"))
    assert encode("/home/dev/work/client 0") not in p.stdout  # the real path is shown, not the dir name


@given(
    prompts=st.lists(st.tuples(st.integers(0, 6), st.sampled_from(["cli", "sdk-cli", "claude-vscode"])), max_size=12),
    first=st.sampled_from([(), ("p0", "u0"), ("p1", "u1"), ("p0", "u3")]),
)
def test_a_tail_scan_stops_at_enough_prompts_and_replied_does_not_change(prompts, first):
    """tail_scan parses no more user records once it has ENOUGH_PROMPTS ids: replied() answers as it would
    from every human prompt of the tail."""

    def line(i: int, ep: str) -> bytes:
        rec = {"type": "user", "entrypoint": ep, "uuid": f"u{i}", "promptId": f"p{i}", "message": {"content": f"q{i}"}}
        return json.dumps(rec).encode()

    tail = b"\n".join(reversed([line(i, ep) for i, ep in prompts]))  # listed newest first
    scanned = titles.tail_scan(tail, lambda ls: [json.loads(x) for x in ls])
    assert scanned.human_prompts is not None and len(scanned.human_prompts) <= titles.ENOUGH_PROMPTS
    every = {f"p{i}" for i, ep in prompts if ep != "sdk-cli"}
    want = bool(every - set(first)) if first else len(every) > 1
    assert titles.replied(titles.HeadInfo(first_prompt_ids=first), scanned) is want


def _tail_scan_line_by_line(buf: bytes, parse, cut_first: bool) -> titles.TailTitles:
    """tail_scan's rule in its plainest form: every line newest first, parsed when a byte test says it can
    hold a title, a human prompt wanted, or the newest entrypoint still wanted."""
    lines = buf.split(b"\n")
    if cut_first:
        lines = lines[1:]
    prompts: set[str] = set()
    out = titles.TailTitles(human_prompts=prompts)
    for ln in reversed(lines):
        if not ln:
            continue
        has_ep = b'"entrypoint"' in ln
        wanted = (
            any(m in ln for m in titles.TITLE_MARKS)
            or (has_ep and len(prompts) < titles.ENOUGH_PROMPTS and b'"user"' in ln)
            or (has_ep and out.last_entrypoint is None)
        )
        if not wanted:
            continue
        for rec in parse((ln,)):
            if out.last_entrypoint is None:
                out.last_entrypoint = titles._entrypoint(rec)
            t = rec.get("type")
            key = {
                "custom-title": "customTitle",
                "ai-title": "aiTitle",
                "summary": "summary",
                "last-prompt": "lastPrompt",
            }
            attr = {"custom-title": "custom", "ai-title": "ai", "summary": "summary", "last-prompt": "last_prompt"}
            if t in key:
                if getattr(out, attr[t]) is None and isinstance(rec.get(key[t]), str):
                    setattr(out, attr[t], rec[key[t]])
            elif t == "user" and titles.ENTRYPOINT_KIND.get(titles._entrypoint(rec) or "") in titles.HUMAN_KINDS:
                pid = titles._prompt_id(rec)
                if pid and titles.prompt_text(rec) is not None:
                    prompts.add(pid)
    return out


_tail_records = st.one_of(
    st.builds(
        lambda i, ep, kind: {"type": "user", "entrypoint": ep, "promptId": f"p{i}", "message": {"content": kind}},
        st.integers(0, 9),
        st.sampled_from(["cli", "sdk-cli", "claude-vscode", 7]),
        st.sampled_from(["a prompt", 'mentions "summary" in its text']),
    ),
    st.builds(lambda ep: {"type": "assistant", "entrypoint": ep}, st.sampled_from(["cli", "sdk-py"])),
    st.builds(
        lambda t, v: {
            "type": t,
            {"custom-title": "customTitle", "ai-title": "aiTitle", "summary": "summary", "last-prompt": "lastPrompt"}[
                t
            ]: v,
        },
        st.sampled_from(["custom-title", "ai-title", "summary", "last-prompt"]),
        st.one_of(st.text(max_size=5), st.integers()),
    ),
    st.builds(
        lambda ep, t: {"type": "user", "entrypoint": ep, "promptId": "pt", "summary": t},
        st.just("cli"),
        st.text(max_size=3),
    ),
)


_PROMPTS3 = [{"type": "user", "entrypoint": "cli", "promptId": f"p{i}", "message": {"content": "q"}} for i in range(3)]


@given(
    recs=st.lists(st.one_of(_tail_records, st.just(None)), max_size=30),
    cut_first=st.booleans(),
    cut=st.integers(0, 40),
)
# the newest of two titles of a kind, behind enough prompts (found by the jump, newest first)
@example(
    recs=[{"type": "summary", "summary": "old"}, {"type": "summary", "summary": "new"}, *_PROMPTS3],
    cut_first=False,
    cut=0,
)
# a whole first line, but the read started mid-line: it is not looked at, by the jump either
@example(recs=[{"type": "summary", "summary": "cut"}, *_PROMPTS3], cut_first=True, cut=0)
@example(
    recs=[{"type": "summary", "summary": "cut"}, {"type": "assistant", "entrypoint": "cli"}, *_PROMPTS3],
    cut_first=True,
    cut=0,
)
def test_the_tail_scan_finds_what_a_scan_of_every_line_does(recs, cut_first, cut):
    """tail_scan jumps from title line to title line once it has the entrypoint and enough prompts: it finds
    the same titles, entrypoint and prompt ids as a parse of every line that could hold one, newest first
    (a None is a line that is not JSON; ``cut`` bytes of the first line are gone, as in a tail read)."""
    lines = [json.dumps(r).encode() if r is not None else b'{"broken "summary" line' for r in recs]
    buf = b"\n".join(lines)[cut if cut_first else 0 :]

    def parse(ls):
        out = []
        for x in ls:
            try:
                rec = json.loads(x)
            except ValueError:
                continue
            if isinstance(rec, dict):
                out.append(rec)
        return out

    assert titles.tail_scan(buf, parse, cut_first=cut_first) == _tail_scan_line_by_line(buf, parse, cut_first)
