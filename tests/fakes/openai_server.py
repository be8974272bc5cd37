"""A fake OpenAI API: POST /v1/chat/completions (JSON and SSE) and GET /v1/models.

The shapes follow the real API (chat.completion, chat.completion.chunk, the final usage
chunk when `stream_options.include_usage`, `data: [DONE]`, `{"error": {...}}` bodies),
so the real `openai` SDK parses them as it would the vendor's.
"""

from __future__ import annotations

import base64
import json
import struct

from tests.fakes.server import AUTO, Exchange, FakeVendor, words_in

# status -> (type, code, message, param): what OpenAI answers for each failure.
STOCK_ERRORS: dict[int, tuple[str, str | None, str, str | None]] = {
    400: (
        "invalid_request_error",
        "context_length_exceeded",
        "This model's maximum context length is 128000 tokens. However, your messages "
        "resulted in 131072 tokens. Please reduce the length of the messages.",
        "messages",
    ),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided: sk-fake***********. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        None,
    ),
    403: (
        "invalid_request_error",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported",
        None,
    ),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model `{model}` does not exist or you do not have access to it.",
        None,
    ),
    422: ("invalid_request_error", None, "Unprocessable entity.", None),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for {model} in organization org-fake on requests per min (RPM): "
        "Limit 3, Used 3, Requested 1. Please try again in 20s.",
        None,
    ),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!", None),
    503: ("server_error", None, "The engine is currently overloaded, please try again later.", None),
}
CREATED = 1_700_000_000


class FakeOpenAI(FakeVendor):
    request_id_header = b"x-request-id"
    models = ["gpt-4o", "gpt-4-turbo", "gpt-3.5-turbo"]

    @property
    def base_url(self) -> str:
        """What OPENAI_BASE_URL (or a model row's base_url) should be set to."""
        return f"{self.url}/v1"

    async def handle(self, exchange: Exchange) -> None:
        path, method = exchange.scope["path"], exchange.scope["method"]
        if path == "/v1/models" and method == "GET":
            data = [{"id": m, "object": "model", "created": CREATED, "owned_by": "openai"} for m in self.models]
            await exchange.json(200, {"object": "list", "data": data})
            return
        if path == "/v1/embeddings" and method == "POST":
            await embeddings(exchange)
            return
        if path != "/v1/chat/completions" or method != "POST":
            await exchange.json(404, error_body(404, "Not found", "invalid_request_error", None))
            return

        body = exchange.body or {}
        model = str(body.get("model", ""))
        reply = exchange.reply
        if not exchange.headers.get("authorization", "").startswith("Bearer "):
            await exchange.json(401, error_body(401, "You didn't provide an API key.", "invalid_request_error", None))
            return
        if reply.status != 200:
            kind, code, message, param = STOCK_ERRORS.get(reply.status, STOCK_ERRORS[500])
            message = (reply.error_message or message).replace("{model}", model)
            await exchange.json(reply.status, error_body(reply.status, message, kind, reply.error_type or code, param))
            return

        pieces = reply.pieces()
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        finish = reply.finish_reason or "stop"
        if limit and len(pieces) > limit:
            pieces, finish = pieces[:limit], reply.finish_reason or "length"
        usage = reported_usage(reply.usage, body, len(pieces))
        if usage is not None and reply.cache[0]:
            usage["prompt_tokens_details"] = {"cached_tokens": reply.cache[0]}
        completion_id = f"chatcmpl-{exchange.request_id}"
        calls = [
            {"id": f"call_{index}", "type": "function", "function": dict(call)}
            for index, call in enumerate(reply.tool_calls or [])
        ]
        if calls:
            pieces, finish = [], reply.finish_reason or "tool_calls"
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            await stream(
                exchange, completion_id, model, pieces, finish, usage if include_usage else None, include_usage, calls
            )
            return
        data = {
            "id": completion_id,
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(pieces) or None, "refusal": None}
                    | ({"tool_calls": calls} if calls else {}),
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "system_fingerprint": "fp_fake",
        }
        if usage is not None:
            data["usage"] = usage
        await exchange.json(200, data)


async def embeddings(exchange: Exchange) -> None:
    """POST /v1/embeddings: a small vector per input, as floats or base64 float32 (what the SDK
    asks for by default), with the input's words as usage."""
    body, reply = exchange.body or {}, exchange.reply
    if not exchange.headers.get("authorization", "").startswith("Bearer "):
        await exchange.json(401, error_body(401, "You didn't provide an API key.", "invalid_request_error", None))
        return
    if reply.status != 200:
        kind, code, message, param = STOCK_ERRORS.get(reply.status, STOCK_ERRORS[500])
        await exchange.json(reply.status, error_body(reply.status, message, kind, reply.error_type or code, param))
        return
    inputs = body.get("input")
    inputs = [inputs] if isinstance(inputs, str) or (inputs and isinstance(inputs[0], int)) else inputs
    size = int(body.get("dimensions") or 8)
    data = []
    for index, item in enumerate(inputs or []):
        vector = [round(((len(str(item)) * 31 + index * 7 + n) % 97) / 97, 6) for n in range(size)]
        encoded: object = vector
        if body.get("encoding_format") == "base64":
            encoded = base64.b64encode(struct.pack(f"<{size}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    prompt = words_in([{"content": str(item)} for item in inputs or []]) if reply.usage == AUTO else None
    if isinstance(reply.usage, tuple):
        prompt = reply.usage[0]
    answer: dict = {"object": "list", "data": data, "model": body.get("model")}
    if prompt is not None:
        answer["usage"] = {"prompt_tokens": prompt, "total_tokens": prompt}
    await exchange.json(200, answer)


def error_body(status: int, message: str, kind: str, code: str | None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def reported_usage(usage: object, body: dict, completion_tokens: int) -> dict | None:
    if usage is None:
        return None
    if usage == AUTO:
        prompt, completion = words_in(body.get("messages")), completion_tokens
    else:
        prompt, completion = usage  # type: ignore[misc]
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


async def stream(
    exchange: Exchange,
    completion_id: str,
    model: str,
    pieces: list[str],
    finish: str,
    usage: dict | None,
    include_usage: bool,
    calls: list[dict] | None = None,
) -> None:
    # Every chunk but the text is the same: build its bytes once and splice the text in.
    head = json.dumps(
        {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "system_fingerprint": "fp_fake",
        }
    )[:-1].encode()
    tail = b',"usage":null}' if include_usage else b"}"

    def chunk(delta: dict, finish_reason: str | None) -> bytes:
        choices = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
        return b"data: " + head + b',"choices":' + json.dumps(choices).encode() + tail + b"\n\n"

    text_head = b"data: " + head + b',"choices":[{"index":0,"delta":{"content":'
    text_tail = b'},"logprobs":null,"finish_reason":null}]' + tail + b"\n\n"

    await exchange.start_stream()
    if not await exchange.event(chunk({"role": "assistant", "content": ""}, None), delay=False):
        return
    cut_after = exchange.reply.cut_after
    for sent, piece in enumerate(pieces):
        if cut_after is not None and sent >= cut_after:
            return  # drop the connection mid-body (see Exchange)
        if not await exchange.event(text_head + json.dumps(piece).encode() + text_tail):
            return
    for index, call in enumerate(calls or []):
        # As OpenAI streams a call: its id and name first, then its arguments in fragments.
        arguments = call["function"]["arguments"]
        opening = {
            "index": index,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""},
        }
        fragments = [arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]]
        deltas = [opening] + [{"index": index, "function": {"arguments": fragment}} for fragment in fragments]
        for delta in deltas:
            if not await exchange.event(chunk({"tool_calls": [delta]}, None)):
                return
    if cut_after is not None:
        return
    if not await exchange.event(chunk({}, finish)):
        return
    if usage is not None:
        final = dict(json.loads(head + b"}"), choices=[], usage=usage)
        await exchange.event(b"data: " + json.dumps(final).encode() + b"\n\n", delay=False)
    await exchange.event(b"data: [DONE]\n\n", delay=False)
    await exchange.end_stream()
