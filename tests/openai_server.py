"""A real HTTP server on 127.0.0.1 that speaks the OpenAI chat-completions protocol.

Tests point the real `openai` client (through `langchain_openai.ChatOpenAI`) at it, so the
whole client stack runs: HTTP, JSON, SSE streaming, status codes, headers, timeouts. Replies
are scripted one request at a time (`server.script(...)`), or chosen by a `responder`
function; every request is recorded (`server.requests`) so tests can look at the prompt.

    with FakeOpenAI(models={"test-model"}, api_key="sk-test") as server:
        server.script(text("SeqDialN reaches 0.62 NDCG [1]."))
        ... Settings(llm=LLMSettings(model="test-model", base_url=server.base_url, ...))
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

ReplyKind = Literal["text", "status", "hang", "cut", "stall", "raw"]


@dataclass
class Reply:
    """One scripted response. Build them with the helpers below."""

    kind: ReplyKind
    content: str = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunk_chars: int = 6
    chunk_delay_s: float = 0.0
    # Send finish_reason + [DONE] at the end of a stream (False: the stream just ends).
    finish: bool = True
    finish_reason: str = "stop"
    # "cut"/"stall": how many characters of `content` go out before the connection breaks.
    after_chars: int = 0


def text(content: str, **options: Any) -> Reply:
    """A normal answer; streamed in small chunks when the request asks for a stream."""
    return Reply("text", content=content, **options)


def error(
    status: int, message: str = "", *, code: str | None = None, headers: dict[str, str] | None = None
) -> Reply:
    """An OpenAI-style error body with `status`."""
    kinds = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
             429: "rate_limit_error"}
    body = {
        "error": {
            "message": message or f"HTTP {status}",
            "type": kinds.get(status, "server_error"),
            "param": None,
            "code": code,
        }
    }
    return Reply("status", status=status, body=json.dumps(body).encode(), headers=headers or {})


def hang() -> Reply:
    """Accept the request and never answer (until the server stops)."""
    return Reply("hang")


def cut(content: str, after_chars: int) -> Reply:
    """Stream `after_chars` characters, then drop the connection mid-body."""
    return Reply("cut", content=content, after_chars=after_chars)


def stall(content: str, after_chars: int) -> Reply:
    """Stream `after_chars` characters, then stop sending while keeping the connection open."""
    return Reply("stall", content=content, after_chars=after_chars)


def raw(body: bytes, *, content_type: str = "application/json", status: int = 200) -> Reply:
    """Send `body` verbatim (malformed JSON, a broken SSE stream, ...)."""
    return Reply("raw", status=status, body=body, headers={"Content-Type": content_type})


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    received_at: float

    @property
    def stream(self) -> bool:
        return bool(self.body and self.body.get("stream"))

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list((self.body or {}).get("messages") or [])

    @property
    def prompt(self) -> str:
        """Every message's text, joined: what the model was shown."""
        return "\n".join(str(m.get("content") or "") for m in self.messages)


class FakeOpenAI:
    """The server. Use as a context manager, or start()/stop()."""

    def __init__(
        self,
        *,
        models: set[str] | None = None,
        api_key: str | None = None,
        default: Reply | None = None,
        responder: Callable[[Recorded], Reply | None] | None = None,
    ) -> None:
        self.models = models if models is not None else {"test-model"}
        self.api_key = api_key
        self.default = default or text("No reply was scripted for this request.")
        self.responder = responder
        self.requests: list[Recorded] = []
        self.first_byte_at: list[float] = []
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeOpenAI:
        handler = _handler_for(self)
        self._httpd = _QuietServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()  # lets hanging handlers return
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting -------------------------------------------------------------------------
    def script(self, *replies: Reply) -> None:
        """Queue replies for the next requests, in order; then `default` answers."""
        with self._lock:
            self._queue.extend(replies)

    def chat_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def _next_reply(self, request: Recorded) -> Reply:
        if self.responder is not None:
            chosen = self.responder(request)
            if chosen is not None:
                return chosen
        with self._lock:
            return self._queue.popleft() if self._queue else self.default

    def _wait_released(self, limit_s: float = 60.0) -> None:
        self._released.wait(limit_s)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or give up close their end: that is the scenario, not a bug.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def _handler_for(server: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep tests quiet
            return

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.rstrip("/").endswith("/models"):
                data = {"object": "list", "data": [{"id": m, "object": "model"} for m in server.models]}
                self._send_json(200, data)
            else:
                self._send_json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            raw_body = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw_body) if raw_body else None
            except ValueError:
                body = None
            request = Recorded(
                "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.perf_counter()
            )
            server.requests.append(request)
            if not self.path.rstrip("/").endswith("/chat/completions"):
                return self._send_json(404, {"error": {"message": f"Unknown path {self.path}"}})
            if server.api_key is not None and request.headers.get("authorization") != f"Bearer {server.api_key}":
                # Like OpenAI, never echo the key back.
                return self._send_reply(error(401, "Incorrect API key provided.", code="invalid_api_key"), request)
            model = (body or {}).get("model")
            if model not in server.models:
                return self._send_reply(
                    error(404, f"The model `{model}` does not exist or you do not have access to it.",
                          code="model_not_found"),
                    request,
                )
            self._send_reply(server._next_reply(request), request)

        # -- replies -----------------------------------------------------------------------
        def _send_reply(self, reply: Reply, request: Recorded) -> None:
            model = str((request.body or {}).get("model") or "test-model")
            if reply.kind == "hang":
                server._wait_released()
                self.close_connection = True
                return
            if reply.kind == "status":
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self._mark_first_byte()
                self.wfile.write(reply.body)
                return
            if reply.kind == "raw":
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self._mark_first_byte()
                self.wfile.write(reply.body)
                return
            if not request.stream:
                if reply.kind in ("cut", "stall"):
                    # A non-streamed answer cut short: promise more bytes than are sent.
                    data = json.dumps(_completion(model, reply.content)).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self._mark_first_byte()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    return self._break(reply)
                return self._send_json(200, _completion(model, reply.content, reply.finish_reason))
            self._stream(reply, model)

        def _stream(self, reply: Reply, model: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._mark_first_byte()
            content = reply.content
            limit = reply.after_chars if reply.kind in ("cut", "stall") else len(content)
            self._event(_chunk(model, {"role": "assistant", "content": ""}))
            sent = 0
            while sent < limit:
                piece = content[sent : min(limit, sent + reply.chunk_chars)]
                sent += len(piece)
                if reply.chunk_delay_s:
                    time.sleep(reply.chunk_delay_s)
                self._event(_chunk(model, {"content": piece}))
            if reply.kind in ("cut", "stall"):
                return self._break(reply)
            if reply.finish:
                self._event(_chunk(model, {}, reply.finish_reason))
                self._write_chunk(b"data: [DONE]\n\n")
            self._write_chunk(b"")  # the terminating zero-length chunk

        def _break(self, reply: Reply) -> None:
            if reply.kind == "stall":
                server._wait_released()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

        def _event(self, data: dict[str, Any]) -> None:
            self._write_chunk(b"data: " + json.dumps(data).encode() + b"\n\n")

        def _write_chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _send_json(self, status: int, data: dict[str, Any]) -> None:
            payload = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self._mark_first_byte()
            self.wfile.write(payload)

        def _mark_first_byte(self) -> None:
            server.first_byte_at.append(time.perf_counter())

    return Handler


def _completion(model: str, content: str, finish_reason: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def _chunk(model: str, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
