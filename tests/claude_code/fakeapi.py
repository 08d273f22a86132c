"""A fake Anthropic Messages API for driving the real Claude Code CLI offline.

POST /v1/messages answers with SSE events (``"stream": true``) or one JSON message; every request body is
logged. What a reply contains is decided by ``FakeAPI.reply`` (a function of the request body); a test can
make the next matching request wait until it releases it (``hold``). Anything else Claude Code calls is
logged and answered with an empty JSON object.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Block = dict[str, Any]  # {"type": "text", "text": ...} or {"type": "tool_use", "name": ..., "input": {...}}


def text(t: str) -> list[Block]:
    return [{"type": "text", "text": t}]


def tool(name: str, inp: dict[str, Any], *, say: str = "") -> list[Block]:
    return ([{"type": "text", "text": say}] if say else []) + [{"type": "tool_use", "name": name, "input": inp}]


def user_texts(body: dict[str, Any]) -> list[str]:
    """Every text the request's user turns carry (strings and text blocks, tool results' text too)."""
    out: list[str] = []

    def walk(c: Any) -> None:
        if isinstance(c, str):
            out.append(c)
        elif isinstance(c, list):
            for b in c:
                walk(b)
        elif isinstance(c, dict):
            if isinstance(c.get("text"), str):
                out.append(c["text"])
            if "content" in c:
                walk(c["content"])

    for m in body.get("messages", []):
        if m.get("role") == "user":
            walk(m.get("content"))
    return out


def last_user_text(body: dict[str, Any]) -> str:
    msgs = [m for m in body.get("messages", []) if m.get("role") == "user"]
    if not msgs:
        return ""
    c = msgs[-1].get("content")
    if isinstance(c, str):
        return c
    return "\n".join(b.get("text", "") for b in c or [] if isinstance(b, dict) and b.get("type") == "text")


def has_tool_result(body: dict[str, Any]) -> bool:
    msgs = body.get("messages", [])
    if not msgs or msgs[-1].get("role") != "user" or not isinstance(msgs[-1].get("content"), list):
        return False
    return any(isinstance(b, dict) and b.get("type") == "tool_result" for b in msgs[-1]["content"])


def _is_results(m: dict[str, Any]) -> bool:
    c = m.get("content")
    return isinstance(c, list) and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in c)


def current_prompt(body: dict[str, Any]) -> tuple[str, int]:
    """(the text of the turn's prompt: the last user message that is not tool results, how many tool-result
    messages came after it): where a scripted turn stands."""
    msgs = body.get("messages", [])
    for i in range(len(msgs) - 1, -1, -1):
        m = msgs[i]
        if m.get("role") == "user" and not _is_results(m):
            c = m.get("content")
            t = (
                c
                if isinstance(c, str)
                else "\n".join(b.get("text", "") for b in c or [] if isinstance(b, dict) and b.get("type") == "text")
            )
            return t, sum(1 for x in msgs[i + 1 :] if x.get("role") == "user" and _is_results(x))
    return "", 0


def scripted(turns: dict[str, list[list[Block]]]) -> Callable[[dict[str, Any]], list[Block]]:
    """A reply function: a prompt containing a marker (a key of ``turns``) gets that list of replies in
    order, one per model call of the turn (tool calls, then whatever follows), then "done"; anything else
    (subagents' own prompts, side requests) gets "ok"."""

    def reply(body: dict[str, Any]) -> list[Block]:
        prompt, n = current_prompt(body)
        for marker, seq in turns.items():
            if marker in prompt:
                return seq[n] if n < len(seq) else text(f"done {marker}")
        return text("ok")

    return reply


@dataclass
class Hold:
    match: Callable[[dict[str, Any]], bool]
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    body: dict[str, Any] | None = None


class FakeAPI:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, Any] | None]] = []  # (method, path, json body)
        self.lock = threading.Lock()
        self.holds: list[Hold] = []
        self.ids = itertools.count(1)
        self.reply: Callable[[dict[str, Any]], list[Block]] = lambda body: text("ok")
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="fakeapi", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeAPI:
        self.thread.start()
        return self

    def close(self) -> None:
        for h in self.holds:
            h.release.set()
        self.server.shutdown()
        self.server.server_close()

    def hold(self, match: Callable[[dict[str, Any]], bool]) -> Hold:
        """The next /v1/messages request for which ``match(body)`` is true waits until ``h.release.set()``."""
        h = Hold(match)
        with self.lock:
            self.holds.append(h)
        return h

    def messages(self) -> list[dict[str, Any]]:
        with self.lock:
            return [
                b
                for m, p, b in self.requests
                if p.startswith("/v1/messages") and "count_tokens" not in p and b is not None
            ]

    def other_paths(self) -> list[str]:
        with self.lock:
            return [f"{m} {p}" for m, p, _ in self.requests if not p.startswith("/v1/messages")]

    def _take_hold(self, body: dict[str, Any]) -> Hold | None:
        with self.lock:
            for h in self.holds:
                if not h.arrived.is_set() and h.match(body):
                    h.body = body
                    h.arrived.set()
                    return h
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:  # noqa: C901 (one request handler class, one branch per route)
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _body(self) -> dict[str, Any] | None:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                try:
                    got = json.loads(raw) if raw else None
                except ValueError:
                    return None
                return got if isinstance(got, dict) else None

            def _json(self, obj: Any, code: int = 200) -> None:
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                with api.lock:
                    api.requests.append(("GET", self.path, None))
                self._json({})

            def do_HEAD(self) -> None:
                with api.lock:
                    api.requests.append(("HEAD", self.path, None))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                body = self._body()
                path = self.path.split("?", 1)[0]
                with api.lock:
                    api.requests.append(("POST", self.path, body))
                if path == "/v1/messages/count_tokens":
                    self._json({"input_tokens": 100})
                    return
                if path != "/v1/messages" or body is None:
                    self._json({})
                    return
                h = api._take_hold(body)
                if h is not None:
                    h.release.wait(120)
                blocks = api.reply(body)
                self._answer(body, blocks)

            def _answer(self, body: dict[str, Any], blocks: list[Block]) -> None:
                n = next(api.ids)
                content = []
                for b in blocks:
                    if b["type"] == "tool_use":
                        content.append(
                            {
                                "type": "tool_use",
                                "id": f"toolu_{n:04d}_{len(content)}",
                                "name": b["name"],
                                "input": b["input"],
                            }
                        )
                    else:
                        content.append({"type": "text", "text": b["text"]})
                stop = "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn"
                model = body.get("model") or "claude-sonnet-4-5"
                usage = {
                    "input_tokens": 10,
                    "output_tokens": 5,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                }
                msg = {
                    "id": f"msg_fake{n:06d}",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": content,
                    "stop_reason": stop,
                    "stop_sequence": None,
                    "usage": usage,
                }
                if not body.get("stream"):
                    self._json(msg)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()

                def ev(name: str, data: dict[str, Any]) -> None:
                    self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())

                ev("message_start", {"type": "message_start", "message": {**msg, "content": [], "stop_reason": None}})
                for i, b in enumerate(content):
                    if b["type"] == "tool_use":
                        ev(
                            "content_block_start",
                            {"type": "content_block_start", "index": i, "content_block": {**b, "input": {}}},
                        )
                        ev(
                            "content_block_delta",
                            {
                                "type": "content_block_delta",
                                "index": i,
                                "delta": {"type": "input_json_delta", "partial_json": json.dumps(b["input"])},
                            },
                        )
                    else:
                        ev(
                            "content_block_start",
                            {"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}},
                        )
                        ev(
                            "content_block_delta",
                            {
                                "type": "content_block_delta",
                                "index": i,
                                "delta": {"type": "text_delta", "text": b["text"]},
                            },
                        )
                    ev("content_block_stop", {"type": "content_block_stop", "index": i})
                ev(
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": stop, "stop_sequence": None},
                        "usage": {"output_tokens": 5},
                    },
                )
                ev("message_stop", {"type": "message_stop"})
                self.wfile.flush()
                self.close_connection = True

        return Handler
