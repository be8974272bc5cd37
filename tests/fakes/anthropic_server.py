"""A fake Anthropic API: POST /v1/messages, as JSON or as the SSE event stream.

Stream events follow the real order: message_start (usage.input_tokens), content_block_start,
ping, content_block_delta (text_delta) ..., content_block_stop, message_delta
(usage.output_tokens), message_stop. Errors carry the real `{"type": "error", ...}` body.
"""

from __future__ import annotations

import json

from tests.fakes.server import AUTO, Exchange, FakeVendor, words_in

# status -> (error.type, message): what Anthropic answers for each failure.
STOCK_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum"),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "model: {model}"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: (
        "rate_limit_error",
        "This request would exceed the rate limit for your organization of 50 requests per minute.",
    ),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}


class FakeAnthropic(FakeVendor):
    request_id_header = b"request-id"

    @property
    def base_url(self) -> str:
        """What ANTHROPIC_BASE_URL (or a model row's base_url) should be set to."""
        return self.url

    async def handle(self, exchange: Exchange) -> None:
        path, method = exchange.scope["path"], exchange.scope["method"]
        body = exchange.body or {}
        model = str(body.get("model", ""))
        reply = exchange.reply
        if path != "/v1/messages" or method != "POST":
            await exchange.json(404, error_body(exchange, "not_found_error", "Not found"))
            return
        # Older SDKs send the key as x-api-key; anthropic 2.x sends "authorization: Bearer".
        if not (exchange.headers.get("x-api-key") or exchange.headers.get("authorization")):
            await exchange.json(401, error_body(exchange, "authentication_error", "x-api-key header is required"))
            return
        sampling = [name for name in ("temperature", "top_p", "top_k") if name in body]
        if sampling:  # what API version 2026-10-21 answers, whatever the value
            message = f"{sampling[0]}: Extra inputs are not permitted"
            await exchange.json(400, error_body(exchange, "invalid_request_error", message))
            return
        if reply.status != 200:
            kind, message = STOCK_ERRORS.get(reply.status, STOCK_ERRORS[500])
            message = (reply.error_message or message).replace("{model}", model)
            body = error_body(exchange, reply.error_type or kind, message)
            await exchange.json(reply.status, body)
            return

        pieces = reply.pieces()
        stop_reason = reply.finish_reason or "end_turn"
        # Generation stops before the first stop sequence the text reaches, which is not sent.
        pieces, stop_sequence = cut_at_stop_sequence(pieces, body.get("stop_sequences") or [])
        if stop_sequence is not None:
            stop_reason = "stop_sequence"
        limit = body.get("max_tokens")
        if limit and len(pieces) > limit:
            pieces, stop_reason, stop_sequence = pieces[:limit], reply.finish_reason or "max_tokens", None
        if reply.usage is None:
            usage = None
        elif reply.usage == AUTO:
            usage = (words_in(body.get("messages"), body.get("system")), len(pieces))
        else:
            usage = tuple(reply.usage)  # type: ignore[arg-type]
        message_id = f"msg_{exchange.request_id}"
        tools = [
            {"type": "tool_use", "id": f"toolu_{index}", "name": call["name"], "input": json.loads(call["arguments"])}
            for index, call in enumerate(reply.tool_calls or [])
        ]
        if tools:
            pieces, stop_reason = [], reply.finish_reason or "tool_use"
        if body.get("stream"):
            await stream(exchange, message_id, model, pieces, stop_reason, usage, stop_sequence, tools)
            return
        data = {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": thinking_blocks(reply.thinking)
            + ([{"type": "text", "text": "".join(pieces)}] if pieces or not tools else [])
            + tools,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
        }
        if usage is not None:
            data["usage"] = {"input_tokens": usage[0], "output_tokens": usage[1]} | cache_counts(reply.cache)
        await exchange.json(200, data)


def cut_at_stop_sequence(pieces: list[str], stop_sequences: list[str]) -> tuple[list[str], str | None]:
    """The pieces up to the first stop sequence in their text, and that sequence (None: none met)."""
    text = "".join(pieces)
    found = [(text.find(sequence), sequence) for sequence in stop_sequences if sequence and sequence in text]
    if not found:
        return pieces, None
    position, sequence = min(found)
    kept, length = [], 0
    for piece in pieces:
        if length + len(piece) > position:
            if position > length:
                kept.append(piece[: position - length])
            break
        kept.append(piece)
        length += len(piece)
    return kept, sequence


SIGNATURE = "c2lnbmVkLWJ5LXRoZS1mYWtl"


def thinking_blocks(thinking: str | None) -> list[dict]:
    return [] if thinking is None else [{"type": "thinking", "thinking": thinking, "signature": SIGNATURE}]


def cache_counts(cache: tuple[int, int]) -> dict:
    """Anthropic reports the prompt tokens read from and written to its cache apart from input_tokens."""
    read, written = cache
    return {"cache_read_input_tokens": read, "cache_creation_input_tokens": written} if read or written else {}


def error_body(exchange: Exchange, kind: str, message: str) -> dict:
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": exchange.request_id}


def event(name: str, data: dict) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + json.dumps(data).encode() + b"\n\n"


async def stream(
    exchange: Exchange,
    message_id: str,
    model: str,
    pieces: list[str],
    stop_reason: str,
    usage: tuple | None,
    stop_sequence: str | None = None,
    tools: list[dict] | None = None,
) -> None:
    message: dict = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": model,
        "stop_reason": None,
        "stop_sequence": None,
    }
    if usage is not None:
        message["usage"] = {"input_tokens": usage[0], "output_tokens": 1} | cache_counts(exchange.reply.cache)
    thinking = exchange.reply.thinking
    first = 0 if thinking is None else 1  # the text block's index: after the thinking block, if any
    delta_head = (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
        b'"delta":{"type":"text_delta","text":' % first
    )
    await exchange.start_stream()
    opening = event("message_start", {"type": "message_start", "message": message})
    if thinking is not None:
        block = {"type": "thinking", "thinking": "", "signature": ""}
        opening += event("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block})
        for delta in (
            {"type": "thinking_delta", "thinking": thinking},
            {"type": "signature_delta", "signature": SIGNATURE},
        ):
            opening += event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
        opening += event("content_block_stop", {"type": "content_block_stop", "index": 0})
    opening += event(
        "content_block_start",
        {"type": "content_block_start", "index": first, "content_block": {"type": "text", "text": ""}},
    ) + event("ping", {"type": "ping"})
    if not await exchange.event(opening, delay=False):
        return
    cut_after = exchange.reply.cut_after
    for sent, piece in enumerate(pieces):
        if cut_after is not None and sent >= cut_after:
            return  # drop the connection mid-body (see Exchange)
        if not await exchange.event(delta_head + json.dumps(piece).encode() + b"}}\n\n"):
            return
    if cut_after is not None:
        return
    for index, tool in enumerate(tools or [], start=first + 1):
        # As Anthropic streams a tool call: the block with an empty input, then the input's JSON
        # in fragments.
        arguments = json.dumps(tool["input"])
        start = {"type": "content_block_start", "index": index, "content_block": tool | {"input": {}}}
        fragments = [arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]]
        events = event("content_block_stop", {"type": "content_block_stop", "index": index - 1}) + event(
            "content_block_start", start
        )
        for fragment in fragments:
            delta = {"type": "input_json_delta", "partial_json": fragment}
            events += event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        if not await exchange.event(events):
            return
    last_block = first + len(tools or [])
    message_delta: dict = {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
    }
    if usage is not None:
        message_delta["usage"] = {"output_tokens": usage[1]}
    closing = (
        event("content_block_stop", {"type": "content_block_stop", "index": last_block})
        + event("message_delta", message_delta)
        + event("message_stop", {"type": "message_stop"})
    )
    if await exchange.event(closing):
        await exchange.end_stream()
