"""OpenAI, and any server speaking its chat-completions API (vLLM, Ollama, LM Studio, ...)."""

from collections.abc import AsyncGenerator

import httpx2  # the SDK's HTTP stack: its Response is what the raw call returns
import openai

from llm_models.providers.base import (
    Chunk,
    Completion,
    CompletionRequest,
    ErrorKind,
    ProviderError,
    SDKProvider,
    Usage,
    answer_object,
    is_count,
    malformed_answer,
)
from llm_models.vendor_keys import OPENAI


class OpenAIProvider(SDKProvider[openai.AsyncOpenAI]):
    """Finish reasons pass through untouched: FinishReason is made of OpenAI's words. Any other
    word (the legacy "function_call", an OpenAI-compatible server's own) passes as a plain str."""

    vendor = "openai"
    default_key_env = OPENAI.key_env
    base_url_env = OPENAI.base_url_env
    request_id_header = "x-request-id"
    sdk_error = openai.OpenAIError
    sdk_timeout_error = openai.APITimeoutError
    sdk_connection_error = openai.APIConnectionError
    sdk_status_error = openai.APIStatusError

    def make_client(self, *, api_key: str, base_url: str | None, timeout: float) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0)

    def vendor_message(self, exc: openai.APIStatusError) -> str:
        body = exc.body if isinstance(exc.body, dict) else {}  # the SDK unwraps {"error": {...}}
        return str(body.get("message") or "")

    async def send(self, *, client: openai.AsyncOpenAI, request: CompletionRequest) -> Completion:
        # The raw response, parsed with json.loads: the SDK's request transform and typed models
        # were ~2 ms of CPU per call, and the gateway only reads four fields.
        response = await client.post(
            "/chat/completions", body=self._params(request) | request.extra, cast_to=httpx2.Response
        )
        request_id = response.headers.get(self.request_id_header, "")
        body = _parse(response.text, request_id)
        choices = body.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else None
        message = choice.get("message") if isinstance(choice, dict) else None
        if not (isinstance(message, dict) and _readable(message) and _readable_usage(body.get("usage"))):
            raise malformed_answer(request_id)
        assert isinstance(choice, dict)
        usage = body.get("usage")
        return Completion(
            text=message.get("content") or "",
            usage=_usage(usage) if usage else None,
            request_id=request_id,
            finish_reason=choice.get("finish_reason"),
            raw=body,
            tool_calls=message.get("tool_calls") or [],
            # Servers that show a reasoning model's thinking (vLLM, DeepSeek) put it here.
            reasoning=message.get("reasoning_content") or "",
        )

    async def send_embeddings(self, *, client: openai.AsyncOpenAI, request: CompletionRequest) -> Completion:
        body = {"model": request.provider_model} | request.extra
        response = await client.post("/embeddings", body=body, cast_to=httpx2.Response)
        request_id = response.headers.get(self.request_id_header, "")
        answer = _parse(response.text, request_id)
        usage = answer.get("usage") or {}
        prompt = usage.get("prompt_tokens")
        return Completion(
            text="", usage=Usage(prompt, 0) if prompt is not None else None, request_id=request_id, raw=answer
        )

    async def send_stream(self, *, client: openai.AsyncOpenAI, request: CompletionRequest) -> AsyncGenerator[Chunk]:
        params = self._params(request) | {
            "stream": True,
            "stream_options": {"include_usage": True},
            # fields the SDK's signature does not list (a vLLM `top_k`, a relayed request's tools)
            "extra_body": {name: value for name, value in request.extra.items() if name != "messages"} or None,
        }
        # The raw SSE lines, parsed with json.loads: the SDK's typed chunks cost ~3x the CPU
        # per stream (measured: 11 ms vs 4 ms for 50 chunks), and the gateway only relays text.
        async with client.chat.completions.with_streaming_response.create(**params) as response:
            request_id = response.headers.get(self.request_id_header, "")
            usage, finish_reason, done = None, None, False
            async for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue  # blank separators, ": keep-alive" comments
                data = line[5:].strip()
                if data == "[DONE]":
                    done = True  # keep reading: draining the body lets the connection be reused
                    continue
                event = _parse(data, request_id)
                choices = event.get("choices") or []
                deltas = (
                    [c.get("delta") or {} if isinstance(c, dict) else None for c in choices]
                    if isinstance(choices, list)
                    else [None]
                )
                if not (
                    all(isinstance(d, dict) and _readable(d) for d in deltas) and _readable_usage(event.get("usage"))
                ):
                    raise malformed_answer(request_id)
                if counts := event.get("usage"):
                    usage = _usage(counts)
                texts, reasoning, tool_calls = [], [], []  # type: list[str], list[str], list[dict]
                for choice in event.get("choices") or ():
                    delta = choice.get("delta") or {}
                    texts.append(delta.get("content") or "")
                    reasoning.append(delta.get("reasoning_content") or "")
                    tool_calls += delta.get("tool_calls") or ()
                    finish_reason = choice.get("finish_reason") or finish_reason
                yield Chunk(
                    text="".join(texts),
                    tool_calls=tool_calls,
                    reasoning="".join(reasoning),
                    request_id=request_id,
                    raw=event,
                )
            # A body that just stops (a proxy closed it cleanly) is as cut as a dropped socket.
            if not done and finish_reason is None:
                raise ProviderError(
                    "the provider's stream ended early", kind=ErrorKind.CONNECTION, request_id=request_id
                )
            yield Chunk(usage=usage, finish_reason=finish_reason, request_id=request_id)

    def _params(self, request: CompletionRequest) -> dict:
        # A relayed request's own messages (every part and tool call), else the translated ones.
        params: dict = {"model": request.provider_model, "messages": request.extra.get("messages", request.messages)}
        if request.max_tokens_param:
            params[request.max_tokens_param] = request.max_tokens
        for name in ("temperature", "top_p", "stop"):
            if (value := getattr(request, name)) is not None:
                params[name] = value
        return params | request.options


class OpenAICompatibleProvider(OpenAIProvider):
    """A self-hosted server: its key (if any) comes from the row's env var, never OPENAI_API_KEY,
    which must not be sent to a server that is not OpenAI."""

    vendor = "openai_compatible"

    def api_key(self, request: CompletionRequest) -> str:
        if request.api_key_env:
            return super().api_key(request)
        return "no-key"  # keyless servers (Ollama, a local vLLM) ignore it; the SDK wants one


def _readable(message: dict) -> bool:
    """Whether a message (or a stream's delta) has what the gateway reads, of the types it reads:
    content may be null (a reply of tool calls alone, or an empty one)."""
    calls = message.get("tool_calls") or []
    return (
        isinstance(message.get("content"), str | None)
        and isinstance(message.get("reasoning_content"), str | None)
        and isinstance(calls, list)
        and all(isinstance(call, dict) and isinstance(call.get("function") or {}, dict) for call in calls)
    )


def _readable_usage(counts: object) -> bool:
    if not counts:
        return True  # none reported: billed from the gateway's own count
    details = (counts.get("prompt_tokens_details") or {}) if isinstance(counts, dict) else None
    return (
        isinstance(counts, dict)
        and is_count(counts.get("prompt_tokens"))
        and is_count(counts.get("completion_tokens"))
        and isinstance(details, dict)
        and is_count(details.get("cached_tokens") or 0)
    )


def _usage(counts: dict) -> Usage:
    details = counts.get("prompt_tokens_details") or {}
    return Usage(counts["prompt_tokens"], counts["completion_tokens"], cached_tokens=details.get("cached_tokens") or 0)


def _parse(data: str, request_id: str) -> dict:
    event = answer_object(data, request_id)
    if event.get("error"):  # OpenAI-compatible servers report mid-stream failures this way
        error = event["error"]
        message = error.get("message", "") if isinstance(error, dict) else str(error)
        raise ProviderError(f"the provider reported a failure: {message}", kind=ErrorKind.SERVER, request_id=request_id)
    return event
