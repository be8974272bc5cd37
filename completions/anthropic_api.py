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
from completions.core import (
    Call,
    CallParams,
    Outcome,
    call_complete,
    call_prepare,
    call_stream_open,
    model_name_checked,
    prompt_tokens_count,
)
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


def _image_part(block: dict, where: str, untranslatable: list[str]) -> dict | None:
    """An image block as OpenAI's image_url part (base64 as a data: URL), or None (named)."""
    source = block["source"] if isinstance(block.get("source"), dict) else {}
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    elif source.get("type") == "url":
        url = str(source.get("url", ""))
    else:
        untranslatable.append(f"{where}: images from a {source.get('type') or 'missing'} source")
        return None
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_result_text(block: dict, where: str, untranslatable: list[str]) -> str:
    """A tool_result's content as the text of an OpenAI tool message (an error says so)."""
    content = block.get("content")
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            else:
                kind = part.get("type") if isinstance(part, dict) else None
                untranslatable.append(f"{where}: {kind or 'untyped'} blocks in a tool result")
        content = "".join(texts)
    text = "" if content is None else str(content)
    return f"Error: {text}" if block.get("is_error") else text


def _neutral_messages(role: str, content: object, where: str, untranslatable: list[str]) -> list[dict]:
    """One Anthropic message as neutral (OpenAI-style) ones: a user turn's tool results become
    tool messages (first: OpenAI wants them right after the calls), its text and images a user
    message; an assistant turn's tool_use blocks become its tool_calls."""
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise GatewayError(f"{where}: content must be a string or a list of content blocks", type="invalid_request")
    results, parts, calls = [], [], []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind == "image" and role == "user":
            if part := _image_part(block, where, untranslatable):
                parts.append(part)
        elif kind == "tool_result" and role == "user":
            result = _tool_result_text(block, where, untranslatable)
            results.append({"role": "tool", "tool_call_id": str(block.get("tool_use_id", "")), "content": result})
        elif kind == "tool_use" and role == "assistant":
            arguments = json.dumps(block.get("input") or {}, ensure_ascii=False)
            function = {"name": str(block.get("name", "")), "arguments": arguments}
            calls.append({"id": str(block.get("id", "")), "type": "function", "function": function})
        elif kind in ("thinking", "redacted_thinking") and role == "assistant":
            continue  # Claude's own record of its thoughts: OpenAI keeps none in the history
        else:
            untranslatable.append(f"{where}: {kind or 'untyped'} blocks")
    message: dict = {"role": role, "content": "".join(part["text"] for part in parts if part["type"] == "text")}
    if any(part["type"] != "text" for part in parts):
        message["content"] = parts
    if calls:
        message["tool_calls"] = calls
    return results + ([message] if parts or calls or not results else [])


def _tool(tool: object, index: int, untranslatable: list[str]) -> dict | None:
    """A client tool as OpenAI's function tool; a server tool (web search, code execution, ...)
    runs at Anthropic only (named)."""
    if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
        raise GatewayError(f"tools.{index}: a tool needs a name", type="invalid_request")
    if tool.get("type") not in (None, "custom"):
        untranslatable.append(f"tools.{index}: {tool['type']} tools")
        return None
    function = {"name": tool["name"], "parameters": tool.get("input_schema") or {"type": "object"}}
    for name in ("description", "strict"):
        if tool.get(name) is not None:
            function[name] = tool[name]
    return {"type": "function", "function": function}


def _tool_choice(choice: object, options: dict, untranslatable: list[str]) -> None:
    if not isinstance(choice, dict):
        raise GatewayError("tool_choice: must be an object with a type", type="invalid_request")
    kind = choice.get("type")
    if kind == "tool":
        options["tool_choice"] = {"type": "function", "function": {"name": str(choice.get("name", ""))}}
    elif kind in ("auto", "any", "none"):
        options["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
    else:
        untranslatable.append(f"tool_choice: {str(kind)[:20]}")
    if choice.get("disable_parallel_tool_use"):
        options["parallel_tool_calls"] = False


# Claude's effort -> OpenAI's reasoning_effort; a thinking budget -> the effort it buys, at most.
EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "xhigh", "max": "xhigh"}
BUDGET_EFFORTS = ((4_096, "low"), (16_384, "medium"))


def _options(body: dict, untranslatable: list[str]) -> dict:
    """tools, tool_choice, output_config and thinking as the neutral options (OpenAI's names)."""
    options: dict = {}
    if body.get("tools") is not None:
        if not isinstance(body["tools"], list):
            raise GatewayError("tools: must be a list", type="invalid_request")
        tools = [_tool(tool, index, untranslatable) for index, tool in enumerate(body["tools"])]
        if any(tools):  # OpenAI refuses an empty list
            options["tools"] = [tool for tool in tools if tool]
    if body.get("tool_choice") is not None:
        _tool_choice(body["tool_choice"], options, untranslatable)
    config = body.get("output_config") or {}
    if not isinstance(config, dict):
        raise GatewayError("output_config: must be an object", type="invalid_request")
    untranslatable += [f"output_config.{name}" for name in sorted(set(config) - {"format", "effort"})]
    output_format = config.get("format")
    if isinstance(output_format, dict) and output_format.get("type") == "json_schema":
        if not isinstance(output_format.get("schema"), dict):
            raise GatewayError("output_config.format.schema: must be an object", type="invalid_request")
        schema = {"name": "output", "schema": output_format["schema"]}
        options["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif output_format is not None:
        untranslatable.append("output_config.format: other than json_schema")
    effort = EFFORTS.get(str(config.get("effort")))
    if config.get("effort") is not None and effort is None:
        untranslatable.append(f"output_config.effort: {str(config['effort'])[:20]}")
    thinking = body.get("thinking")
    if effort is None and isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if isinstance(budget, bool) or not isinstance(budget, int):
            raise GatewayError("thinking.budget_tokens: must be an integer", type="invalid_request")
        effort = next((name for limit, name in BUDGET_EFFORTS if budget < limit), "high")
    if effort:
        options["reasoning_effort"] = effort
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and metadata.get("user_id"):
        options["user"] = str(metadata["user_id"])
    return options


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
    "tools",
    "tool_choice",
    "output_config",
    "thinking",
    "metadata",  # its user_id becomes OpenAI's `user`; the rest serves Anthropic's abuse detection
    "cache_control",  # a cache marker: OpenAI-style vendors cache prompts on their own
}


def _system(system: object, untranslatable: list[str]) -> list[dict]:
    """The system prompt as system messages, one per block (blocks stay apart). Their
    cache_control markers are not needed by OpenAI-style vendors, which cache on their own."""
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    if not isinstance(system, list):
        raise GatewayError("system: must be a string or a list of text blocks", type="invalid_request")
    messages = []
    for block in system:
        if isinstance(block, dict) and block.get("type") == "text":
            messages.append({"role": "system", "content": str(block.get("text", ""))})
        else:
            untranslatable.append("system: blocks other than text")
    return messages


def parse_messages_request(raw: bytes) -> CallParams:
    body = json_object(raw)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise GatewayError("model: Field required", type="invalid_request")
    model_name_checked(model)
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise GatewayError("messages: must be a non-empty list", type="invalid_request")
    untranslatable: list[str] = []
    messages = _system(body["system"], untranslatable) if body.get("system") else []
    for index, message in enumerate(raw_messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise GatewayError("messages: each role must be 'user' or 'assistant'", type="invalid_request")
        messages += _neutral_messages(message["role"], message.get("content"), f"messages.{index}", untranslatable)
    options = _options(body, untranslatable)
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
    thinking = body.get("thinking")
    params = CallParams(
        model=model,
        messages=messages,
        options=options,
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
                ("json_schema", "response_format" in options),
                ("reasoning", isinstance(thinking, dict) and thinking.get("type") not in (None, "disabled")),
            )
            if wanted
        },
        stream=bool(body.get("stream")),
    )
    return params


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


class _Blocks:
    """Anthropic's content blocks of a reply streamed by another vendor: each piece (thinking,
    text, a tool call's start or argument fragment) opens its block, closing the one before."""

    def __init__(self) -> None:
        self.index = -1
        self.open_kind = ""  # "thinking", "text" or "tool_use"
        self.call_index: int | None = None  # the OpenAI index of the open tool call
        self.call_id: str | None = None

    def _open(self, kind: str, block: dict) -> list[bytes]:
        events = self.close()
        self.index += 1
        self.open_kind = kind
        start = {"type": "content_block_start", "index": self.index, "content_block": block}
        return [*events, _event("content_block_start", start)]

    def close(self) -> list[bytes]:
        if not self.open_kind:
            return []
        self.open_kind, self.call_index, self.call_id = "", None, None
        return [_event("content_block_stop", {"type": "content_block_stop", "index": self.index})]

    def _delta(self, delta: dict) -> bytes:
        return _event("content_block_delta", {"type": "content_block_delta", "index": self.index, "delta": delta})

    def pieces(self, item: Chunk) -> list[bytes]:
        events: list[bytes] = []
        if item.reasoning:
            if self.open_kind != "thinking":
                events += self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            events.append(self._delta({"type": "thinking_delta", "thinking": item.reasoning}))
        if item.text:
            if self.open_kind != "text":
                events += self._open("text", {"type": "text", "text": ""})
            events.append(self._delta({"type": "text_delta", "text": item.text}))
        for call in item.tool_calls:
            function = call.get("function") or {}
            new_call = call.get("id") and call.get("id") != self.call_id
            if new_call or call.get("index") != self.call_index or self.open_kind != "tool_use":
                block: dict = {
                    "type": "tool_use",
                    "id": call.get("id") or "",
                    "name": function.get("name") or "",
                    "input": {},
                }
                events += self._open("tool_use", block)
                self.call_index, self.call_id = call.get("index"), call.get("id")
            if function.get("arguments"):
                events.append(self._delta({"type": "input_json_delta", "partial_json": function["arguments"]}))
        return events


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
    blocks = _Blocks()
    async for item in items:
        if isinstance(item, GatewayError):
            yield _event("error", anthropic_error_body(item))
            return
        for event in blocks.pieces(item):
            yield event
        if item.usage is not None:
            for event in blocks.close():
                yield event
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


def _content(reply: Outcome) -> list[dict]:
    """The reply as Anthropic's content blocks: thinking, text, then the tools it calls."""
    blocks: list[dict] = []
    if reply.reasoning:
        blocks.append({"type": "thinking", "thinking": reply.reasoning, "signature": ""})
    if reply.text or not reply.tool_calls:
        blocks.append({"type": "text", "text": reply.text})
    for call in reply.tool_calls:
        function = call.get("function") or {}
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):  # a model's malformed JSON, kept whole rather than lost
            arguments = {"arguments": function.get("arguments")}
        blocks.append({"type": "tool_use", "id": call.get("id"), "name": function.get("name"), "input": arguments})
    return blocks


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
        params, call = await db_phase(call_prepare, request, parse_messages_request, endpoint="anthropic")
        if params.stream:
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
            "content": _content(reply),
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
            tokens = await db_phase(prompt_tokens_count, request, parse_messages_request)
            response = JsonResponse({"input_tokens": tokens})
        except GatewayError as error:
            response = anthropic_error(error)
    response["request-id"] = request_id_of(request)
    return response
