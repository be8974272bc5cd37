"""The one interface every vendor is reached through.

A provider turns OpenAI-style messages ([{"role": "system"|"user"|"assistant", "content": str}])
into one vendor call: `complete()` returns a whole `Completion`; `stream()` yields text `Chunk`s
and, last, a chunk carrying `usage` (when the vendor reported it). Every vendor failure becomes a
`ProviderError` whose `kind` says what the gateway answers (see `STATUS_BY_KIND`).

Implementations make exactly one attempt; `complete_with_retries()` and `stream_with_retries()`
add the bounded retries, so no vendor SDK retries on its own and a retry never double-charges
(billing happens once, after the final attempt).
"""

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from django.conf import settings


@dataclass
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Completion:
    text: str
    usage: Usage | None
    request_id: str = ""
    finish_reason: str | None = None


@dataclass
class Chunk:
    text: str = ""
    usage: Usage | None = None
    request_id: str = ""
    finish_reason: str | None = None


# What the gateway answers for each kind of vendor failure.
STATUS_BY_KIND = {
    "unavailable": 503,  # no credentials configured for this vendor
    "auth": 502,  # the vendor rejected the gateway's credentials
    "rate_limited": 429,  # still rate-limited after the retries
    "server": 502,  # vendor 5xx, after the retries
    "connection": 502,  # could not reach the vendor, after the retries
    "timeout": 504,
    "bad_request": 400,  # the vendor refused the request (e.g. context length)
    "not_found": 502,  # the vendor does not know the model id: a catalog problem, not the client's
}
RETRYABLE_KINDS = {"rate_limited", "server", "connection"}


class ProviderError(Exception):
    def __init__(self, message: str, *, kind: str, vendor_status: int | None = None,
                 retry_after: float | None = None, request_id: str = ""):
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.vendor_status = vendor_status
        self.retry_after = retry_after
        self.request_id = request_id

    @property
    def status(self) -> int:
        return STATUS_BY_KIND.get(self.kind, 502)

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE_KINDS


@dataclass
class CompletionRequest:
    """What the gateway asks of a model, vendor-neutral."""

    provider_model: str
    messages: list[dict]
    max_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    base_url: str = ""
    api_key_env: str = ""
    extra: dict = field(default_factory=dict)  # vendor-specific pass-through


class Provider:
    """Base class: one attempt per call; subclasses map the vendor's errors to ProviderError."""

    async def complete(self, request: CompletionRequest) -> Completion:
        raise NotImplementedError

    def stream(self, request: CompletionRequest) -> AsyncIterator[Chunk]:
        raise NotImplementedError


def _backoff(attempt: int, error: ProviderError) -> float:
    if error.retry_after is not None:
        return min(error.retry_after, 30.0)
    base = settings.PROVIDER_RETRY_BASE_SECONDS
    return base * (2**attempt) * (0.5 + random.random() / 2)


async def complete_with_retries(provider: Provider, request: CompletionRequest) -> Completion:
    attempt = 0
    while True:
        try:
            return await provider.complete(request)
        except ProviderError as error:
            if not error.retryable or attempt >= settings.PROVIDER_MAX_RETRIES:
                raise
            await asyncio.sleep(_backoff(attempt, error))
            attempt += 1


async def stream_with_retries(provider: Provider, request: CompletionRequest) -> AsyncIterator[Chunk]:
    """Retries only until the first chunk arrives: after that, text has reached the client."""
    attempt = 0
    while True:
        started = False
        try:
            async for chunk in provider.stream(request):
                started = True
                yield chunk
            return
        except ProviderError as error:
            if started or not error.retryable or attempt >= settings.PROVIDER_MAX_RETRIES:
                raise
            await asyncio.sleep(_backoff(attempt, error))
            attempt += 1
