"""A local OpenAI-compatible Chat Completions server for tests.

`LLMDouble` serves `POST /v1/chat/completions` on 127.0.0.1 (a free port) from a background
thread. Each test scripts its replies (`reply`, `fail`, `garbage`, or a function of the
request) and reads back what the client sent (`requests`). A reply may be delayed to make
the client time out; shutting the double down cuts any delay short. `stream` scripts a
`stream: true` reply (server-sent events, one chunk a piece).

    with LLMDouble() as llm:
        llm.reply("Paris is the capital [1].")
        ...  # point the client at llm.base_url
        assert llm.requests[0].body["model"] == "test-model"
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Request:
    """One request as the double received it (header names lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or the raw text when it was not JSON

    @property
    def user_message(self) -> str:
        return next(m["content"] for m in self.body["messages"] if m["role"] == "user")

    @property
    def system_message(self) -> str:
        return next(m["content"] for m in self.body["messages"] if m["role"] == "system")

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        """The user and password of an `Authorization: Basic` header, if one was sent."""
        scheme, _, value = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user, password

    def passage(self, n: int) -> str:
        """The text of passage `n` as the user message fenced it (title and source lines cut)."""
        fenced = self.user_message.split(f'<passage id="{n}">\n', 1)[1].split("</passage>", 1)[0]
        return fenced.split("\n\n", 1)[1].strip()


@dataclass(frozen=True)
class Reply:
    """What the double answers: a status and a body (JSON-encoded unless bytes)."""

    status: int = 200
    body: Any = None
    delay: float = 0.0
    content_type: str = "application/json"
    interval: float = 0.0  # pause between the events of a streamed body (a list of bytes)


def sse_events(
    pieces: list[str], finish_reason: str = "stop", model: str = "double"
) -> list[bytes]:
    """The events of a `stream: true` reply, each a bytes object (see `sse`)."""
    return [
        f"{line}\n\n".encode()
        for line in sse(pieces, finish_reason, model).decode().split("\n\n")
        if line
    ]


def sse(pieces: list[str], finish_reason: str = "stop", model: str = "double") -> bytes:
    """A `stream: true` reply: one chat.completion.chunk event a piece, then `[DONE]`."""

    def chunk(delta: dict[str, str], finish: str | None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-double",
            "object": "chat.completion.chunk",
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    events = [
        chunk({"role": "assistant", "content": p} if i == 0 else {"content": p}, None)
        for i, p in enumerate(pieces)
    ]
    events.append(chunk({}, finish_reason))
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    return (": keep-alive\n\n" + body).encode()


def completion(content: str | None, finish_reason: str = "stop", model: str = "double") -> dict:
    """A Chat Completions response body carrying `content`."""
    return {
        "id": "chatcmpl-double",
        "object": "chat.completion",
        "created": 0,
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


Script = Callable[[Request], Reply]


class LLMDouble:
    """The server; use it as a context manager (or call `start`/`stop`)."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._queue: deque[Reply | Script] = deque()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # Scripting -----------------------------------------------------------------------

    def reply(
        self, content: str | None, *, delay: float = 0.0, finish_reason: str = "stop"
    ) -> None:
        """Queue a completion whose message content is `content`."""
        self._queue.append(Reply(200, completion(content, finish_reason), delay))

    def stream(
        self, pieces: list[str], *, finish_reason: str = "stop", interval: float = 0.0
    ) -> None:
        """Queue a streamed (SSE) completion whose text arrives in `pieces`, `interval`
        seconds apart."""
        events = sse_events(pieces, finish_reason)
        self._queue.append(Reply(200, events, content_type="text/event-stream", interval=interval))

    def fail(self, status: int = 500, body: Any = None) -> None:
        """Queue an HTTP error."""
        self._queue.append(Reply(status, body if body is not None else {"error": "boom"}))

    def garbage(self, body: bytes = b"{not json at all", status: int = 200) -> None:
        """Queue a reply whose body is not JSON."""
        self._queue.append(Reply(status, body))

    def respond(self, script: Script) -> None:
        """Queue a function that turns the request into a `Reply`."""
        self._queue.append(script)

    # Lifecycle -----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The base URL a client is configured with (the `/v1` root, as OpenAI's)."""
        if self._server is None:
            raise RuntimeError("the double is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> LLMDouble:
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                double._handle(self)

            def do_GET(self) -> None:
                double._handle(self)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.handle_error = lambda request, address: None  # client gave up (timeout tests)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> LLMDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Serving -------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length).decode("utf-8", "replace")
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw
        request = Request(
            method=handler.command,
            path=handler.path,
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body,
        )
        self.requests.append(request)
        if handler.path.rstrip("/") != "/v1/chat/completions":
            reply = Reply(404, {"error": f"no route {handler.path}"})
        elif not self._queue:
            reply = Reply(500, {"error": "the test scripted no reply for this request"})
        else:
            scripted = self._queue.popleft()
            reply = scripted(request) if callable(scripted) else scripted
        if reply.delay and self._stopping.wait(reply.delay):
            return  # shutting down: drop the reply
        if isinstance(reply.body, list):  # a stream: its events written one at a time
            handler.send_response(reply.status)
            handler.send_header("Content-Type", reply.content_type)
            handler.send_header("Content-Length", str(sum(len(e) for e in reply.body)))
            handler.end_headers()
            for i, event in enumerate(reply.body):
                if i and reply.interval and self._stopping.wait(reply.interval):
                    return
                handler.wfile.write(event)
                handler.wfile.flush()
            return
        payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        handler.send_response(reply.status)
        handler.send_header("Content-Type", reply.content_type)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
