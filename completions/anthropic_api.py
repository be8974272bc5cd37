"""Anthropic-compatible endpoint: POST /v1/messages (the Messages API and its SSE events).

Programs written for the Anthropic SDK work with base_url="http://gateway" and a gateway API key
(sent as x-api-key or Authorization: Bearer). Any catalog model answers, OpenAI ones included.
"""

import json
import secrets
from collections.abc import AsyncGenerator

from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from common.db import db_phase
from common.errors import GatewayError, json_object
from common.request_ids import request_id_of
from completions.core import Call, CallParams, call_complete, call_prepare, call_stream_open, prompt_tokens_count
from llm_models.models import ProviderKind
from llm_models.providers.base import Chunk, Usage
from llm_models.providers.tokens import has_images

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    502: "api_error",
    503: "overloaded_error",
    504: "api_error",
}
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}


def _usage(usage: Usage) -> dict:
    """Anthropic's counts: its input_tokens leave out what was read from or written to the cache."""
    counts = {
        "input_tokens": usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens,
        "output_tokens": usage.completion_tokens,
    }
    if usage.cached_tokens or usage.cache_write_tokens:
        counts |= {
            "cache_read_input_tokens": usage.cached_tokens,
            "cache_creation_input_tokens": usage.cache_write_tokens,
        }
    return counts


def _stop_reason(finish_reason: str | None, stop_sequence: str | None) -> str:
    """Anthropic's stop_reason for the neutral finish reason (a stop sequence is told apart)."""
    if stop_sequence is not None:
        return "stop_sequence"
    return STOP_REASONS.get(finish_reason or "", "end_turn")


def anthropic_error_body(error: GatewayError) -> dict:
    return {"type": "error", "error": {"type": ERROR_TYPES.get(error.status, "api_error"), "message": error.message}}


def anthropic_error(error: GatewayError) -> JsonResponse:
    response = JsonResponse(anthropic_error_body(error), status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    return response


def _texts(content, where: str, untranslatable: list[str]) -> list[str]:
    """The text of each text block of `content` (a string is one block); other blocks (images,
    tool use and results, documents) are named in `untranslatable`: Anthropic gets them as they
    came, a vendor of another format cannot."""
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        texts = []
        for block in content:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text":
                texts.append(str(block.get("text", "")))
            else:
                untranslatable.append(f"{where}: {kind or 'a'} blocks")
        return texts
    raise GatewayError(f"{where} must be a string or a list of content blocks.", type="invalid_request")


# The request fields this endpoint reads itself (a vendor of another format gets them
# translated); any other goes to Anthropic as it came and is refused, named, for another vendor.
INTERPRETED = {
    "model",
    "messages",
    "system",
    "max_tokens",
    "stop_sequences",
    "temperature",
    "top_p",
    "stream",
    "metadata",  # for Anthropic's abuse detection: another vendor is not sent it
}


def parse_messages_request(raw: bytes) -> tuple[CallParams, bool]:
    body = json_object(raw)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise GatewayError("model: Field required", type="invalid_request")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise GatewayError("messages: must be a non-empty list", type="invalid_request")
    messages: list[dict] = []
    untranslatable: list[str] = []
    system_texts = _texts(body["system"], "system", untranslatable) if body.get("system") else []
    # One system message per block: blocks stay apart (an OpenAI vendor gets each as its own).
    messages += [{"role": "system", "content": text} for text in system_texts]
    for message in raw_messages:
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise GatewayError("messages: each role must be 'user' or 'assistant'", type="invalid_request")
        texts = _texts(message.get("content"), "messages", untranslatable)
        messages.append({"role": message["role"], "content": "".join(texts)})
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise GatewayError("max_tokens: must be a positive integer", type="invalid_request")
    stop = body.get("stop_sequences")
    if stop is not None and not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise GatewayError("stop_sequences: must be a list of strings", type="invalid_request")
    for name, high in (("temperature", 1), ("top_p", 1)):
        value = body.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= high
        ):
            raise GatewayError(f"{name}: must be a number from 0 to {high}", type="invalid_request")
    # Anthropic gets the request as it came, but for what the gateway sets (the vendor's model id,
    # the reply's allowance) and the stream flag, which the provider sets itself.
    native = {name: value for name, value in body.items() if name not in ("model", "max_tokens", "stream")}
    system = body.get("system")
    params = CallParams(
        model=model,
        messages=messages,
        max_tokens=max_tokens,
        stop=stop or None,
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        wire=ProviderKind.ANTHROPIC,
        forwarded=native,
        counted=([{"role": "system", "content": system}] if system else []) + raw_messages,
        untranslatable=untranslatable + sorted(set(body) - INTERPRETED),
        needs={
            need
            for need, wanted in (
                ("tools", bool(body.get("tools"))),
                ("vision", has_images(raw_messages)),
                ("reasoning", bool(body.get("thinking"))),
            )
            if wanted
        },
    )
    return params, bool(body.get("stream"))


def _event(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _message_id() -> str:
    return "msg_" + secrets.token_hex(12)


async def _relayed_sse(call: Call, items: AsyncGenerator[Chunk | GatewayError]) -> AsyncGenerator[bytes]:
    """Anthropic's own events (the model is Anthropic's), with the gateway's model name: tool use,
    thinking and every other block reach the client as the vendor sent them."""
    async for item in items:
        if isinstance(item, GatewayError):
            yield _event("error", anthropic_error_body(item))
            return
        if item.raw is not None:
            event = item.raw
            if event.get("type") == "message_start":
                event = event | {"message": (event.get("message") or {}) | {"model": call.model.name}}
            yield _event(str(event.get("type")), event)


async def _sse(call: Call, items: AsyncGenerator[Chunk | GatewayError]) -> AsyncGenerator[bytes]:
    if call.relays:
        async for event in _relayed_sse(call, items):
            yield event
        return
    model = call.model.name
    yield _event(
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": _message_id(),
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": call.admission.prompt_tokens, "output_tokens": 0},
            },
        },
    )
    yield _event(
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    )
    async for item in items:
        if isinstance(item, GatewayError):
            yield _event("error", anthropic_error_body(item))
            return
        if item.text:
            yield _event(
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": item.text}},
            )
        elif item.usage is not None:
            yield _event("content_block_stop", {"type": "content_block_stop", "index": 0})
            yield _event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": _stop_reason(item.finish_reason, item.stop_sequence),
                        "stop_sequence": item.stop_sequence,
                    },
                    "usage": _usage(item.usage),
                },
            )
            yield _event("message_stop", {"type": "message_stop"})


@csrf_exempt
async def messages(request: HttpRequest) -> HttpResponseBase:
    response = await _messages(request)
    # The gateway's id where the Anthropic SDK reads a request id (`_request_id`, its errors'
    # `request_id`); the middleware sets x-request-id too.
    response["request-id"] = request_id_of(request)
    return response


async def _messages(request: HttpRequest) -> HttpResponseBase:
    if request.method != "POST":
        return anthropic_error(GatewayError("Use POST.", status=405, type="method_not_allowed"))
    try:
        params, stream = parse_messages_request(request.body)
        call = await db_phase(call_prepare, request, params, endpoint="anthropic")
        if stream:
            items = await call_stream_open(call)
            response = StreamingHttpResponse(_sse(call, items), content_type="text/event-stream")
            response["Cache-Control"] = "no-cache"
            response["X-Accel-Buffering"] = "no"
            return response
        reply = await call_complete(call)
    except GatewayError as error:
        return anthropic_error(error)
    if call.relays and reply.raw is not None:
        # Anthropic's own answer (tool use, thinking, ...), under the gateway's name for the model.
        return JsonResponse(reply.raw | {"model": call.model.name})
    return JsonResponse(
        {
            "id": _message_id(),
            "type": "message",
            "role": "assistant",
            "model": call.model.name,
            "content": [{"type": "text", "text": reply.text}],
            "stop_reason": _stop_reason(reply.finish_reason, reply.stop_sequence),
            "stop_sequence": reply.stop_sequence,
            "usage": _usage(reply.usage),
        }
    )


@csrf_exempt
async def count_tokens(request: HttpRequest) -> HttpResponseBase:
    """POST /v1/messages/count_tokens: the request's input tokens, counted offline; nothing is
    held or billed."""
    if request.method != "POST":
        response: HttpResponseBase = anthropic_error(GatewayError("Use POST.", status=405, type="method_not_allowed"))
    else:
        try:
            params, _ = parse_messages_request(request.body)
            response = JsonResponse({"input_tokens": await db_phase(prompt_tokens_count, request, params)})
        except GatewayError as error:
            response = anthropic_error(error)
    response["request-id"] = request_id_of(request)
    return response
