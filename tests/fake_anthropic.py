"""A fake Anthropic Messages API for tests: a real HTTP server on 127.0.0.1.

The real SDK talks to it through `base_url`, so retries, headers, error
classes and request bodies are the SDK's own. Each test scripts a queue of
answers (messages with text/tool_use blocks and usage, or HTTP errors with
`retry-after-ms`) and afterwards inspects every request it received.

The Authorization header is checked against the expected key but never
stored: a recorded request only says whether it was authorized.

The fixtures (`fake_api`, `fake_llm`, `fake_env`) live in `tests/conftest_llm.py`;
a test module enables them with `pytest_plugins = ["tests.conftest_llm"]`.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAKE_KEY = "sk-test-FAKE-0123456789abcdef-DO-NOT-LEAK"

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass
class Recorded:
    """One request the fake received (never its Authorization value)."""

    method: str
    path: str
    headers: dict[str, str]  # lower-cased names, authorization removed
    body: dict[str, Any]
    authorized: bool  # "Authorization: Bearer <expected key>" was sent

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages", [])

    @property
    def last_user_text(self) -> str:
        """Every text of the last user turn (text blocks and tool results)."""
        for msg in reversed(self.messages):
            if msg.get("role") == "user":
                return _all_text(msg.get("content"))
        return ""

    @property
    def all_text(self) -> str:
        system = _all_text(self.body.get("system"))
        return system + "\n" + "\n".join(_all_text(m.get("content")) for m in self.messages)

    def tool_results(self) -> list[dict[str, Any]]:
        last_user = next((m for m in reversed(self.messages) if m.get("role") == "user"), None)
        content = last_user.get("content") if last_user else None
        if not isinstance(content, list):
            return []
        return [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]


def _all_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, dict):
                if "text" in block:
                    parts.append(str(block["text"]))
                if block.get("type") == "tool_result":
                    parts.append(_all_text(block.get("content")))
            else:
                parts.append(str(block))
        return "\n".join(parts)
    return str(content)


@dataclass
class Scripted:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    # Send only this many bytes of the body, then close the connection (a
    # server or proxy that dies mid-answer). None: the whole body.
    cut_after: int | None = None


Responder = Callable[[Recorded], Scripted]


def usage(
    input_tokens: int = 100,
    output_tokens: int = 50,
    cache_write: int = 0,
    cache_read: int = 0,
) -> dict[str, int]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
    }


DEFAULT_USAGE = usage()


def tool_use(name: str, tool_input: dict[str, Any], id: str | None = None) -> dict[str, Any]:
    return {"type": "tool_use", "id": id or "", "name": name, "input": tool_input}


class FakeAnthropic:
    """The server. Script answers with `reply`, `reply_json`, `error`;
    read what arrived in `requests`."""

    def __init__(self, expected_key: str = FAKE_KEY) -> None:
        self.expected_key = expected_key
        self.requests: list[Recorded] = []
        self._queue: deque[Scripted | Responder] = deque()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    # -- lifecycle --------------------------------------------------------------

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeAnthropic:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- scripting --------------------------------------------------------------

    def reply(
        self,
        text: str | None = None,
        *,
        tools: list[dict[str, Any]] | None = None,
        usage: dict[str, int] | None = None,
        stop_reason: str | None = None,
        content: list[dict[str, Any]] | None = None,
    ) -> None:
        """Queue an assistant message: optional text, then tool_use blocks."""
        blocks: list[dict[str, Any]] = list(content or [])
        if text is not None:
            blocks.append({"type": "text", "text": text})
        for block in tools or []:
            blocks.append({**block, "id": block.get("id") or f"toolu_{next(self._ids):04d}"})
        reason = stop_reason or ("tool_use" if tools else "end_turn")
        message_usage = usage or DEFAULT_USAGE

        def respond(request: Recorded) -> Scripted:
            return Scripted(
                200,
                {
                    "id": f"msg_{next(self._ids):04d}",
                    "type": "message",
                    "role": "assistant",
                    "model": request.body.get("model", "claude-sonnet-5-5"),
                    "content": blocks,
                    "stop_reason": reason,
                    "stop_sequence": None,
                    "usage": message_usage,
                },
            )

        self.push(respond)

    def reply_json(
        self, data: Any, *, usage: dict[str, int] | None = None, stop_reason: str | None = None
    ) -> None:
        """Queue a structured-output answer: the JSON as the text block."""
        self.reply(json.dumps(data), usage=usage, stop_reason=stop_reason)

    def error(
        self,
        status: int,
        message: str = "scripted error",
        *,
        retry_after_ms: int | None = 1,
        headers: dict[str, str] | None = None,
    ) -> None:
        extra = dict(headers or {})
        if retry_after_ms is not None:
            extra["retry-after-ms"] = str(retry_after_ms)
        body = {
            "type": "error",
            "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message},
        }
        self.push(Scripted(status, body, extra))

    def cut_off(self, after_bytes: int = 10) -> None:
        """Queue an answer that starts (200, its headers, `after_bytes` of a
        message) and then the connection closes."""
        message = {"type": "message", "role": "assistant", "content": [], "usage": DEFAULT_USAGE}
        self.push(Scripted(200, message, cut_after=after_bytes))

    def push(self, answer: Scripted | Responder) -> None:
        with self._lock:
            self._queue.append(answer)

    @property
    def remaining(self) -> int:
        with self._lock:
            return len(self._queue)

    # -- the HTTP side ------------------------------------------------------------

    def _next(self, request: Recorded) -> Scripted:
        with self._lock:
            self.requests.append(request)
            answer = self._queue.popleft() if self._queue else None
        if answer is None:
            return Scripted(
                400,
                {
                    "type": "error",
                    "error": {
                        "type": "invalid_request_error",
                        "message": f"fake API: no scripted answer left for request #{len(self.requests)}",
                    },
                },
                {"x-should-retry": "false"},
            )
        return answer(request) if callable(answer) else answer

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    body = {"_unparsed": raw.decode("utf-8", "replace")}
                auth = self.headers.get("authorization", "")
                recorded = Recorded(
                    method="POST",
                    path=self.path,
                    headers={
                        k.lower(): v
                        for k, v in self.headers.items()
                        if k.lower() not in ("authorization", "x-api-key")
                    },
                    body=body,
                    authorized=auth == f"Bearer {fake.expected_key}",
                )
                del auth
                answer = fake._next(recorded)
                payload = json.dumps(answer.body).encode()
                try:
                    self.send_response(answer.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.send_header("request-id", f"req_fake_{len(fake.requests):04d}")
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    if answer.cut_after is not None:
                        self.wfile.write(payload[: answer.cut_after])
                        self.wfile.flush()
                        self.close_connection = True
                        return
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing to answer

        return Handler
