"""What a session is about and how it was run: its one-line title and its kind. Pure: bytes and records in.

Read from what the scan already has in hand plus one small head read (cache._read_transcript):

* **title**, first that is found: Claude Code's own title — the user's ``/rename`` (``custom-title.json`` in
  the session folder, or a ``{"type":"custom-title","customTitle":…}`` record), else its AI title
  (``{"type":"ai-title","aiTitle":…}``), else a compaction ``summary`` record — taken from the transcript's
  tail (Claude Code re-appends them there, last one wins); else the first real user prompt, from the first
  TITLE_HEAD bytes (not a tool result, a command, a meta or caveat message, or a sidechain); else the
  ``last-prompt`` record Claude Code keeps at the end.
* **kind**, from the records' ``entrypoint`` (how Claude Code was started for the session): ``cli`` and the
  IDE/web surfaces are interactive, ``sdk-cli`` is ``claude -p`` (headless; also ``mcp serve`` and the
  GitHub action), ``sdk-ts``/``sdk-py`` the Agent SDK, ``claude-desktop*``/``local-agent`` the desktop app.
* **replied**: a person typed into the session after its first prompt — a prompt record from an
  interactive or desktop entrypoint other than the first prompt, among the records the tail read saw.

Titles are transcript content: they are shown in reports and ``janitor show`` (terminal-safe, cut to fit),
never written to the audit log or a sink.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

TITLE_HEAD = 8 * 1024  # the head read for the first prompt: one pread of at most this
TITLE_MAX = 200  # longest title kept (JSON); tables cut further
CUSTOM_TITLE_FILE = "custom-title.json"  # in the session folder, projects/<p>/<id>/
CUSTOM_TITLE_MAX = 64 * 1024  # custom-title.json is {"customTitle": "..."}: anything bigger is not one

KINDS = ("interactive", "headless", "sdk", "desktop", "side-files", "unknown")
ENTRYPOINT_KIND = {
    "cli": "interactive",
    "claude-vscode": "interactive",
    "remote": "interactive",
    "sdk-cli": "headless",
    "mcp": "headless",
    "claude-code-github-action": "headless",
    "sdk-ts": "sdk",
    "sdk-py": "sdk",
    "claude-desktop": "desktop",
    "claude-desktop-3p": "desktop",
    "local-agent": "desktop",
}
HUMAN_KINDS = frozenset({"interactive", "desktop"})
KIND_LABEL = {
    "interactive": "interactive",
    "headless": "headless (-p)",
    "sdk": "SDK",
    "desktop": "desktop",
    "side-files": "side files only",
    "unknown": "unknown",
}

_NOT_PROMPTS = (
    "<command-",
    "<local-command-",
    "<bash-",
    "<system-reminder>",
    "<user-prompt-submit-hook>",
    "Caveat: ",
    "[Request interrupted",
    "<task-notification>",
)
_ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])|\x9b[0-?]*[ -/]*[@-~]")
_SPACE = re.compile(r"\s+")
_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def kind_of(entrypoint: str | None, has_transcript: bool) -> str:
    if not has_transcript:
        return "side-files"
    return ENTRYPOINT_KIND.get(entrypoint or "", "unknown")


def clean(text: str, limit: int = TITLE_MAX) -> str:
    """One terminal-safe line: escape sequences and control/format characters gone, whitespace collapsed,
    cut to ``limit`` characters (with an ellipsis)."""
    text = _ESCAPES.sub("", text[: limit * 2 + 64])
    if text.isascii():  # the common case, without a look at each character
        text = _ASCII_CONTROL.sub(" ", text)
    else:
        text = "".join(" " if c.isspace() else c for c in text if c.isspace() or unicodedata.category(c)[0] != "C")
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _entrypoint(rec: dict[str, Any]) -> str | None:
    ep = rec.get("entrypoint")
    return ep if isinstance(ep, str) and 0 < len(ep) <= 64 and ep.isprintable() else None


def prompt_text(rec: dict[str, Any]) -> str | None:
    """The text of a real user prompt record, or None (a tool result, command, meta or caveat message, a
    sidechain's prompt, a compaction summary, anything malformed)."""
    if rec.get("type") != "user" or rec.get("isMeta") or rec.get("isSidechain") or rec.get("isCompactSummary"):
        return None
    if rec.get("isVisibleInTranscriptOnly") or rec.get("toolUseResult") is not None:
        return None
    msg = rec.get("message")
    if not isinstance(msg, dict) or msg.get("role", "user") != "user":
        return None
    content = msg.get("content")
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        if any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content):
            return None
        text = " ".join(
            b["text"]
            for b in content
            if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
        )
    else:
        return None
    text = text.strip()
    if not text or text.startswith(_NOT_PROMPTS):
        return None
    return text


def _prompt_id(rec: dict[str, Any]) -> str | None:
    for key in ("promptId", "uuid"):
        v = rec.get(key)
        if isinstance(v, str) and v:
            return v
    return None


@dataclass
class HeadInfo:
    entrypoint: str | None = None
    first_prompt: str | None = None
    first_prompt_ids: tuple[str, ...] = ()  # promptId and uuid of the first prompt


_USER = re.compile(rb'"type"\s*:\s*"user"')
_META = re.compile(rb'"(?:isMeta|isSidechain)"\s*:\s*true')
_CONTENT = re.compile(rb'"content"\s*:\s*"')
_ENTRYPOINT = re.compile(rb'"entrypoint"\s*:\s*"([a-z0-9-]{1,64})"')


def _partial_prompt(line: bytes) -> str | None:
    """The start of a user prompt from a first line cut by the head read (a prompt longer than the read)."""
    if not _USER.search(line) or _META.search(line):
        return None
    m = _CONTENT.search(line)
    if m is None:
        return None
    raw = line[m.end() : m.end() + 8 * TITLE_MAX].decode("utf-8", "ignore")
    for cut in range(0, 8):  # drop a half escape sequence at the cut
        try:
            text = json.loads('"' + raw[: len(raw) - cut] + '"')
        except ValueError:
            continue
        text = text.strip()
        return text if text and not text.startswith(_NOT_PROMPTS) else None
    return None


def read_head(buf: bytes, records: Iterable[dict[str, Any]], complete: bool) -> HeadInfo:
    """The first entrypoint and first real prompt among the head's ``records`` (already parsed by the
    caller's hardened parser, oldest first). ``complete``: ``buf`` is the whole transcript (else its last
    line may be cut, and a cut first prompt is read as far as it goes)."""
    info = HeadInfo()
    queued: str | None = None
    for rec in records:
        if info.entrypoint is None:
            info.entrypoint = _entrypoint(rec)
        if queued is None and rec.get("type") == "queue-operation" and isinstance(rec.get("content"), str):
            queued = rec["content"].strip() or None
        if info.first_prompt is None and (text := prompt_text(rec)) is not None:
            info.first_prompt = text
            info.first_prompt_ids = tuple(v for k in ("promptId", "uuid") if isinstance(v := rec.get(k), str))
            if info.entrypoint is None:
                info.entrypoint = _entrypoint(rec)
        if info.first_prompt is not None:  # Claude Code writes the entrypoint on the prompt record itself
            break
    if info.first_prompt is None and not complete:
        nl = buf.rfind(b"\n")
        last = buf[nl + 1 :]
        info.first_prompt = _partial_prompt(last)
        if info.entrypoint is None and (m := _ENTRYPOINT.search(last)):
            info.entrypoint = m.group(1).decode()
    if info.first_prompt is None and queued is not None and not queued.startswith(_NOT_PROMPTS):
        info.first_prompt = queued
    return info


@dataclass
class TailTitles:
    custom: str | None = None
    ai: str | None = None
    summary: str | None = None
    last_prompt: str | None = None  # Claude Code's last-prompt record: the title when the first is out of reach
    last_entrypoint: str | None = None
    human_prompts: set[str] | None = None  # ids of prompts from an interactive/desktop entrypoint (≤ ENOUGH_PROMPTS)


ENOUGH_PROMPTS = 3  # human prompt ids a tail scan collects at most: enough for replied()
TITLE_MARKS = (b'"custom-title"', b'"ai-title"', b'"summary"', b'"last-prompt"')  # a line that may hold a title


def lines_newest_first(buf: bytes, *, cut_first: bool) -> Iterator[tuple[int, bytes]]:
    """(offset, line) of each line of ``buf`` from the last to the first, sliced lazily (a 64 KiB tail is
    not split whole). With ``cut_first`` the first line is incomplete (the read started mid-line) and is
    skipped."""
    end = len(buf)
    while end > 0:
        i = buf.rfind(b"\n", 0, end)
        if i < 0:
            if not cut_first:
                yield 0, buf[:end]
            return
        yield i + 1, buf[i + 1 : end]
        end = i


def _title_marks(buf: bytes, start: int) -> list[int]:
    """Where each of TITLE_MARKS is in ``buf`` from ``start`` on, in order: one bytes.find per mark and per
    hit (a regex scan stops at every quote of the JSON; most tails have no mark at all)."""
    found = []
    for mark in TITLE_MARKS:
        at = buf.find(mark, start)
        while at >= 0:
            found.append(at)
            at = buf.find(mark, at + 1)
    found.sort()
    return found


def _note(out: TailTitles, prompts: set[str], records: Iterable[dict[str, Any]]) -> None:
    """What one tail line's records say: the newest entrypoint, the first title of each kind met (newest
    first), a human prompt's id."""
    for rec in records:
        t = rec.get("type")
        if out.last_entrypoint is None:
            out.last_entrypoint = _entrypoint(rec)
        if t == "custom-title" and out.custom is None and isinstance(rec.get("customTitle"), str):
            out.custom = rec["customTitle"]
        elif t == "ai-title" and out.ai is None and isinstance(rec.get("aiTitle"), str):
            out.ai = rec["aiTitle"]
        elif t == "summary" and out.summary is None and isinstance(rec.get("summary"), str):
            out.summary = rec["summary"]
        elif t == "last-prompt" and out.last_prompt is None and isinstance(rec.get("lastPrompt"), str):
            out.last_prompt = rec["lastPrompt"]
        elif t == "user" and ENTRYPOINT_KIND.get(_entrypoint(rec) or "") in HUMAN_KINDS:
            pid = _prompt_id(rec)
            if pid and prompt_text(rec) is not None:
                prompts.add(pid)


def tail_scan(
    buf: bytes, parse: Callable[[Iterable[bytes]], Iterable[dict[str, Any]]], *, cut_first: bool = False
) -> TailTitles:
    """Titles and human prompts among the lines of ``buf``, a transcript's tail, newest first (with
    ``cut_first`` its first line is incomplete and skipped). Only lines that can hold one are parsed (a byte
    test first), with the caller's hardened ``parse`` (one line → records). Once the newest entrypoint and
    ENOUGH_PROMPTS prompt ids are in hand only title lines can add anything: the rest of the buffer is then
    searched for them at once, not line by line (most tails have none)."""
    prompts: set[str] = set()
    out = TailTitles(human_prompts=prompts)

    def take(line: bytes) -> None:
        _note(out, prompts, parse((line,)))

    start = 0
    if cut_first:  # the cut first line is never looked at: nor searched (a 1 MiB tail can be all of it)
        start = buf.find(b"\n") + 1
        if start == 0:
            return out
    marks = _title_marks(buf, start)  # consumed from the end as the lines are, newest first
    for at, line in lines_newest_first(buf, cut_first=cut_first):
        if out.last_entrypoint is not None and len(prompts) >= ENOUGH_PROMPTS:
            # Only lines with a title mark are parsed from here on (as below they would be): newest first.
            end = at + len(line)
            while marks:
                i = buf.rfind(b"\n", 0, marks[-1]) + 1
                while marks and marks[-1] >= i:  # the line's other marks
                    marks.pop()
                j = buf.find(b"\n", i, end)
                take(buf[i : j if j >= 0 else end])
            break
        title = False
        while marks and marks[-1] >= at:  # the marks in this line
            marks.pop()
            title = True
        has_ep = b'"entrypoint"' in line
        # Three prompt ids answer replied() as all of them would (the first prompt has at most two): no more
        # user records are parsed after that (in a real tail most are tool results, each a JSON parse).
        user = has_ep and len(prompts) < ENOUGH_PROMPTS and b'"user"' in line
        if title or user or (has_ep and out.last_entrypoint is None):
            take(line)
    return out


def custom_title(raw: bytes | None) -> str | None:
    """``customTitle`` of a custom-title.json (None when absent or not that shape)."""
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    v = data.get("customTitle") if isinstance(data, dict) else None
    return v if isinstance(v, str) and v.strip() else None


def choose(custom_file: str | None, tail: TailTitles | None, head: HeadInfo | None) -> tuple[str | None, str | None]:
    """(title, where it came from)."""
    for value, source in (
        (custom_file, "title set in Claude Code"),
        (tail.custom if tail else None, "title set in Claude Code"),
        (tail.ai if tail else None, "Claude Code's title"),
        (tail.summary if tail else None, "summary"),
        (head.first_prompt if head else None, "first prompt"),
        (tail.last_prompt if tail else None, "last prompt"),
    ):
        if value and (text := clean(value)):
            return text, source
    return None, None


def replied(head: HeadInfo | None, tail: TailTitles | None) -> bool:
    """A prompt from an interactive or desktop entrypoint other than the session's first prompt."""
    if tail is None or not tail.human_prompts:
        return False
    first = set(head.first_prompt_ids) if head else set()
    if first:
        return bool(tail.human_prompts - first)
    return len(tail.human_prompts) > 1
