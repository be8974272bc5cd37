"""What the fake vendor servers share: scripted replies, a request log, a uvicorn thread.

Each fake is a raw ASGI app (no framework: the benchmark reuses them, so they must cost
little CPU) served by uvicorn on 127.0.0.1 in a daemon thread. A test scripts what the
next requests get with `configure()` (the default reply) and `script()` (a queue of
one-shot replies, used before the default), then reads `requests` to see what was sent.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import uvicorn

AUTO = "auto"


@dataclass(frozen=True)
class Reply:
    """How the fake answers one request. Every field has a harmless default."""

    text: str = "Hello from the fake vendor."
    chunks: list[str] | None = None  # explicit stream pieces; default: `text` split at words
    # (prompt_tokens, completion_tokens) to report; AUTO = words in the request / chunks sent;
    # None = report no usage at all (as some OpenAI-compatible servers do).
    usage: tuple[int, int] | str | None = AUTO
    status: int = 200
    error_message: str | None = None  # overrides the vendor's stock message for `status`
    error_type: str | None = None  # OpenAI `code` / Anthropic `error.type`; default per status
    headers: dict[str, str] = field(default_factory=dict)  # extra headers, e.g. retry-after
    first_byte_delay: float = 0.0  # seconds before the status line is sent
    chunk_delay: float = 0.0  # seconds between stream events
    cut_after: int | None = None  # stream: drop the connection after this many text chunks
    finish_reason: str | None = None  # default: "stop"/"end_turn", or the max_tokens one if cut
    # OpenAI: the reply calls these tools instead of answering: [{"name": ..., "arguments": "{...}"}]
    tool_calls: list[dict] | None = None
    # Anthropic: a thinking block (with a signature) before the reply, streamed as thinking_delta.
    thinking: str | None = None
    # Prompt tokens the vendor says it read from / wrote to its prompt cache (OpenAI: read only).
    cache: tuple[int, int] = (0, 0)
    # The whole JSON body of a 200 answer, sent as it is in place of a well-formed reply: what a
    # broken vendor or OpenAI-compatible server might send (a message without content, ...).
    body: Any = None

    def pieces(self) -> list[str]:
        if self.chunks is not None:
            return list(self.chunks)
        return re.findall(r"\s*\S+", self.text) or [self.text]


def hang(seconds: float = 30.0) -> Reply:
    """A reply that sends nothing for `seconds`: long enough for a client timeout."""
    return Reply(first_byte_delay=seconds)


@dataclass
class Received:
    path: str
    method: str
    headers: dict[str, str]  # lower-case names
    json: Any
    request_id: str


def words_in(messages: list[dict] | None, system: Any = None) -> int:
    """A stand-in prompt token count: whitespace-separated words of every content."""
    total = 0
    for content in [system, *[m.get("content") for m in messages or []]]:
        if isinstance(content, str):
            total += len(content.split())
        elif isinstance(content, list):  # content blocks
            texts = [str(b.get("text", "")) for b in content if isinstance(b, dict)]
            total += sum(len(text.split()) for text in texts)
    return total


class FakeVendor:
    """Base: request plumbing. Subclasses implement `handle()` in the vendor's wire format."""

    request_id_header = b"x-request-id"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._default = Reply()
        self._queue: deque[Reply] = deque()
        self.requests: list[Received] = []
        self.record = True  # False for long benchmark runs: the log would only grow
        # Called (in the fake's thread) as each request arrives, before it is answered: a test
        # breaks something the gateway needs right after it let the request through.
        self.on_request: Callable[[], None] | None = None
        self._count = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # --- test-facing switches -------------------------------------------------------------

    def configure(self, **fields: Any) -> None:
        """Change the default reply (fields of `Reply`) for every later request."""
        with self._lock:
            self._default = replace(self._default, **fields)

    def script(self, *replies: Reply) -> None:
        """Queue one-shot replies; each request takes the next, then the default applies."""
        with self._lock:
            self._queue.extend(replies)

    def fail(self, status: int, times: int = 1, **fields: Any) -> None:
        """The next `times` requests get `status` (with the vendor's real error body)."""
        self.script(*[Reply(status=status, **fields)] * times)

    def reset(self) -> None:
        with self._lock:
            self._default = Reply()
            self._queue.clear()
            self.requests = []
            self.on_request = None

    @property
    def last(self) -> Received:
        return self.requests[-1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- lifecycle ------------------------------------------------------------------------

    def start(self, port: int = 0) -> FakeVendor:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            # log_config=None: leave the process's logging alone; the stream cuts we make on
            # purpose would otherwise log "returned without completing response" errors.
            self,
            lifespan="off",
            log_config=None,
            log_level="critical",
            access_log=False,
            timeout_graceful_shutdown=1,
            loop="asyncio",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            daemon=True,
            name=f"{type(self).__name__}:{self.port}",
        )
        self._thread.start()
        for _ in range(500):
            if self._server.started:
                break
            threading.Event().wait(0.01)
        else:
            raise RuntimeError(f"{type(self).__name__} did not start")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)

    # --- ASGI -----------------------------------------------------------------------------

    def _next(self, received_path: str, method: str, headers: dict, body: Any) -> tuple[Reply, str]:
        with self._lock:
            self._count += 1
            request_id = f"req_fake_{self._count:06d}"
            if self.record:
                self.requests.append(Received(received_path, method, headers, body, request_id))
            reply = self._queue.popleft() if self._queue else self._default
        return reply, request_id

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = None
        reply, request_id = self._next(scope["path"], scope["method"], headers, payload)
        if self.on_request is not None:
            self.on_request()
        if reply.first_byte_delay and await pause(receive, reply.first_byte_delay):
            return  # the client gave up (timed out): nothing left to answer
        exchange = Exchange(scope, receive, send, reply, request_id, payload, headers, self)
        if reply.body is not None:
            await exchange.json(200, reply.body)
            return
        await self.handle(exchange)

    async def handle(self, exchange: Exchange) -> None:
        raise NotImplementedError


async def pause(receive: Any, seconds: float) -> bool:
    """Sleep, but wake early if the client disconnects. True when the client is gone."""
    try:
        message = await asyncio.wait_for(receive(), seconds)
    except TimeoutError:
        return False
    return message.get("type") == "http.disconnect"


@dataclass
class Exchange:
    """One request being answered: the helpers a vendor's `handle()` writes with."""

    scope: dict
    receive: Any
    send: Any
    reply: Reply
    request_id: str
    body: Any
    headers: dict[str, str]  # the request's, lower-case names
    vendor: FakeVendor

    def _headers(self, content_type: bytes, extra: dict[str, str]) -> list[tuple[bytes, bytes]]:
        headers = [(b"content-type", content_type), (self.vendor.request_id_header, self.request_id.encode())]
        for name, value in {**self.reply.headers, **extra}.items():
            headers.append((name.lower().encode(), str(value).encode()))
        return headers

    async def json(self, status: int, data: Any, **extra_headers: str) -> None:
        body = data if isinstance(data, bytes) else json.dumps(data).encode()  # bytes: sent as they are
        headers = self._headers(b"application/json", extra_headers)
        headers.append((b"content-length", str(len(body)).encode()))
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})

    async def start_stream(self) -> None:
        headers = self._headers(b"text/event-stream; charset=utf-8", {})
        headers.append((b"cache-control", b"no-cache"))
        await self.send({"type": "http.response.start", "status": 200, "headers": headers})

    async def event(self, data: bytes, *, delay: bool = True) -> bool:
        """Send one SSE event (pre-encoded). False when the client has gone away."""
        if delay and self.reply.chunk_delay and await pause(self.receive, self.reply.chunk_delay):
            return False
        await self.send({"type": "http.response.body", "body": data, "more_body": True})
        return True

    async def end_stream(self) -> None:
        await self.send({"type": "http.response.body", "body": b"", "more_body": False})

    # Returning from the ASGI app without the final (more_body=False) message makes uvicorn
    # close the socket mid-body: the client sees an incomplete chunked response, exactly
    # like a vendor connection dropped in the middle of a stream.
