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
    answer_object,
    is_count,
    malformed_answer,
)
from llm_models.vendor_keys import ANTHROPIC

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


def _blocks(content: str | list[dict] | None) -> list[dict]:
    """A message's content (a string, or OpenAI-style text and image_url parts) as Anthropic's
    blocks; a part's `cache_control` (the extension other gateways accept) is kept."""
    if not content:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks = []
    for part in content:
        if part.get("type") == "image_url":
            block = _image_block(str((part.get("image_url") or {}).get("url", "")))
        else:
            block = {"type": "text", "text": str(part.get("text", ""))}
        if part.get("cache_control"):
            block["cache_control"] = part["cache_control"]
        if block.get("text") != "":  # Claude refuses an empty text block
            blocks.append(block)
    return blocks


def _tool_use(call: dict) -> dict:
    """An OpenAI tool call (its arguments a JSON string) as a tool_use block (its input an object)."""
    function = call.get("function") or {}
    arguments = function.get("arguments") or "{}"
    return {"type": "tool_use", "id": call.get("id"), "name": function.get("name"), "input": json.loads(arguments)}


def _tool_result(message: dict) -> dict:
    content = message.get("content")
    block: dict = {"type": "tool_result", "tool_use_id": message.get("tool_call_id")}
    if content:
        block["content"] = content if isinstance(content, str) else _blocks(content)
    return block


def _turn(message: dict) -> tuple[str, list[dict]]:
    """One OpenAI-style message as (role, blocks) of an Anthropic turn."""
    role = message["role"]
    if role == "tool":  # a tool's result goes back in the user's turn
        return "user", [_tool_result(message)]
    if role == "assistant":
        # Thinking first (where the client kept Claude's signed blocks), then text, then calls.
        thinking = [
            block
            for block in message.get("thinking_blocks") or ()
            if isinstance(block, dict) and block.get("type") in ("thinking", "redacted_thinking")
        ]
        calls = [_tool_use(call) for call in message.get("tool_calls") or ()]
        return "assistant", thinking + _blocks(message.get("content")) + calls
    return "user", _blocks(message.get("content"))


def to_anthropic(messages: list[dict]) -> tuple[list[dict], list[dict]]:
    """OpenAI-style messages -> (system blocks, alternating user/assistant turns). Each system or
    developer message is a system block of its own; tool calls become tool_use blocks and tool
    results tool_result blocks in the next user turn."""
    system: list[dict] = []
    turns: list[dict] = []
    for message in messages:
        if message["role"] == "system":
            system += _blocks(message.get("content"))
            continue
        role, blocks = _turn(message)
        if not blocks:
            continue  # Claude refuses an empty turn (an OpenAI history may hold one)
        if turns and turns[-1]["role"] == role:  # the API requires strict alternation
            turns[-1]["content"] += blocks
        else:
            turns.append({"role": role, "content": blocks})
    if not turns or turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": OPENING_USER_TURN})
    for turn in turns:  # a turn of one text block reads as the plain string it was
        content = turn["content"]
        if isinstance(content, list) and len(content) == 1 and set(content[0]) == {"type", "text"}:
            turn["content"] = content[0]["text"]
    return system, turns


# response_format json_object (JSON, no schema) on Claude: the reply is asked for as the input of
# this tool, forced, and handed back as the reply's text. (A json_schema format uses Claude's own
# structured output, output_config.format, which needs a schema.)
JSON_TOOL = "json_output"
JSON_TOOL_DESCRIPTION = "Give your whole answer as this tool's input."
# OpenAI's reasoning_effort -> Claude's output_config.effort (with adaptive thinking).
EFFORTS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "xhigh"}


def _tool(tool: dict) -> dict:
    function = tool.get("function") or {}
    definition = {"name": function.get("name"), "input_schema": function.get("parameters") or {"type": "object"}}
    for name in ("description", "strict"):
        if function.get(name) is not None:
            definition[name] = function[name]
    return definition


def _tool_choice(choice: str | dict | None, parallel: bool | None) -> dict | None:
    if choice is None and parallel is not False:
        return None
    if isinstance(choice, dict):
        translated = {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    else:
        translated = {"type": {"none": "none", "required": "any"}.get(choice or "auto", "auto")}
    if parallel is False and translated["type"] != "none":
        translated["disable_parallel_tool_use"] = True
    return translated


def anthropic_options(options: dict) -> dict:
    """The neutral options (OpenAI's names) as Anthropic's request fields."""
    params: dict = {}
    tools = [_tool(tool) for tool in options.get("tools") or ()]
    choice = _tool_choice(options.get("tool_choice"), options.get("parallel_tool_calls"))
    output_config: dict = {}
    response_format = options.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        output_config["format"] = {"type": "json_schema", "schema": response_format["json_schema"]["schema"]}
    elif response_format.get("type") == "json_object":  # never with tools of the client's (a 400)
        tools = [{"name": JSON_TOOL, "description": JSON_TOOL_DESCRIPTION, "input_schema": {"type": "object"}}]
        choice = {"type": "tool", "name": JSON_TOOL}
    if effort := EFFORTS.get(options.get("reasoning_effort") or ""):
        params["thinking"] = {"type": "adaptive"}
        output_config["effort"] = effort
    if output_config:
        params["output_config"] = output_config
    if tools:
        params["tools"] = tools
    if choice is not None:
        params["tool_choice"] = choice
    if options.get("user"):
        params["metadata"] = {"user_id": str(options["user"])}
    return params


class AnthropicProvider(SDKProvider[anthropic.AsyncAnthropic]):
    vendor = "anthropic"
    default_key_env = ANTHROPIC.key_env
    base_url_env = ANTHROPIC.base_url_env
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
        content, usage = body.get("content"), body.get("usage") or {}
        readable = (
            isinstance(content, list)
            and all(isinstance(block, dict) for block in content)
            and isinstance(body.get("stop_reason"), str | None)
            and isinstance(usage, dict)
            and all(is_count(usage.get(name) or 0) for name in ("input_tokens", "output_tokens", *CACHE_COUNTS))
        )
        if not readable:  # Anthropic always sends content, if only []: without it, no answer came
            raise malformed_answer(request_id)
        assert isinstance(content, list)
        known = usage.get("input_tokens") is not None and usage.get("output_tokens") is not None
        stop_reason = body.get("stop_reason") or ""
        texts, reasoning, tool_calls, thinking_blocks = [], [], [], []
        for block in content:
            kind = block.get("type")
            if kind == "text":
                texts.append(str(block.get("text", "")))
            elif kind in ("thinking", "redacted_thinking"):
                reasoning.append(str(block.get("thinking", "")))
                thinking_blocks.append(block)
            elif kind == "tool_use" and block.get("name") == JSON_TOOL and _asked_json(request):
                texts.append(json.dumps(block.get("input"), ensure_ascii=False))
                stop_reason = "end_turn" if stop_reason == "tool_use" else stop_reason
            elif kind == "tool_use":
                tool_calls.append(_tool_call(block))
        return Completion(
            text="".join(texts),
            usage=_usage(usage["input_tokens"], usage["output_tokens"], usage) if known else None,
            request_id=request_id,
            finish_reason=FINISH_REASONS.get(stop_reason),
            stop_sequence=body.get("stop_sequence") if stop_reason == "stop_sequence" else None,
            raw=body,
            tool_calls=tool_calls,
            reasoning="".join(reasoning),
            thinking_blocks=thinking_blocks,
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
            # Content block index -> how its deltas are passed on: "tool" (the n-th tool call, as
            # OpenAI numbers them) or "json" (the JSON tool's input: the reply's text).
            blocks: dict[object, tuple[str, int]] = {}
            argued: set[object] = set()  # the tool blocks whose input came in fragments
            async for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue  # "event:" lines repeat the data's "type"; blank separators
                event = _parse(line[5:], request_id)
                kind = event.get("type")
                chunk = Chunk(raw=event, request_id=request_id)
                if kind == "content_block_delta":
                    delta = event.get("delta") or {}
                    block_kind, call_index = blocks.get(event.get("index"), ("text", 0))
                    if delta.get("type") == "text_delta":
                        chunk.text = str(delta.get("text") or "")
                    elif delta.get("type") == "thinking_delta":
                        chunk.reasoning = str(delta.get("thinking") or "")
                    elif delta.get("type") == "input_json_delta":  # a tool call's input, in fragments
                        fragment = str(delta.get("partial_json") or "")
                        argued.add(event.get("index") if fragment else None)
                        if block_kind == "json":
                            chunk.text = fragment
                        else:
                            chunk.tool_calls = [{"index": call_index, "function": {"arguments": fragment}}]
                elif kind == "content_block_stop" and event.get("index") not in argued:
                    # A tool that takes no input streams none: its arguments are still an object.
                    block_kind, call_index = blocks.get(event.get("index"), ("text", 0))
                    if block_kind == "json":
                        chunk.text = "{}"
                    elif block_kind == "tool":
                        chunk.tool_calls = [{"index": call_index, "function": {"arguments": "{}"}}]
                elif kind == "content_block_start":
                    block = event.get("content_block") or {}
                    if block.get("type") == "tool_use" and block.get("name") == JSON_TOOL and _asked_json(request):
                        blocks[event.get("index")] = ("json", 0)
                    elif block.get("type") == "tool_use":
                        call_index = sum(1 for kind_, _ in blocks.values() if kind_ == "tool")
                        blocks[event.get("index")] = ("tool", call_index)
                        call = _tool_call(block | {"input": None}) | {"index": call_index}
                        chunk.tool_calls = [call]
                elif kind == "message_start":
                    usage = (event.get("message") or {}).get("usage") or {}
                    input_tokens = usage.get("input_tokens", input_tokens)
                    cache_counts |= {name: usage[name] for name in CACHE_COUNTS if usage.get(name) is not None}
                    # isinstance narrows the type; is_count also refuses booleans and negatives
                    if isinstance(input_tokens, int) and all(
                        is_count(n) for n in (input_tokens, *cache_counts.values())
                    ):
                        chunk.prompt_usage = _usage(input_tokens, 0, cache_counts)
                elif kind == "message_delta":
                    # Counts here are cumulative for the whole message.
                    usage = event.get("usage") or {}
                    input_tokens = usage.get("input_tokens") or input_tokens
                    output_tokens = usage.get("output_tokens", output_tokens)
                    cache_counts |= {name: usage[name] for name in CACHE_COUNTS if usage.get(name) is not None}
                    delta = event.get("delta") or {}
                    reason = delta.get("stop_reason")
                    if reason == "tool_use" and blocks and all(kind_ == "json" for kind_, _ in blocks.values()):
                        reason = "end_turn"  # the JSON answer, not a call the client made
                    finish_reason = FINISH_REASONS.get(reason or "") or finish_reason
                    if reason == "stop_sequence":
                        stop_sequence = delta.get("stop_sequence")
                elif kind == "message_stop":
                    done = True
                yield chunk
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
            # One block reads as the string it was; several stay apart.
            plain = len(system) == 1 and set(system[0]) == {"type", "text"}
            params["system"] = system[0]["text"] if plain else system
        if request.stop:
            params["stop_sequences"] = request.stop
        # temperature and top_p are left out on purpose: the API version this SDK speaks
        # (anthropic-version 2026-10-21) answers 400 to any sampling parameter, even the
        # default value, and SDK 2.x dropped them. An agent's temperature applies to OpenAI only.
        # A relayed request's sampling parameters are left out too (see above): a program that still
        # sends them keeps working.
        params |= anthropic_options(request.options)
        return params | {name: value for name, value in request.extra.items() if name not in SAMPLING}


def _asked_json(request: CompletionRequest) -> bool:
    """Whether the JSON tool is the gateway's (a json_object response format), not the client's."""
    return (request.options.get("response_format") or {}).get("type") == "json_object"


def _tool_call(block: dict) -> dict:
    """A tool_use block as an OpenAI tool call (its input as a JSON string; a stream's first
    piece has none yet)."""
    arguments = "" if block.get("input") is None else json.dumps(block["input"], ensure_ascii=False)
    return {"id": block.get("id"), "type": "function", "function": {"name": block.get("name"), "arguments": arguments}}


# Anthropic's input_tokens leave out the prompt tokens read from or written to its cache: these.
CACHE_COUNTS = ("cache_read_input_tokens", "cache_creation_input_tokens")


def _usage(input_tokens: int, output_tokens: int, counts: dict) -> Usage:
    """The whole prompt (what Anthropic counts apart from input_tokens added back), and its cached
    parts, priced apart (LLMModel.cost)."""
    read = counts.get("cache_read_input_tokens") or 0
    written = counts.get("cache_creation_input_tokens") or 0
    return Usage(input_tokens + read + written, output_tokens, cached_tokens=read, cache_write_tokens=written)


def _parse(data: str, request_id: str) -> dict:
    event = answer_object(data, request_id)
    if event.get("type") == "error":  # e.g. "overloaded_error" after the stream has begun
        error = event.get("error") or {}
        kind = KIND_BY_ERROR_TYPE.get(str(error.get("type")), ErrorKind.SERVER)
        message = f"the provider failed mid-stream: {error.get('message', '')}"
        raise ProviderError(message, kind=kind, request_id=request_id)
    return event
