"""The load generator: a raw asyncio HTTP/1.1 keep-alive client (uvloop + httptools), one
process, many connections. It measures per request the latency (request written -> last byte),
the time to first body byte and the time to the first token of a stream.

    python -m bench.loadgen --url http://127.0.0.1:8000/v1/chat/completions \\
        --body '{"model": "m", "messages": [...]}' -c 32 -d 10 -w 2

Modes:
  closed (default): each of -c connections sends its next request as soon as the last one ended,
      for -w seconds of warm-up (not recorded), then -d seconds that are (like wrk).
  burst: -c connections are opened first, then each sends one request at the same instant.

Prints one JSON object (counts, requests/s, percentiles in ms, its own CPU seconds). A request
is an error when the status is not 2xx, the connection broke, or a stream did not finish
(no `[DONE]` / `event: done`) or carried an error event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import sys
import time
from urllib.parse import urlsplit

import httptools

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

# A token has arrived: an OpenAI delta with text (gateway, LiteLLM and vendor alike), an
# Anthropic text delta, or the dialog endpoint's `event: delta`.
TOKEN = re.compile(rb'"content": ?"[^"]|"text_delta"|event: delta')
STREAM_END = re.compile(rb"data: \[DONE\]|event: done|event: message_stop")
STREAM_ERROR = re.compile(rb'data: \{"error"|event: error')


class Result:
    __slots__ = ("start", "first_byte", "first_token", "end", "status", "error")

    def __init__(self, start: float) -> None:
        self.start = start
        self.first_byte = self.first_token = self.end = None
        self.status = 0
        self.error = ""


class Client(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self, stream: bool) -> None:
        self.stream = stream
        self.transport = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future | None = None
        self.result: Result | None = None
        self.tail = b""  # the last bytes of the body so far: markers may straddle two reads
        self.seen_end = self.seen_error = False
        self.keep_alive = True
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.transport = None
        if self.waiter is not None and not self.waiter.done():
            self.result.error = f"connection lost: {exc or 'closed by server'}"
            self.waiter.set_result(None)
        if not self.lost.done():
            self.lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self.waiter is not None and not self.waiter.done():
                self.result.error = f"bad response: {exc}"
                self.waiter.set_result(None)
            self.transport.close()

    def on_headers_complete(self) -> None:
        self.result.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        result, now = self.result, time.perf_counter()
        if result.first_byte is None:
            result.first_byte = now
        if self.stream:
            window = self.tail + body
            if result.first_token is None and TOKEN.search(window):
                result.first_token = now
            if STREAM_END.search(window):
                self.seen_end = True
            if STREAM_ERROR.search(window):
                self.seen_error = True
            self.tail = window[-64:]

    def on_message_complete(self) -> None:
        result = self.result
        result.end = time.perf_counter()
        if not 200 <= result.status < 300:
            result.error = f"HTTP {result.status}"
        elif self.stream and self.seen_error:
            result.error = "error event in stream"
        elif self.stream and not self.seen_end:
            result.error = "stream ended early"
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def request(self, data: bytes, timeout: float) -> Result:
        self.result = Result(time.perf_counter())
        self.tail, self.seen_end, self.seen_error = b"", False, False
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        try:
            await asyncio.wait_for(self.waiter, timeout)
        except TimeoutError:
            self.result.error = "timeout"
            self.transport.close()
        return self.result


def build_requests(url: str, bodies: list[bytes], paths: list[str], headers: dict[str, str]) -> list[bytes]:
    parts = urlsplit(url)
    host = parts.netloc
    out = []
    for i in range(max(len(bodies), len(paths))):
        body = bodies[i % len(bodies)]
        path = paths[i % len(paths)] if paths else (parts.path or "/")
        lines = [
            f"POST {path} HTTP/1.1",
            f"Host: {host}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            "Connection: keep-alive",
        ]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        out.append(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    return out


class Load:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        parts = urlsplit(args.url)
        self.host, self.port = parts.hostname, parts.port or 80
        bodies = [b.encode() for b in args.body] or [b"{}"]
        headers = dict(h.split(":", 1) for h in args.header)
        headers = {k.strip(): v.strip() for k, v in headers.items()}
        self.requests = build_requests(args.url, bodies, args.path, headers)
        self.next = 0
        self.results: list[Result] = []
        self.finished_all = 0  # warm-up and tail included: what the server did for this run
        self.connect_errors = 0

    def take(self) -> bytes:
        data = self.requests[self.next % len(self.requests)]
        self.next += 1
        return data

    async def connect(self) -> Client | None:
        loop = asyncio.get_running_loop()
        for _ in range(5):
            try:
                _, client = await loop.create_connection(lambda: Client(self.args.stream), self.host, self.port)
                return client
            except OSError:
                await asyncio.sleep(0.05)
        self.connect_errors += 1
        return None

    async def worker(self, record_from: float, stop_at: float) -> None:
        client = None
        while time.perf_counter() < stop_at:
            if client is None or client.transport is None or not client.keep_alive:
                if client is not None and client.transport is not None:
                    client.transport.close()
                client = await self.connect()
                if client is None:
                    await asyncio.sleep(0.1)
                    continue
            result = await client.request(self.take(), self.args.timeout)
            self.finished_all += 1
            if record_from <= (result.end or time.perf_counter()) <= stop_at:
                self.results.append(result)
        if client is not None and client.transport is not None:
            client.transport.close()

    async def closed_loop(self) -> float:
        now = time.perf_counter()
        record_from = now + self.args.warmup
        stop_at = record_from + self.args.duration
        await asyncio.gather(*(self.worker(record_from, stop_at) for _ in range(self.args.concurrency)))
        return self.args.duration

    async def burst(self) -> float:
        clients = await asyncio.gather(*(self.connect() for _ in range(self.args.concurrency)))
        clients = [c for c in clients if c is not None]
        await asyncio.sleep(0.2)  # let the server accept them all before the clock starts
        started = time.perf_counter()
        results = await asyncio.gather(*(c.request(self.take(), self.args.timeout) for c in clients))
        elapsed = time.perf_counter() - started
        self.results.extend(results)
        self.finished_all = len(results)
        for c in clients:
            if c.transport is not None:
                c.transport.close()
        return elapsed

    def summary(self, elapsed: float) -> dict:
        ok = [r for r in self.results if not r.error]
        errors: dict[str, int] = {}
        for r in self.results:
            if r.error:
                errors[r.error] = errors.get(r.error, 0) + 1
        if self.connect_errors:
            errors["connect failed"] = self.connect_errors

        def ms(values: list[float]) -> dict:
            values = sorted(v * 1000 for v in values)
            if not values:
                return {"p50": None, "p90": None, "p99": None, "max": None, "mean": None}

            def pct(p: float) -> float:
                return round(values[min(len(values) - 1, int(p / 100 * len(values)))], 3)

            return {
                "p50": pct(50),
                "p90": pct(90),
                "p99": pct(99),
                "max": round(values[-1], 3),
                "mean": round(sum(values) / len(values), 3),
            }

        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "mode": self.args.mode,
            "concurrency": self.args.concurrency,
            "stream": self.args.stream,
            "elapsed_s": round(elapsed, 3),
            "requests": len(self.results),
            "finished_all": self.finished_all,
            "ok": len(ok),
            "errors": sum(errors.values()),
            "error_kinds": errors,
            "rps": round(len(ok) / elapsed, 1) if elapsed else 0.0,
            "latency_ms": ms([r.end - r.start for r in ok]),
            "first_byte_ms": ms([r.first_byte - r.start for r in ok if r.first_byte]),
            "first_token_ms": ms([r.first_token - r.start for r in ok if r.first_token]),
            "client_cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        }


async def run(args: argparse.Namespace) -> dict:
    load = Load(args)
    elapsed = await (load.burst() if args.mode == "burst" else load.closed_loop())
    return load.summary(elapsed)


def raise_open_files_limit(want: int = 65536) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Async HTTP/1.1 load generator (JSON summary on stdout).")
    parser.add_argument("--url", required=True, help="http://host:port/path (the path unless --path is given)")
    parser.add_argument("--path", action="append", default=[], help="paths to rotate through (repeatable)")
    parser.add_argument("--body", action="append", default=[], help="JSON bodies to rotate through (repeatable)")
    parser.add_argument("--header", action="append", default=[], help="'Name: value' (repeatable)")
    parser.add_argument("-c", "--concurrency", type=int, default=1)
    parser.add_argument("-d", "--duration", type=float, default=10.0)
    parser.add_argument("-w", "--warmup", type=float, default=2.0)
    parser.add_argument("--mode", choices=["closed", "burst"], default="closed")
    parser.add_argument("--stream", action="store_true", help="expect SSE: check the end, time the first token")
    parser.add_argument("--timeout", type=float, default=60.0, help="per request, seconds")
    args = parser.parse_args(argv)
    raise_open_files_limit(args.concurrency * 2 + 256)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop if uvloop else None) as runner:
        summary = runner.run(run(args))
    json.dump(summary, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
