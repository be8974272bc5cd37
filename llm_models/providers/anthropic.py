"""Anthropic's Messages API, reached with OpenAI-style messages."""

import json
from collections.abc import AsyncGenerator

import anthropic
import httpx2  # the SDK's HTTP stack: its Response is what the raw call returns

from llm_models.providers.base import (
    Chunk,
    Completion,
    CompletionRequest,
    ErrorKind,
    FinishReason,
    ProviderError,
    SDKProvider,
    Usage,
)

# stop_reason -> the neutral FinishReason. A reason missing here (a newer one, or pause_turn,
# which OpenAI has no word for) becomes None: unknown, rather than a word no client expects.
FINISH_REASONS = {
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "model_context_window_exceeded": FinishReason.LENGTH,
    "tool_use": FinishReason.TOOL_CALLS,
    "refusal": FinishReason.CONTENT_FILTER,
}
# error.type of an `event: error` in the middle of a stream -> its kind.
KIND_BY_ERROR_TYPE = {
    "overloaded_error": ErrorKind.SERVER,
    "api_error": ErrorKind.SERVER,
    "rate_limit_error": ErrorKind.RATE_LIMITED,
    "invalid_request_error": ErrorKind.BAD_REQUEST,
    "request_too_large": ErrorKind.BAD_REQUEST,
    "authentication_error": ErrorKind.AUTH,
    "permission_error": ErrorKind.AUTH,
    "not_found_error": ErrorKind.NOT_FOUND,
}
# What the API version this SDK speaks refuses (see AnthropicProvider._params).
SAMPLING = ("temperature", "top_p", "top_k")
# Anthropic wants a user turn first; a history that opens with the assistant (an agent's
# greeting) gets this stand-in rather than losing the greeting. Empty text is refused.
OPENING_USER_TURN = "..."


def _image_block(url: str) -> dict:
    """An OpenAI image_url (a link, or a data: URL) as Anthropic's image block."""
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header[len("data:") :].split(";")[0]
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _anthropic_content(content: str | list[dict]) -> str | list[dict]:
    """A message's content (a string, or OpenAI-style text and image_url parts) in Anthropic's terms."""
    if isinstance(content, str):
        return content
    blocks = []
    for part in content:
        if part.get("type") == "image_url":
            blocks.append(_image_block(str((part.get("image_url") or {}).get("url", ""))))
        else:
            blocks.append({"type": "text", "text": str(part.get("text", ""))})
    return blocks


def _joined(first: str | list[dict], second: str | list[dict]) -> str | list[dict]:
    """Two turns' contents as one (Anthropic requires strict alternation)."""
    if isinstance(first, str) and isinstance(second, str):
        return first + "\n\n" + second
    as_blocks = [[{"type": "text", "text": c}] if isinstance(c, str) else c for c in (first, second)]
    return as_blocks[0] + as_blocks[1]


def to_anthropic(messages: list[dict]) -> tuple[str, list[dict]]:
    """OpenAI-style messages (text, or text and image_url parts) -> (system prompt, alternating
    user/assistant turns)."""
    system: list[str] = []
    turns: list[dict] = []
    for message in messages:
        role, content = message["role"], _anthropic_content(message["content"])
        if role == "system":
            system.append(content if isinstance(content, str) else "".join(b.get("text", "") for b in content))
            continue
        if not content:
            continue  # Claude refuses an empty turn (an OpenAI history may hold one)
        role = "assistant" if role == "assistant" else "user"
        if turns and turns[-1]["role"] == role:  # the API requires strict alternation
            turns[-1]["content"] = _joined(turns[-1]["content"], content)
        else:
            turns.append({"role": role, "content": content})
    if not turns or turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": OPENING_USER_TURN})
    return "\n\n".join(system), turns


class AnthropicProvider(SDKProvider[anthropic.AsyncAnthropic]):
    vendor = "anthropic"
    default_key_env = "ANTHROPIC_API_KEY"
    base_url_env = "ANTHROPIC_BASE_URL"
    request_id_header = "request-id"
    sdk_error = anthropic.AnthropicError
    sdk_timeout_error = anthropic.APITimeoutError
    sdk_connection_error = anthropic.APIConnectionError
    sdk_status_error = anthropic.APIStatusError

    def make_client(self, *, api_key: str, base_url: str | None, timeout: float) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0)

    def vendor_message(self, exc: anthropic.APIStatusError) -> str:
        return exc.api_message or ""

    async def send(self, *, client: anthropic.AsyncAnthropic, request: CompletionRequest) -> Completion:
        # The raw response, parsed with json.loads, as for OpenAI: relayed as it is to a client of
        # Anthropic's format (tool use, thinking, every block), and cheaper than the SDK's models.
        response = await client.post("/v1/messages", body=self._params(request), cast_to=httpx2.Response)
        request_id = response.headers.get(self.request_id_header, "")
        body = _parse(response.text, request_id)
        blocks = body.get("content") or []
        usage = body.get("usage") or {}
        known = usage.get("input_tokens") is not None and usage.get("output_tokens") is not None
        stop_reason = body.get("stop_reason") or ""
        return Completion(
            text="".join(str(block.get("text", "")) for block in blocks if block.get("type") == "text"),
            usage=_usage(usage["input_tokens"], usage["output_tokens"], usage) if known else None,
            request_id=request_id,
            finish_reason=FINISH_REASONS.get(stop_reason),
            stop_sequence=body.get("stop_sequence") if stop_reason == "stop_sequence" else None,
            raw=body,
        )

    async def send_stream(
        self, *, client: anthropic.AsyncAnthropic, request: CompletionRequest
    ) -> AsyncGenerator[Chunk]:
        params = self._params(request)
        # The SDK's signature takes these; the rest of the body goes as extra_body.
        named = {name: params.pop(name) for name in ("model", "max_tokens", "messages")}
        params = named | {"stream": True, "extra_body": params or None}
        # Raw SSE lines with json.loads rather than the SDK's typed events: cheaper per chunk. Each
        # event is passed on whole (a client of Anthropic's format gets it relayed), with its text.
        async with client.messages.with_streaming_response.create(**params) as response:
            request_id = response.headers.get(self.request_id_header, "")
            input_tokens = output_tokens = finish_reason = stop_sequence = None
            cache_counts: dict = {}
            done = False
            async for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue  # "event:" lines repeat the data's "type"; blank separators
                event = _parse(line[5:], request_id)
                kind = event.get("type")
                text = tool_text = ""
                if kind == "content_block_delta":
                    delta = event.get("delta") or {}
                    if delta.get("type") == "text_delta":
                        text = str(delta.get("text") or "")
                    elif delta.get("type") == "input_json_delta":  # a tool call's input, in fragments
                        tool_text = str(delta.get("partial_json") or "")
                elif kind == "content_block_start":
                    block = event.get("content_block") or {}
                    tool_text = str(block.get("name") or "") if block.get("type") == "tool_use" else ""
                elif kind == "message_start":
                    usage = (event.get("message") or {}).get("usage") or {}
                    input_tokens = usage.get("input_tokens", input_tokens)
                    cache_counts |= {name: usage[name] for name in CACHE_COUNTS if usage.get(name) is not None}
                elif kind == "message_delta":
                    # Counts here are cumulative for the whole message.
                    usage = event.get("usage") or {}
                    input_tokens = usage.get("input_tokens") or input_tokens
                    output_tokens = usage.get("output_tokens", output_tokens)
                    cache_counts |= {name: usage[name] for name in CACHE_COUNTS if usage.get(name) is not None}
                    delta = event.get("delta") or {}
                    reason = delta.get("stop_reason")
                    finish_reason = FINISH_REASONS.get(reason or "") or finish_reason
                    if reason == "stop_sequence":
                        stop_sequence = delta.get("stop_sequence")
                elif kind == "message_stop":
                    done = True
                yield Chunk(text=text, tool_text=tool_text, raw=event, request_id=request_id)
            if not done:
                raise ProviderError(
                    "the provider's stream ended early", kind=ErrorKind.CONNECTION, request_id=request_id
                )
            # Both numbers or none: a half-known usage would under-bill.
            usage = None
            if input_tokens is not None and output_tokens is not None:
                usage = _usage(input_tokens, output_tokens, cache_counts)
            yield Chunk(usage=usage, finish_reason=finish_reason, stop_sequence=stop_sequence, request_id=request_id)

    def _params(self, request: CompletionRequest) -> dict:
        system, turns = to_anthropic(request.messages)
        params: dict = {"model": request.provider_model, "messages": turns, "max_tokens": request.max_tokens}
        if system:
            params["system"] = system
        if request.stop:
            params["stop_sequences"] = request.stop
        # temperature and top_p are left out on purpose: the API version this SDK speaks
        # (anthropic-version 2026-10-21) answers 400 to any sampling parameter, even the
        # default value, and SDK 2.x dropped them. An agent's temperature applies to OpenAI only.
        # A relayed request's sampling parameters are left out too (see above): a program that still
        # sends them keeps working.
        return params | {name: value for name, value in request.extra.items() if name not in SAMPLING}


# Anthropic's input_tokens leave out the prompt tokens read from or written to its cache: these.
CACHE_COUNTS = ("cache_read_input_tokens", "cache_creation_input_tokens")


def _usage(input_tokens: int, output_tokens: int, counts: dict) -> Usage:
    """The whole prompt (what Anthropic counts apart from input_tokens added back), and its cached
    parts, priced apart (LLMModel.cost)."""
    read = counts.get("cache_read_input_tokens") or 0
    written = counts.get("cache_creation_input_tokens") or 0
    return Usage(input_tokens + read + written, output_tokens, cached_tokens=read, cache_write_tokens=written)


def _parse(data: str, request_id: str) -> dict:
    try:
        event = json.loads(data)
    except ValueError:
        event = None
    if not isinstance(event, dict):
        raise ProviderError("the provider sent a malformed stream", kind=ErrorKind.SERVER, request_id=request_id)
    if event.get("type") == "error":  # e.g. "overloaded_error" after the stream has begun
        error = event.get("error") or {}
        kind = KIND_BY_ERROR_TYPE.get(str(error.get("type")), ErrorKind.SERVER)
        message = f"the provider failed mid-stream: {error.get('message', '')}"
        raise ProviderError(message, kind=kind, request_id=request_id)
    return event
