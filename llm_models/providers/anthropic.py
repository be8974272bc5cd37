"""Anthropic's Messages API, reached with OpenAI-style messages."""

import asyncio
import json
import os
from collections.abc import AsyncIterator

import anthropic
import httpx2  # the SDK's own HTTP stack: what a half-read stream raises
from django.conf import settings

from llm_models.providers.base import (
    Chunk,
    Completion,
    CompletionRequest,
    Provider,
    ProviderError,
    Usage,
    api_key_from_env,
    retry_after_seconds,
    status_error,
)

# The gateway speaks OpenAI outward, so stop reasons are told in OpenAI's words.
FINISH_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "refusal": "content_filter"}
# error.type of an `event: error` in the middle of a stream -> ProviderError kind.
KIND_BY_ERROR_TYPE = {
    "overloaded_error": "server",
    "api_error": "server",
    "rate_limit_error": "rate_limited",
    "invalid_request_error": "bad_request",
    "request_too_large": "bad_request",
    "authentication_error": "auth",
    "permission_error": "auth",
    "not_found_error": "not_found",
}
# Anthropic wants a user turn first; a history that opens with the assistant (an agent's
# greeting) gets this stand-in rather than losing the greeting. Empty text is refused.
OPENING_USER_TURN = "..."


def to_anthropic(messages: list[dict]) -> tuple[str, list[dict]]:
    """OpenAI-style messages -> (system prompt, alternating user/assistant turns)."""
    system: list[str] = []
    turns: list[dict] = []
    for message in messages:
        role, content = message["role"], message["content"]
        if role == "system":
            system.append(content)
            continue
        role = "assistant" if role == "assistant" else "user"
        if turns and turns[-1]["role"] == role:  # the API requires strict alternation
            turns[-1]["content"] += "\n\n" + content
        else:
            turns.append({"role": role, "content": content})
    if not turns or turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": OPENING_USER_TURN})
    return "\n\n".join(system), turns


class AnthropicProvider(Provider):
    vendor = "anthropic"
    default_key_env = "ANTHROPIC_API_KEY"

    def __init__(self) -> None:
        self._client: anthropic.AsyncAnthropic | None = None
        self._client_key: tuple = ()

    async def complete(self, request: CompletionRequest) -> Completion:
        client = self._client_for(request)
        try:
            message = await client.messages.create(**self._params(request))
        except anthropic.AnthropicError as exc:
            raise _error(exc, request) from exc
        # Parsed without strict validation: a reply without usage just lacks the attribute.
        usage = getattr(message, "usage", None)
        return Completion(
            text="".join(block.text for block in message.content if block.type == "text"),
            usage=Usage(usage.input_tokens, usage.output_tokens) if usage else None,
            request_id=message._request_id or "",
            finish_reason=FINISH_REASONS.get(message.stop_reason or "", message.stop_reason),
        )

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Chunk]:
        client = self._client_for(request)
        params = self._params(request) | {"stream": True}
        # Raw SSE lines with json.loads rather than the SDK's typed events: cheaper per chunk,
        # and the gateway only needs the text deltas and the two usage numbers.
        try:
            async with client.messages.with_streaming_response.create(**params) as response:
                request_id = response.headers.get("request-id", "")
                input_tokens = output_tokens = finish_reason = None
                done = False
                async for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue  # "event:" lines repeat the data's "type"; blank separators
                    event = _parse(line[5:], request_id)
                    kind = event.get("type")
                    if kind == "content_block_delta":
                        delta = event.get("delta") or {}
                        if delta.get("type") == "text_delta" and delta.get("text"):
                            yield Chunk(text=delta["text"], request_id=request_id)
                    elif kind == "message_start":
                        usage = (event.get("message") or {}).get("usage") or {}
                        input_tokens = usage.get("input_tokens", input_tokens)
                    elif kind == "message_delta":
                        # Counts here are cumulative for the whole message.
                        usage = event.get("usage") or {}
                        input_tokens = usage.get("input_tokens") or input_tokens
                        output_tokens = usage.get("output_tokens", output_tokens)
                        reason = (event.get("delta") or {}).get("stop_reason")
                        finish_reason = FINISH_REASONS.get(reason or "", reason) or finish_reason
                    elif kind == "message_stop":
                        done = True
                if not done:
                    raise ProviderError("the provider's stream ended early", kind="connection", request_id=request_id)
                # Both numbers or none: a half-known usage would under-bill.
                known = input_tokens is not None and output_tokens is not None
                yield Chunk(
                    usage=Usage(input_tokens, output_tokens) if known else None,
                    finish_reason=finish_reason,
                    request_id=request_id,
                )
        except anthropic.AnthropicError as exc:
            raise _error(exc, request) from exc
        except httpx2.TimeoutException as exc:
            raise ProviderError("the provider stopped sending in the middle of the answer", kind="timeout") from exc
        except httpx2.TransportError as exc:
            raise ProviderError(
                "the connection to the provider broke in the middle of the answer", kind="connection"
            ) from exc

    def _api_key(self, request: CompletionRequest) -> str:
        return api_key_from_env(self.vendor, request.api_key_env or self.default_key_env)

    def _client_for(self, request: CompletionRequest) -> anthropic.AsyncAnthropic:
        """The process's client, made on first use (after a fork), remade if the loop changes
        (pooled connections belong to the loop that opened them; see OpenAIProvider)."""
        api_key = self._api_key(request)
        base_url = request.base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        timeout = settings.PROVIDER_TIMEOUT_SECONDS
        key = (asyncio.get_running_loop(), api_key, base_url, timeout)
        if self._client is None or key != self._client_key:
            # max_retries=0: base.complete_with_retries does the retrying, once, for all vendors.
            self._client = anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0)
            self._client_key = key
        return self._client

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
        if request.extra:
            # extra_body: vendor fields the SDK's signature does not list still reach the API.
            params["extra_body"] = request.extra
        return params


def _parse(data: str, request_id: str) -> dict:
    try:
        event = json.loads(data)
    except ValueError:
        event = None
    if not isinstance(event, dict):
        raise ProviderError("the provider sent a malformed stream", kind="server", request_id=request_id)
    if event.get("type") == "error":  # e.g. "overloaded_error" after the stream has begun
        error = event.get("error") or {}
        kind = KIND_BY_ERROR_TYPE.get(error.get("type"), "server")
        message = f"the provider failed mid-stream: {error.get('message', '')}"
        raise ProviderError(message, kind=kind, request_id=request_id)
    return event


def _error(exc: anthropic.AnthropicError, request: CompletionRequest) -> ProviderError:
    # APITimeoutError subclasses APIConnectionError, so it is checked first.
    if isinstance(exc, anthropic.APITimeoutError):
        return ProviderError("the provider did not answer in time", kind="timeout")
    if isinstance(exc, anthropic.APIConnectionError):
        return ProviderError("could not reach the provider", kind="connection")
    if isinstance(exc, anthropic.APIStatusError):
        return status_error(
            exc.status_code,
            vendor_message=exc.api_message or "",
            model=request.provider_model,
            retry_after=retry_after_seconds(exc.response.headers),
            request_id=exc.request_id or "",
        )
    return ProviderError(f"unexpected answer from the provider: {type(exc).__name__}", kind="server")
