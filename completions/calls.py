"""One completion call made through a vendor-compatible endpoint (/v1/chat/completions,
/v1/messages): the same admission (rate limits, quota reservation), vendor call and settlement
as a dialog message, without a dialog. The endpoint modules only translate formats."""

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from rest_framework import exceptions

from accounts.credentials import authenticate_request
from billing.admission import Admission, completion_admit
from billing.settlement import completion_settle
from common.db import db_phase
from common.errors import GatewayError, from_api_exception
from llm_models import catalog
from llm_models.providers.base import (
    Chunk,
    Completion,
    CompletionRequest,
    FinishReason,
    ProviderError,
    Usage,
    complete_with_retries,
    stream_with_retries,
)
from llm_models.providers.registry import build_request, get_provider
from llm_models.providers.tokens import count_messages


def from_provider_error(error: ProviderError, **extra: Any) -> GatewayError:
    """A vendor failure as the client is told of it."""
    headers = {}
    if error.status == 429:
        headers["Retry-After"] = str(max(int(error.retry_after or 1), 1))
    return GatewayError(
        error.message,
        status=error.status,
        type=error.kind.api_type,
        headers=headers,
        **extra,
    )


@dataclass
class Call:
    admission: Admission
    request: CompletionRequest
    endpoint: str

    @property
    def model(self):
        return self.admission.model


@dataclass
class CallParams:
    model: str
    messages: list[dict]  # OpenAI-style: role + text content, system first
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] | None = None


def call_prepare(http_request, params: CallParams, *, endpoint: str) -> Call:
    """Sync (run it with db_phase): who is calling, which model, admission. Raises GatewayError."""
    try:
        user, api_key = authenticate_request(http_request, reserves_on_key=True)
    except exceptions.APIException as exc:
        raise from_api_exception(exc) from exc
    model = catalog.model_get(params.model)
    if model is None or not model.enabled:
        raise GatewayError(
            f"The model '{params.model}' does not exist or is disabled.",
            status=404,
            type="model_not_found",
            param="model",
        )
    max_tokens = params.max_tokens or model.max_output_tokens
    if max_tokens > model.max_output_tokens:
        raise GatewayError(
            f"max_tokens is at most {model.max_output_tokens} for {model.name}.",
            type="invalid_request",
            param="max_tokens",
        )
    prompt_tokens = count_messages(model.provider, model.provider_model, params.messages)
    if prompt_tokens + max_tokens > model.context_window:
        raise GatewayError(
            f"This model's maximum context length is {model.context_window} tokens; the messages need "
            f"{prompt_tokens} and {max_tokens} are kept for the reply.",
            status=400,
            type="context_length_exceeded",
            param="messages",
        )
    admission = completion_admit(
        user=user, api_key=api_key, model=model, prompt_tokens=prompt_tokens, max_tokens=max_tokens
    )
    request = build_request(
        model,
        messages=params.messages,
        max_tokens=max_tokens,
        temperature=params.temperature,
        top_p=params.top_p,
        stop=params.stop,
    )
    return Call(admission, request, endpoint)


def _settle(call: Call, *, status: str, usage=None, text: str = "", request_id: str = ""):
    return completion_settle(
        admission=call.admission, status=status, usage=usage, text=text, request_id=request_id, endpoint=call.endpoint
    )


async def call_complete(call: Call) -> tuple[Completion, Usage]:
    """The whole reply and what it was billed; or a GatewayError (the reservation given back)."""
    try:
        completion = await complete_with_retries(get_provider(call.model), call.request)
    except ProviderError as error:
        await db_phase(_settle, call, status="error", request_id=error.request_id)
        raise from_provider_error(error) from error
    except BaseException:
        await asyncio.shield(db_phase(_settle, call, status="incomplete"))
        raise
    settlement = await db_phase(
        _settle, call, status="ok", usage=completion.usage, text=completion.text, request_id=completion.request_id
    )
    return completion, _usage_of(settlement)


def _usage_of(settlement) -> Usage:
    return Usage(settlement.prompt_tokens, settlement.completion_tokens)


async def call_stream(call: Call) -> AsyncGenerator[Chunk | GatewayError]:
    """Text chunks, then one chunk with the billed usage and finish reason; or, if the vendor fails,
    a GatewayError as the last item. Billed however it ends, the client hanging up included."""
    parts: list[str] = []
    usage, request_id, finish_reason = None, "", None
    try:
        async for chunk in stream_with_retries(get_provider(call.model), call.request):
            request_id = chunk.request_id or request_id
            usage = chunk.usage or usage
            finish_reason = chunk.finish_reason or finish_reason
            if chunk.text:
                parts.append(chunk.text)
                yield Chunk(text=chunk.text, request_id=request_id)
    except ProviderError as error:
        status = "incomplete" if parts else "error"
        await db_phase(
            _settle, call, status=status, usage=usage, text="".join(parts), request_id=request_id or error.request_id
        )
        yield from_provider_error(error)
        return
    except BaseException:
        await asyncio.shield(
            db_phase(_settle, call, status="incomplete", usage=usage, text="".join(parts), request_id=request_id)
        )
        raise
    settlement = await db_phase(_settle, call, status="ok", usage=usage, text="".join(parts), request_id=request_id)
    yield Chunk(
        usage=_usage_of(settlement),
        request_id=request_id,
        finish_reason=finish_reason or FinishReason.STOP,
    )


async def call_stream_open(call: Call) -> AsyncGenerator[Chunk | GatewayError]:
    """call_stream, once the vendor has answered: a failure before the first chunk raises the
    GatewayError, so the endpoint answers with its HTTP status (the SDKs retry a 429 or 503 and
    raise their usual exceptions) instead of an error event inside a 200 stream."""
    items = call_stream(call)
    first = await anext(items)
    if isinstance(first, GatewayError):
        await items.aclose()
        raise first

    async def started() -> AsyncGenerator[Chunk | GatewayError]:
        try:
            yield first
            async for item in items:
                yield item
        finally:
            await items.aclose()  # a client that hung up: call_stream settles what was sent

    return started()
