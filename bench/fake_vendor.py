"""A fast fake LLM vendor for the benchmark: OpenAI chat completions and Anthropic messages,
JSON and SSE, on a bare asyncio protocol (uvloop + httptools, no ASGI framework).

    python -m bench.fake_vendor --port 8199 --profile slow=0:50:100

Profiles set how a reply is paced: NAME=TTFT:TOKENS_PER_SECOND:REPLY_TOKENS (tokens/s 0 = all
at once). A request picks one by its path prefix: /slow/v1/chat/completions uses "slow";
/v1/chat/completions (no prefix) uses "default". So one server serves every scenario, and a
model row's base_url (http://host:port/slow/v1) chooses the pace.

It must never be the bottleneck: replies are built from pre-encoded pieces, and paced streams
are written by one timer per profile for all streams at once (not one sleep per token per
stream: 1,000 streams at 50 tokens/s would be 50,000 wake-ups a second).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import signal
import time
from dataclasses import dataclass

import httptools

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
    uvloop = None

CREATED = 1_700_000_000


@dataclass(frozen=True)
class Profile:
    ttft: float = 0.0  # seconds before the first token
    tokens_per_second: float = 0.0  # 0: the whole reply at once
    reply_tokens: int = 32

    @classmethod
    def parse(cls, spec: str) -> tuple[str, Profile]:
        name, _, values = spec.partition("=")
        ttft, tps, tokens = (values.split(":") + ["", "", ""])[:3]
        return name, cls(float(ttft or 0), float(tps or 0), int(tokens or 32))


def _pieces(n: int) -> list[str]:
    # One word per token (" w0", " w1", ...): tiktoken counts each as one token.
    return [f" w{i % 10}" for i in range(n)]


_ids = itertools.count(1)
_MESSAGES = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed"}


def _head(status: int, content_type: bytes, request_id: bytes, length: int | None, keep_alive: bool) -> bytes:
    lines = [
        b"HTTP/1.1 %d %s" % (status, _MESSAGES.get(status, b"OK")),
        b"content-type: " + content_type,
        b"x-request-id: " + request_id,
        b"request-id: " + request_id,
    ]
    if length is None:
        lines += [b"transfer-encoding: chunked", b"cache-control: no-cache"]
    else:
        lines.append(b"content-length: %d" % length)
    if not keep_alive:
        lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _prompt_tokens(body: dict) -> int:
    # A stand-in count (words of every message): the fake does not need to be exact, only stable.
    total = 0
    messages = list(body.get("messages") or [])
    if isinstance(body.get("system"), str):
        messages.append({"content": body["system"]})
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += len(content.split()) + 3
        elif isinstance(content, list):
            total += sum(len(str(p.get("text", "")).split()) for p in content if isinstance(p, dict)) + 3
    return total


# --- wire formats: each returns (content type, whole body) or (first events, per-token encoder, last events)


class OpenAIFormat:
    path = "/v1/chat/completions"

    @staticmethod
    def whole(body: dict, rid: str, pieces: list[str], prompt: int) -> bytes:
        return json.dumps(
            {
                "id": f"chatcmpl-{rid}",
                "object": "chat.completion",
                "created": CREATED,
                "model": body.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "".join(pieces), "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": len(pieces),
                    "total_tokens": prompt + len(pieces),
                },
                "system_fingerprint": "fp_bench",
            },
            separators=(",", ":"),
        ).encode()

    @staticmethod
    def stream(body: dict, rid: str, pieces: list[str], prompt: int):
        head = json.dumps(
            {
                "id": f"chatcmpl-{rid}",
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": body.get("model"),
                "system_fingerprint": "fp_bench",
            },
            separators=(",", ":"),
        )[:-1].encode()
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        tail = b',"usage":null}' if include_usage else b"}"
        text_head = b"data: " + head + b',"choices":[{"index":0,"delta":{"content":'
        text_tail = b'},"logprobs":null,"finish_reason":null}]' + tail + b"\n\n"
        first = [
            b"data: " + head + b',"choices":[{"index":0,"delta":{"role":"assistant","content":""},'
            b'"logprobs":null,"finish_reason":null}]' + tail + b"\n\n"
        ]
        last = [
            b"data: "
            + head
            + b',"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]'
            + tail
            + b"\n\n"
        ]
        if include_usage:
            usage = {"prompt_tokens": prompt, "completion_tokens": len(pieces), "total_tokens": prompt + len(pieces)}
            last.append(b"data: " + head + b',"choices":[],"usage":' + json.dumps(usage).encode() + b"}\n\n")
        last.append(b"data: [DONE]\n\n")

        def token(piece: str) -> bytes:
            return text_head + json.dumps(piece).encode() + text_tail

        return first, token, last


class AnthropicFormat:
    path = "/v1/messages"

    @staticmethod
    def whole(body: dict, rid: str, pieces: list[str], prompt: int) -> bytes:
        return json.dumps(
            {
                "id": f"msg_{rid}",
                "type": "message",
                "role": "assistant",
                "model": body.get("model"),
                "content": [{"type": "text", "text": "".join(pieces)}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": prompt, "output_tokens": len(pieces)},
            },
            separators=(",", ":"),
        ).encode()

    @staticmethod
    def stream(body: dict, rid: str, pieces: list[str], prompt: int):
        def event(name: str, data: dict) -> bytes:
            return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()

        message = {
            "id": f"msg_{rid}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": prompt, "output_tokens": 1},
        }
        first = [
            event("message_start", {"type": "message_start", "message": message}),
            event(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            ),
        ]
        last = [
            event("content_block_stop", {"type": "content_block_stop", "index": 0}),
            event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": len(pieces)},
                },
            ),
            event("message_stop", {"type": "message_stop"}),
        ]
        delta_head = (
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
            b'"delta":{"type":"text_delta","text":'
        )

        def token(piece: str) -> bytes:
            return delta_head + json.dumps(piece).encode() + b"}}\n\n"

        return first, token, last


FORMATS = {OpenAIFormat.path: OpenAIFormat, AnthropicFormat.path: AnthropicFormat}


class Stream:
    """A paced stream in flight: tokens go out as the profile's clock says they are due."""

    __slots__ = ("conn", "started", "pieces", "sent", "token", "last", "keep_alive")

    def __init__(self, conn, pieces, token, last, keep_alive):
        self.conn, self.pieces, self.token, self.last, self.keep_alive = conn, pieces, token, last, keep_alive
        self.started = time.monotonic()
        self.sent = 0


class Pacer:
    """One timer per profile writes every due token of every stream of that profile."""

    def __init__(self, loop: asyncio.AbstractEventLoop, profile: Profile) -> None:
        self.loop, self.profile = loop, profile
        self.streams: set[Stream] = set()
        self.interval = min(0.01, 1 / profile.tokens_per_second) if profile.tokens_per_second else 0.01
        self.handle = None

    def add(self, stream: Stream) -> None:
        self.streams.add(stream)
        if self.handle is None:
            self.handle = self.loop.call_later(self.interval, self.tick)

    def tick(self) -> None:
        now = time.monotonic()
        profile, done = self.profile, []
        for s in list(self.streams):
            if s.conn.transport is None or s.conn.transport.is_closing():
                done.append(s)
                continue
            elapsed = now - s.started - profile.ttft
            if elapsed < 0:
                continue
            due = min(len(s.pieces), int(elapsed * profile.tokens_per_second) + 1)
            if due > s.sent:
                data = b"".join(_chunk(s.token(p)) for p in s.pieces[s.sent : due])
                s.sent = due
                if due == len(s.pieces):
                    data += b"".join(_chunk(e) for e in s.last) + b"0\r\n\r\n"
                    done.append(s)
                s.conn.transport.write(data)
                if due == len(s.pieces):
                    s.conn.finished(s.keep_alive)
        for s in done:
            self.streams.discard(s)
        self.handle = self.loop.call_later(self.interval, self.tick) if self.streams else None


class VendorProtocol(asyncio.Protocol):
    server: FakeVendorServer

    def __init__(self, server: FakeVendorServer) -> None:
        self.server = server
        self.transport = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []
        self.busy = False  # a paced reply is being written: later (pipelined) requests wait
        self.waiting: list[tuple[bytes, bytes, bool]] = []

    # asyncio
    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.write(_head(400, b"text/plain", b"none", 0, False))
            self.transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url, self.body = b"", []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        request = (self.url, b"".join(self.body), self.parser.should_keep_alive())
        if self.busy:
            self.waiting.append(request)
        else:
            self.respond(*request)

    # replies
    def finished(self, keep_alive: bool) -> None:
        self.busy = False
        if not keep_alive:
            self.transport.close()
        elif self.waiting:
            self.respond(*self.waiting.pop(0))

    def respond(self, url: bytes, raw: bytes, keep_alive: bool) -> None:
        if self.transport is None:
            return
        path = url.split(b"?", 1)[0].decode("latin-1")
        rid = f"req_bench_{next(_ids):08d}"
        profile_name, fmt = "default", None
        for suffix, candidate in FORMATS.items():
            if path.endswith(suffix):
                prefix = path[: -len(suffix)].strip("/")
                profile_name, fmt = prefix or "default", candidate
                break
        profile = self.server.profiles.get(profile_name)
        if fmt is None or profile is None:
            body = b'{"error":{"message":"not found","type":"invalid_request_error"}}'
            self.transport.write(_head(404, b"application/json", rid.encode(), len(body), keep_alive) + body)
            return self.finished(keep_alive)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        pieces = self.server.pieces(profile.reply_tokens)
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        if isinstance(limit, int) and 0 < limit < len(pieces):
            pieces = pieces[:limit]
        prompt = _prompt_tokens(body)
        if not body.get("stream"):
            data = fmt.whole(body, rid, pieces, prompt)
            reply = _head(200, b"application/json", rid.encode(), len(data), keep_alive) + data
            if profile.ttft:
                self.busy = True
                self.server.loop.call_later(profile.ttft, self._late, reply, keep_alive)
            else:
                self.transport.write(reply)
                self.finished(keep_alive)
            return
        first, token, last = fmt.stream(body, rid, pieces, prompt)
        head = _head(200, b"text/event-stream; charset=utf-8", rid.encode(), None, keep_alive)
        if not profile.tokens_per_second and not profile.ttft:
            self.transport.write(
                head + b"".join(_chunk(e) for e in (*first, *map(token, pieces), *last)) + b"0\r\n\r\n"
            )
            return self.finished(keep_alive)
        self.busy = True
        self.transport.write(head + b"".join(_chunk(e) for e in first))
        if not profile.tokens_per_second:  # a delay, then everything
            rest = b"".join(_chunk(e) for e in (*map(token, pieces), *last)) + b"0\r\n\r\n"
            self.server.loop.call_later(profile.ttft, self._late, rest, keep_alive)
            return
        self.server.pacer(profile_name).add(Stream(self, pieces, token, last, keep_alive))

    def _late(self, data: bytes, keep_alive: bool) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
            self.finished(keep_alive)


class FakeVendorServer:
    def __init__(self, profiles: dict[str, Profile]) -> None:
        self.profiles = {"default": Profile(), **profiles}
        self._pieces: dict[int, list[str]] = {}
        self._pacers: dict[str, Pacer] = {}
        self.loop: asyncio.AbstractEventLoop | None = None

    def pieces(self, n: int) -> list[str]:
        if n not in self._pieces:
            self._pieces[n] = _pieces(n)
        return self._pieces[n]

    def pacer(self, name: str) -> Pacer:
        if name not in self._pacers:
            self._pacers[name] = Pacer(self.loop, self.profiles[name])
        return self._pacers[name]

    async def serve(self, host: str, port: int, ready_file: str | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        server = await self.loop.create_server(
            lambda: VendorProtocol(self), host, port, backlog=4096, reuse_address=True
        )
        actual = server.sockets[0].getsockname()[1]
        if ready_file:
            with open(ready_file, "w") as f:
                f.write(str(actual))
        print(f"fake vendor on http://{host}:{actual} profiles={self.profiles}", flush=True)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, stop.set)
        async with server:
            await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fast fake OpenAI/Anthropic vendor for the benchmark.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8199)
    parser.add_argument("--ttft", type=float, default=0.0, help="default profile: seconds to first token")
    parser.add_argument("--tokens-per-second", type=float, default=0.0, help="default profile: 0 = instant")
    parser.add_argument("--reply-tokens", type=int, default=32, help="default profile: tokens per reply")
    parser.add_argument(
        "--profile",
        action="append",
        default=[],
        metavar="NAME=TTFT:TPS:TOKENS",
        help="an extra profile, chosen by the path prefix /NAME/v1/...",
    )
    parser.add_argument("--ready-file", help="write the bound port here once listening")
    args = parser.parse_args(argv)
    profiles = dict(Profile.parse(spec) for spec in args.profile)
    profiles.setdefault("default", Profile(args.ttft, args.tokens_per_second, args.reply_tokens))
    server = FakeVendorServer(profiles)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop if uvloop else None) as runner:
        runner.run(server.serve(args.host, args.port, args.ready_file))


if __name__ == "__main__":
    main()
