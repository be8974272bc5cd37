"""OpenAI-compatible endpoints: POST /v1/chat/completions and GET /v1/models.

Programs written for the OpenAI SDK work with base_url=".../v1" and a gateway API key. Any
catalog model answers, Anthropic ones included (the provider layer translates). Errors use
OpenAI's body, {"error": {"message", "type", "code", "param"}}, so the SDK raises its usual
exceptions (RateLimitError on quota, AuthenticationError on a revoked key, ...).
"""

import json
import secrets
import time
from collections.abc import AsyncGenerator

from django.http import JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from common.db import db_phase
from common.errors import GatewayError, json_object
from completions.core import (
    Call,
    CallParams,
    Outcome,
    call_complete,
    call_prepare,
    call_stream_open,
    model_name_checked,
)
from llm_models.models import ProviderKind
from llm_models.providers.base import Chunk, Usage
from llm_models.providers.tokens import has_images

# OpenAI's error `type` is a broad class, by status; its `code` says exactly what (here the
# gateway's own type: model_not_found, context_length_exceeded, quota_exceeded, ...).
ERROR_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}


def _openai_type(error: GatewayError) -> str:
    if error.type == "quota_exceeded":
        return "insufficient_quota"  # what OpenAI itself answers when an account's quota is spent
    if error.status >= 500:
        return "server_error"
    return ERROR_TYPES.get(error.status, "invalid_request_error")


def openai_error(error: GatewayError) -> JsonResponse:
    # OpenAI's four fields, then the gateway's details (limit, used, resets_at, ...): the SDKs
    # keep unknown fields in `exc.body`.
    body = {
        "error": {
            "message": error.message,
            "type": _openai_type(error),
            "code": error.type,
            "param": error.extra.get("param"),
            **{k: v for k, v in error.extra.items() if k != "param"},
        }
    }
    response = JsonResponse(body, status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    return response


def _content(content, where: str, untranslatable: list[str]) -> str | list[dict]:
    """Message content for any vendor: a string, or its text and image_url parts (`cache_control`
    on a part is kept, for Claude); any other part is named in `untranslatable` (an OpenAI-style
    vendor gets it as it came)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise GatewayError(
            "Message content must be a string or a list of parts.", type="invalid_request", param="messages"
        )
    parts = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "input_text"):
            parts.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "image_url" and isinstance(part.get("image_url"), dict):
            parts.append({"type": "image_url", "image_url": part["image_url"]})
        else:
            untranslatable.append(f"{where}.content: {kind or 'a part'} parts")
            continue
        if isinstance(part.get("cache_control"), dict):
            parts[-1]["cache_control"] = part["cache_control"]
    if all(set(part) == {"type", "text"} for part in parts):
        return "".join(part["text"] for part in parts)  # plain text reads as the string it is
    return parts


def _arguments_object(arguments: object) -> bool:
    """Whether a tool call's arguments are a JSON object (what another vendor needs)."""
    if arguments in (None, ""):
        return True
    try:
        return isinstance(arguments, str) and isinstance(json.loads(arguments), dict)
    except (ValueError, RecursionError):
        return False


def _tool_calls(calls: object, where: str, untranslatable: list[str]) -> list[dict]:
    """An assistant's tool calls, each {"id", "type": "function", "function": {"name", "arguments"}}."""
    if not isinstance(calls, list):
        raise GatewayError(f"{where}.tool_calls must be a list.", type="invalid_request", param="messages")
    checked = []
    for index, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not call.get("id"):
            untranslatable.append(f"{where}.tool_calls[{index}]: calls other than a function's with an id")
            continue
        if not _arguments_object(function.get("arguments")):
            untranslatable.append(f"{where}.tool_calls[{index}]: arguments that are not a JSON object")
        arguments = function.get("arguments") or "{}"
        checked.append(
            {"id": str(call["id"]), "type": "function", "function": {"name": function["name"], "arguments": arguments}}
        )
    return checked


def _message(message: object, index: int, untranslatable: list[str]) -> dict:
    """One message of the request, in the neutral form (llm_models.providers.base)."""
    where = f"messages[{index}]"
    role = message.get("role") if isinstance(message, dict) else None
    if not isinstance(role, str) or role not in ROLES:
        raise GatewayError(
            "Each message needs a role: system, developer, user, assistant or tool.",
            type="invalid_request",
            param="messages",
        )
    assert isinstance(message, dict)
    if role == "function" or message.get("function_call"):
        untranslatable.append(f"{where}: legacy function calls (use tools)")
    if message.get("name"):
        untranslatable.append(f"{where}.name")  # Claude has no speaker names
    if message.get("audio") or message.get("refusal"):
        untranslatable.append(f"{where}: an assistant's audio or refusal")
    neutral: dict = {"role": ROLES[role], "content": _content(message.get("content"), where, untranslatable)}
    if role == "tool":
        if not isinstance(message.get("tool_call_id"), str) or not message["tool_call_id"]:
            raise GatewayError(
                f"{where}: a tool message needs its tool_call_id.", type="invalid_request", param="messages"
            )
        neutral["tool_call_id"] = message["tool_call_id"]
    if role == "assistant" and message.get("tool_calls"):
        neutral["tool_calls"] = _tool_calls(message["tool_calls"], where, untranslatable)
    if role == "assistant" and isinstance(message.get("thinking_blocks"), list):
        neutral["thinking_blocks"] = message["thinking_blocks"]  # Claude's, as the gateway gave them
    return neutral


ROLES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
    "function": "user",  # legacy: relayed to OpenAI-style vendors only
}
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
# The neutral options (llm_models.providers.base): read, and translated for another vendor.
OPTIONS = ("tools", "tool_choice", "parallel_tool_calls", "response_format", "reasoning_effort", "user")
# What the gateway reads of a request itself; every other field goes to an OpenAI-style vendor as
# it came, and is refused (400, named) for a vendor with another format.
INTERPRETED = {
    *OPTIONS,
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "stream",
    "stream_options",
}


def _options(body: dict, untranslatable: list[str]) -> dict:
    """What the model may do besides write text (the neutral options), checked enough that a
    vendor of another format can be given them."""
    options = {name: body[name] for name in OPTIONS if body.get(name) is not None}
    tools = options.get("tools", [])
    if not isinstance(tools, list):
        raise GatewayError("'tools' must be a list.", type="invalid_request", param="tools")
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            untranslatable.append(f"tools[{index}]: {kind or 'untyped'} tools")
        elif not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise GatewayError(f"tools[{index}] needs a function with a name.", type="invalid_request", param="tools")
    choice = options.get("tool_choice")
    function = choice.get("function") if isinstance(choice, dict) else None
    named = isinstance(function, dict) and isinstance(function.get("name"), str)
    if choice is not None and choice not in ("auto", "none", "required") and not named:
        untranslatable.append("tool_choice: other than auto, none, required or a named function")
    if not isinstance(options.get("parallel_tool_calls", True), bool):
        raise GatewayError(
            "'parallel_tool_calls' must be true or false.", type="invalid_request", param="parallel_tool_calls"
        )
    response_format = options.get("response_format")
    if not isinstance(response_format, dict | None):
        raise GatewayError("'response_format' must be an object.", type="invalid_request", param="response_format")
    kind = response_format.get("type") if response_format else None
    if response_format is not None and kind not in ("text", "json_object", "json_schema"):
        # A format of OpenAI's own (or one it ships tomorrow): relayed, never translated.
        untranslatable.append(f"response_format: {str(kind or 'untyped')[:20]}")
    if response_format and kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            untranslatable.append("response_format: a json_schema without its schema")
    if kind == "json_object" and tools:
        # Claude is given json_object as a tool it must call; it could not also choose among others.
        untranslatable.append("response_format json_object with tools (a json_schema works)")
    forced = choice == "required" or named or kind == "json_object"
    effort = options.get("reasoning_effort")
    if effort is not None and effort not in REASONING_EFFORTS:
        untranslatable.append(f"reasoning_effort: {str(effort)[:20]!r}")
    elif effort not in (None, "none") and forced:
        # Claude cannot think while made to use a tool (how tool_choice and response_format reach it)
        untranslatable.append("reasoning_effort with tool_choice required or named, or with json_object")
    return options


def _number(body: dict, name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise GatewayError(f"'{name}' must be a number from {low} to {high}.", type="invalid_request", param=name)
    return value


def parse_chat_request(raw: bytes) -> CallParams:
    """An OpenAI chat completion request body, read."""
    body = json_object(raw)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise GatewayError("'model' is required.", type="invalid_request", param="model")
    model_name_checked(model)
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise GatewayError("'messages' must be a non-empty list.", type="invalid_request", param="messages")
    untranslatable: list[str] = []
    messages = [_message(message, index, untranslatable) for index, message in enumerate(raw_messages)]
    options = _options(body, untranslatable)
    unread = {name: value for name, value in body.items() if name not in INTERPRETED}
    untranslatable += sorted(unread)
    needs = set()
    if body.get("tools") or body.get("functions"):
        needs.add("tools")
    if has_images(raw_messages):
        needs.add("vision")
    if (options.get("response_format") or {}).get("type") == "json_schema":
        needs.add("json_schema")
    if options.get("reasoning_effort") not in (None, "none"):
        needs.add("reasoning")
    # Sent on under the client's own name for it: OpenAI's reasoning models take only the newer one.
    max_tokens_param = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = body.get(max_tokens_param)
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise GatewayError(
            f"'{max_tokens_param}' must be a positive integer.", type="invalid_request", param=max_tokens_param
        )
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise GatewayError("'stop' must be a string or a list of strings.", type="invalid_request", param="stop")
    params = CallParams(
        model=model,
        messages=messages,
        options=options,
        max_tokens=max_tokens,
        max_tokens_param=max_tokens_param,
        stop=stop or None,
        temperature=_number(body, "temperature", 0, 2),
        top_p=_number(body, "top_p", 0, 1),
        wire=ProviderKind.OPENAI,
        forwarded={"messages": raw_messages, **{name: body[name] for name in OPTIONS if name in body}, **unread},
        untranslatable=untranslatable,
        needs=needs,
    )
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise GatewayError("'stream_options' must be an object.", type="invalid_request", param="stream_options")
    params.stream, params.include_usage = bool(body.get("stream")), bool(stream_options.get("include_usage"))
    return params


def _completion_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


def _usage(usage: Usage) -> dict:
    counts: dict[str, object] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }
    if usage.cached_tokens:
        counts["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    return counts


def _chunk(
    completion_id: str, created: int, model: str, delta: dict, finish_reason=None, usage=None, choices: bool = True
) -> bytes:
    data = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}] if choices else [],
    }
    if usage is not None:
        data["usage"] = usage
    return _event(data)


def _event(data: dict) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def _error_event(error: GatewayError) -> bytes:
    """A failure after the stream began: the last event, in OpenAI's error shape."""
    return _event({"error": {"message": error.message, "type": _openai_type(error), "code": error.type}})


async def _relayed_sse(call: Call, items: AsyncGenerator[Chunk | GatewayError], include_usage: bool):
    """The vendor's own events (it speaks OpenAI's format), with the gateway's model name: tool
    call deltas, logprobs and every other field reach the client as the vendor sent them."""
    usage_sent = False
    async for item in items:
        if isinstance(item, GatewayError):
            yield _error_event(item)
            return
        if item.raw is not None:
            event = item.raw | {"model": call.model.name}
            if event.get("usage") is not None:
                if not include_usage:  # the gateway asks for usage (to bill); the client did not
                    if not event.get("choices"):
                        continue
                    event.pop("usage")
                usage_sent = True
            yield _event(event)
        elif item.usage is not None and include_usage and not usage_sent:
            # The vendor reported no usage: the client gets what it is billed.
            yield _event(
                {
                    "object": "chat.completion.chunk",
                    "model": call.model.name,
                    "choices": [],
                    "usage": _usage(item.usage),
                }
            )
    yield b"data: [DONE]\n\n"


async def _sse(call: Call, items: AsyncGenerator[Chunk | GatewayError], include_usage: bool):
    if call.relays:
        async for event in _relayed_sse(call, items, include_usage):
            yield event
        return
    completion_id, created, model = _completion_id(), int(time.time()), call.model.name
    yield _chunk(completion_id, created, model, {"role": "assistant", "content": ""})
    async for item in items:
        if isinstance(item, GatewayError):
            yield _error_event(item)
            return
        if item.reasoning:
            yield _chunk(completion_id, created, model, {"reasoning_content": item.reasoning})
        if item.text:
            yield _chunk(completion_id, created, model, {"content": item.text})
        if item.tool_calls:
            yield _chunk(completion_id, created, model, {"tool_calls": item.tool_calls})
        if item.usage is not None:
            yield _chunk(completion_id, created, model, {}, finish_reason=item.finish_reason)
            if include_usage:
                yield _chunk(completion_id, created, model, {}, usage=_usage(item.usage), choices=False)
    yield b"data: [DONE]\n\n"


def _message_of(reply: Outcome) -> dict:
    """The reply as OpenAI's assistant message: its text (null when it only calls tools), its tool
    calls, and Claude's thinking as `reasoning_content` (the field OpenAI-compatible servers use)
    and as its signed `thinking_blocks`."""
    message: dict = {"role": "assistant", "content": reply.text or None, "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = reply.tool_calls
    else:
        message["content"] = reply.text
    if reply.reasoning:
        message["reasoning_content"] = reply.reasoning
    if reply.thinking_blocks:  # sent back with the message, they let Claude think through a tool loop
        message["thinking_blocks"] = reply.thinking_blocks
    return message


@csrf_exempt
async def chat_completions(request):
    if request.method != "POST":
        return openai_error(GatewayError("Use POST.", status=405, type="method_not_allowed"))
    try:
        params, call = await db_phase(call_prepare, request, parse_chat_request, endpoint="openai")
        if params.stream:
            items = await call_stream_open(call)
            response = StreamingHttpResponse(_sse(call, items, params.include_usage), content_type="text/event-stream")
            response["Cache-Control"] = "no-cache"
            response["X-Accel-Buffering"] = "no"
            return response
        reply = await call_complete(call)
    except GatewayError as error:
        return openai_error(error)
    if call.relays and reply.raw is not None:
        # The vendor's own answer (tool calls, logprobs, n choices, ...), under the gateway's name
        # for the model; the usage billed where the vendor reported none.
        return JsonResponse({"usage": _usage(reply.usage)} | reply.raw | {"model": call.model.name})
    return JsonResponse(
        {
            "id": _completion_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": call.model.name,
            "choices": [
                {
                    "index": 0,
                    "message": _message_of(reply),
                    "logprobs": None,
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": _usage(reply.usage),
        }
    )
