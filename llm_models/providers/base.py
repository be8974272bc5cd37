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
import os
import random
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

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
    def __init__(
        self,
        message: str,
        *,
        kind: str,
        vendor_status: int | None = None,
        retry_after: float | None = None,
        request_id: str = "",
    ):
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


# A model row names the env var holding its key. Only *_API_KEY names are honoured, so a row
# cannot send the gateway's own secrets (SECRET_KEY, DATABASE_URL, ...) to a server it names.
KEY_ENV_PATTERN = re.compile(r"[A-Z][A-Z0-9_]*_API_KEY")


def api_key_from_env(vendor: str, name: str) -> str:
    """The key in env var `name`, read at call time (never at import: settings may come later)."""
    if not KEY_ENV_PATTERN.fullmatch(name):
        raise ProviderError(f"{name!r} is not an accepted key variable (it must end in _API_KEY)", kind="unavailable")
    key = os.environ.get(name, "")
    if not key:
        raise ProviderError(f"No API key configured for {vendor} (set {name})", kind="unavailable")
    return key


def kind_for_status(status: int) -> str:
    """The ProviderError kind for a vendor's HTTP error status (same meaning at every vendor)."""
    if status in (401, 403):
        return "auth"
    if status == 404:
        return "not_found"
    if status == 408:
        return "timeout"
    if status == 429:
        return "rate_limited"
    if status in (400, 413, 422):
        return "bad_request"
    # 5xx (and Anthropic's 529 "overloaded"); any other 4xx is the gateway's problem, not
    # the client's, so it is not answered as a 400 either.
    return "server"


def status_error(
    status: int, *, vendor_message: str = "", model: str = "", retry_after: float | None = None, request_id: str = ""
) -> ProviderError:
    """A ProviderError for a vendor's HTTP error, with a message safe to show the client.

    Only a refused request (bad_request) passes the vendor's own words on: those explain what
    to fix (e.g. the context length). Others might quote credentials (OpenAI's 401 echoes part
    of the key) or say nothing the client can act on.
    """
    kind = kind_for_status(status)
    message = {
        "auth": "the provider rejected the gateway's credentials",
        "not_found": f"the provider does not know the model {model!r}",
        "rate_limited": "the provider is rate-limiting the gateway; try again later",
        "timeout": "the provider did not answer in time",
        "bad_request": vendor_message or "the provider refused the request",
    }.get(kind, f"the provider failed (HTTP {status})")
    return ProviderError(message, kind=kind, vendor_status=status, retry_after=retry_after, request_id=request_id)


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds the vendor asked to wait: `retry-after-ms` (OpenAI), else `retry-after`."""
    try:
        if (ms := headers.get("retry-after-ms")) is not None:
            return max(float(ms) / 1000, 0.0)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(float(value), 0.0)
        except ValueError:
            return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


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
