"""The one interface every vendor is reached through.

The neutral request is OpenAI's chat format, the richest common ground of the vendors: messages
(roles system, user, assistant, tool; text and image_url parts; an assistant's `tool_calls`; a
tool's result by `tool_call_id`) and `CompletionRequest.options` under OpenAI's names (tools,
tool_choice, parallel_tool_calls, response_format, reasoning_effort, user). Each provider turns
that into one vendor call: `complete()` returns a whole `Completion` (text, tool calls, reasoning);
`stream()` yields `Chunk`s (text, tool-call deltas in OpenAI's shape, reasoning) and, last, one
carrying `usage` (when the vendor reported it) and the `FinishReason`. Every vendor failure
becomes a `ProviderError` whose `ErrorKind` says what the gateway answers.

Implementations make exactly one attempt; `complete_with_retries()` and `stream_with_retries()`
add the bounded retries, so no vendor SDK retries on its own and a retry never double-charges
(billing happens once, after the final attempt).

Vendors with an SDK subclass `SDKProvider`, which owns what they would otherwise each repeat:
the client per process and event loop, the key lookup, and the mapping of errors. This module
imports no SDK, so importing it (or the registry) stays fast; see docs/providers.md.
"""

import asyncio
import contextlib
import enum
import json
import logging
import os
import random
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Generic, TypeVar

import httpx2  # the HTTP stack of the openai and anthropic SDKs: what a half-read stream raises
from django.conf import settings

from llm_models.vendor_keys import key_destination_problem

logger = logging.getLogger(__name__)


class FinishReason(enum.StrEnum):
    """Why a reply ended, in OpenAI's words: the gateway speaks OpenAI outward, so each provider
    translates its vendor's reasons into these once, and nothing downstream translates again."""

    STOP = "stop"  # the model was done, or hit a stop sequence
    LENGTH = "length"  # cut at max_tokens (or the context window)
    TOOL_CALLS = "tool_calls"
    CONTENT_FILTER = "content_filter"  # the vendor refused or filtered the reply


@dataclass
class Usage:
    prompt_tokens: int  # all of them, those read from or written to the vendor's prompt cache included
    completion_tokens: int
    cached_tokens: int = 0  # of the prompt, read from the cache (cheaper)
    cache_write_tokens: int = 0  # of the prompt, written to the cache (Anthropic: dearer)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Completion:
    text: str
    usage: Usage | None
    request_id: str = ""
    # A FinishReason (a Chunk's too); an OpenAI-compatible server's own word passes through as a str.
    finish_reason: FinishReason | str | None = None
    # Which of the request's stop sequences ended the reply, where the vendor says (Anthropic does;
    # OpenAI only says "stop").
    stop_sequence: str | None = None
    # The vendor's own answer, relayed as it is to a client that speaks the same format: every
    # field it has, tool calls and logprobs included, reaches the client.
    raw: dict | None = None
    # The tools the model called, in OpenAI's shape: [{"id", "type": "function", "function":
    # {"name", "arguments": a JSON string}}].
    tool_calls: list[dict] = field(default_factory=list)
    reasoning: str = ""  # what the model thought aloud (Claude's thinking blocks), where shown
    # Claude's thinking blocks as it sent them (signed): a client of another format keeps them
    # and sends them back, which Claude requires to continue a tool loop while thinking.
    thinking_blocks: list[dict] = field(default_factory=list)


@dataclass
class Chunk:
    text: str = ""
    usage: Usage | None = None
    request_id: str = ""
    finish_reason: FinishReason | str | None = None
    stop_sequence: str | None = None  # on the last chunk, as Completion.stop_sequence
    raw: dict | None = None  # the vendor's own event, as Completion.raw
    # Pieces of tool calls, as OpenAI streams them: [{"index", "id"?, "type"?, "function":
    # {"name"?, "arguments"?: a fragment of the JSON}}]; a call's id and name come first.
    tool_calls: list[dict] = field(default_factory=list)
    reasoning: str = ""  # a piece of the model's thinking
    # The vendor's count of the prompt, where it tells it before the reply (Anthropic's
    # message_start; its output 0): what a stream cut before `usage` came is billed for its prompt.
    prompt_usage: Usage | None = None

    @property
    def tool_text(self) -> str:
        """The tool calls' names and argument fragments: counted in the bill of a stream cut
        before the vendor reported usage."""
        return "".join(
            str((call.get("function") or {}).get("name") or "")
            + str((call.get("function") or {}).get("arguments") or "")
            for call in self.tool_calls
        )


class ErrorKind(enum.StrEnum):
    """A kind of vendor failure, with what the gateway makes of it.

    A StrEnum: the values are the strings stored as Message.error_type, so old rows still read
    as members and `kind == "timeout"` keeps working.
    """

    status: int  # the HTTP status the gateway answers
    retryable: bool  # worth another attempt (complete_with_retries, stream_with_retries)
    api_type: str  # the error `type` the gateway's clients see

    def __new__(cls, value: str, status: int, retryable: bool, api_type: str) -> "ErrorKind":
        member = str.__new__(cls, value)
        member._value_ = value
        member.status, member.retryable, member.api_type = status, retryable, api_type
        return member

    UNAVAILABLE = "unavailable", 503, False, "provider_unavailable"  # no key configured, no such provider
    AUTH = "auth", 502, False, "provider_auth_error"  # the vendor rejected the gateway's credentials
    RATE_LIMITED = "rate_limited", 429, True, "provider_rate_limited"  # 429 once the retries are spent
    SERVER = "server", 502, True, "provider_error"  # vendor 5xx (and 529), after the retries
    CONNECTION = "connection", 502, True, "provider_error"  # could not reach it, or it hung up
    TIMEOUT = "timeout", 504, False, "provider_timeout"  # not retried: the client waited long enough
    BAD_REQUEST = "bad_request", 400, False, "provider_bad_request"  # e.g. over the context length
    # The vendor does not know the model id: a catalog problem, not the client's.
    NOT_FOUND = "not_found", 502, False, "provider_error"


class ProviderError(Exception):
    def __init__(
        self,
        message: str,
        *,
        kind: ErrorKind | str,
        vendor_status: int | None = None,
        retry_after: float | None = None,
        request_id: str = "",
    ):
        super().__init__(message)
        self.message = message
        self.kind = ErrorKind[kind.upper()]  # a member, or its value: a bare "timeout" still works
        self.vendor_status = vendor_status
        self.retry_after = retry_after
        self.request_id = request_id

    @property
    def status(self) -> int:
        return self.kind.status

    @property
    def retryable(self) -> bool:
        return self.kind.retryable


# A model row names the env var holding its key. Only *_API_KEY names are honoured, so a row
# cannot send the gateway's own secrets (SECRET_KEY, DATABASE_URL, ...) to a server it names.
KEY_ENV_PATTERN = re.compile(r"[A-Z][A-Z0-9_]*_API_KEY")


def is_count(value: object) -> bool:
    """A token count as a vendor's answer must carry it: a non-negative integer."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def answer_object(data: str, request_id: str) -> dict:
    """A vendor's answer or stream event: a JSON object, or the malformed_answer error (nested past
    Python's stack included: a vendor's bytes never become a 500)."""
    try:
        event = json.loads(data)
    except (ValueError, RecursionError):
        event = None
    if not isinstance(event, dict):
        raise malformed_answer(request_id)
    return event


def malformed_answer(request_id: str) -> ProviderError:
    """A 200 whose body lacks what the vendor's format promises (no message, a count that is not
    a number, ...): the vendor failed, not the gateway, so the client gets a 502."""
    return ProviderError("the provider sent a malformed answer", kind=ErrorKind.SERVER, request_id=request_id)


def api_key_from_env(vendor: str, name: str) -> str:
    """The key in env var `name`, read at call time (never at import: settings may come later)."""
    if not KEY_ENV_PATTERN.fullmatch(name):
        raise ProviderError(
            f"{name!r} is not an accepted key variable (it must end in _API_KEY)", kind=ErrorKind.UNAVAILABLE
        )
    key = os.environ.get(name, "")
    if not key:
        raise ProviderError(f"No API key configured for {vendor} (set {name})", kind=ErrorKind.UNAVAILABLE)
    return key


def kind_for_status(status: int) -> ErrorKind:
    """The kind for a vendor's HTTP error status (same meaning at every vendor)."""
    if status in (401, 403):
        return ErrorKind.AUTH
    if status == 404:
        return ErrorKind.NOT_FOUND
    if status == 408:
        return ErrorKind.TIMEOUT
    if status == 429:
        return ErrorKind.RATE_LIMITED
    if status in (400, 413, 422):
        return ErrorKind.BAD_REQUEST
    # 5xx (and Anthropic's 529 "overloaded"); any other 4xx is the gateway's problem, not
    # the client's, so it is not answered as a 400 either.
    return ErrorKind.SERVER


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
        ErrorKind.AUTH: "the provider rejected the gateway's credentials",
        ErrorKind.NOT_FOUND: f"the provider does not know the model {model!r}",
        ErrorKind.RATE_LIMITED: "the provider is rate-limiting the gateway; try again later",
        ErrorKind.TIMEOUT: "the provider did not answer in time",
        ErrorKind.BAD_REQUEST: vendor_message or "the provider refused the request",
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
    # The most the reply may use: what the gateway reserved for it. Anthropic's API always takes
    # it; an OpenAI-style vendor is sent it under `max_tokens_param` (the client's own name for
    # it, max_tokens or max_completion_tokens, or the gateway's when it must cap the reply), and
    # not at all when that is None: the model's own limit is then within the reservation.
    max_tokens: int
    max_tokens_param: str | None = "max_tokens"
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    base_url: str = ""
    api_key_env: str = ""
    # What the model may do besides write text, under OpenAI's names (see the module's doc):
    # tools, tool_choice, parallel_tool_calls, response_format, reasoning_effort, user. Each
    # provider translates them for its vendor.
    options: dict = field(default_factory=dict)
    # Fields sent as they are, over the translated request: a vendor's own parameters, or a whole
    # request of the vendor's format relayed as the client sent it (its messages included).
    extra: dict = field(default_factory=dict)


class Provider:
    """Base class: one attempt per call; every failure is raised as a ProviderError."""

    async def complete(self, request: CompletionRequest) -> Completion:
        raise NotImplementedError

    def stream(self, request: CompletionRequest) -> AsyncIterator[Chunk]:
        raise NotImplementedError

    async def embed(self, request: CompletionRequest) -> Completion:
        """Embeddings of `request.extra` (the client's `input` and options): the vendor's answer
        as `raw`, its usage as prompt tokens."""
        raise ProviderError("this vendor has no embeddings API", kind=ErrorKind.BAD_REQUEST)


ClientT = TypeVar("ClientT")


class SDKProvider(Provider, Generic[ClientT]):
    """A vendor reached through its SDK's async client.

    A subclass says only what differs: the class attributes below, `make_client()`, `send()` and
    `send_stream()` (its request and the parsing of its answer), and `vendor_message()`. This
    class keeps the client, finds the key, and turns whatever the SDK or its HTTP stack raises
    into a ProviderError.
    """

    vendor: ClassVar[str]  # named in "No API key configured for ..."
    default_key_env: ClassVar[str]  # the key's env var when the model row names none
    base_url_env: ClassVar[str]  # the SDK's own env var for its endpoint
    request_id_header: ClassVar[str]  # where the vendor puts its request id, on answers and errors
    # The SDK's exceptions. The Stainless-made SDKs (openai, anthropic) all have this shape: a
    # status error has `.status_code` and `.response`; the timeout subclasses the connection error.
    sdk_error: ClassVar[type[Exception]]  # the base of everything the SDK raises
    sdk_timeout_error: ClassVar[type[Exception]]
    sdk_connection_error: ClassVar[type[Exception]]
    sdk_status_error: ClassVar[type[Exception]]

    def __init__(self) -> None:
        self._client: ClientT | None = None
        self._client_key: tuple = ()

    # --- what a vendor provides ---------------------------------------------------------------

    def make_client(self, *, api_key: str, base_url: str | None, timeout: float) -> ClientT:
        """The SDK's async client, with max_retries=0: complete_with_retries does the retrying,
        once, for all vendors (an SDK retrying too would multiply the attempts)."""
        raise NotImplementedError

    async def send(self, *, client: ClientT, request: CompletionRequest) -> Completion:
        raise NotImplementedError

    def send_stream(self, *, client: ClientT, request: CompletionRequest) -> AsyncGenerator[Chunk]:
        raise NotImplementedError

    async def send_embeddings(self, *, client: ClientT, request: CompletionRequest) -> Completion:
        return await Provider.embed(self, request)  # none, unless the vendor's module says how

    def vendor_message(self, exc: Any) -> str:
        """The vendor's own explanation in a status error (shown to the client on a 400 only)."""
        return ""

    def api_key(self, request: CompletionRequest) -> str:
        return api_key_from_env(self.vendor, request.api_key_env or self.default_key_env)

    # --- the interface --------------------------------------------------------------------------

    async def complete(self, request: CompletionRequest) -> Completion:
        client = self._client_for(request)
        try:
            return await self.send(client=client, request=request)
        except (self.sdk_error, httpx2.TransportError) as exc:
            raise self._error(exc, request) from exc

    async def embed(self, request: CompletionRequest) -> Completion:
        client = self._client_for(request)
        try:
            return await self.send_embeddings(client=client, request=request)
        except (self.sdk_error, httpx2.TransportError) as exc:
            raise self._error(exc, request) from exc

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Chunk]:
        client = self._client_for(request)
        try:
            # aclosing: a client that goes away mid-stream releases the vendor's connection now,
            # not whenever the inner generator is collected.
            async with contextlib.aclosing(self.send_stream(client=client, request=request)) as chunks:
                async for chunk in chunks:
                    yield chunk
        except (self.sdk_error, httpx2.TransportError) as exc:
            raise self._error(exc, request) from exc

    # --- plumbing -------------------------------------------------------------------------------

    def _client_for(self, request: CompletionRequest) -> ClientT:
        """The process's client for this endpoint, made on first use (so after a fork).

        It is remade when the event loop changes: its pooled connections belong to the loop
        that opened them. A server has one loop per worker; tests and `async_to_sync` make many.
        """
        if problem := key_destination_problem(
            provider=self.vendor, base_url=request.base_url, api_key_env=request.api_key_env
        ):
            # The details (hosts, variables) are the operator's; the caller learns only that it failed.
            logger.error("Model %s not called: %s", request.provider_model, problem[1])
            raise ProviderError(
                "this model's endpoint may not be sent its vendor's key; staff must correct the model",
                kind=ErrorKind.UNAVAILABLE,
            )
        api_key = self.api_key(request)
        base_url = request.base_url or os.environ.get(self.base_url_env) or None
        timeout = settings.PROVIDER_TIMEOUT_SECONDS
        key = (asyncio.get_running_loop(), api_key, base_url, timeout)
        if self._client is None or key != self._client_key:
            self._client = self.make_client(api_key=api_key, base_url=base_url, timeout=timeout)
            self._client_key = key
        return self._client

    def _error(self, exc: Exception, request: CompletionRequest) -> ProviderError:
        # The SDK wraps what fails before the answer starts; reading a stream after that raises
        # its HTTP stack's own errors. Timeouts first: each subclasses its connection error.
        if isinstance(exc, self.sdk_timeout_error):
            return ProviderError("the provider did not answer in time", kind=ErrorKind.TIMEOUT)
        if isinstance(exc, self.sdk_connection_error):
            return ProviderError("could not reach the provider", kind=ErrorKind.CONNECTION)
        if isinstance(exc, self.sdk_status_error):
            headers = exc.response.headers  # type: ignore[attr-defined]
            return status_error(
                exc.status_code,  # type: ignore[attr-defined]
                vendor_message=self.vendor_message(exc),
                model=request.provider_model,
                retry_after=retry_after_seconds(headers),
                request_id=headers.get(self.request_id_header) or "",
            )
        if isinstance(exc, httpx2.TimeoutException):
            return ProviderError("the provider stopped sending in the middle of the answer", kind=ErrorKind.TIMEOUT)
        if isinstance(exc, httpx2.TransportError):
            return ProviderError(
                "the connection to the provider broke in the middle of the answer", kind=ErrorKind.CONNECTION
            )
        return ProviderError(f"unexpected answer from the provider: {type(exc).__name__}", kind=ErrorKind.SERVER)


def _backoff(attempt: int, error: ProviderError) -> float:
    if error.retry_after is not None:
        return min(error.retry_after, 30.0)
    base = settings.PROVIDER_RETRY_BASE_SECONDS
    return base * (2**attempt) * (0.5 + random.random() / 2)


async def complete_with_retries(provider: Provider, request: CompletionRequest) -> Completion:
    return await _with_retries(lambda: provider.complete(request))


async def embed_with_retries(provider: Provider, request: CompletionRequest) -> Completion:
    return await _with_retries(lambda: provider.embed(request))


def _call_overran() -> ProviderError:
    return ProviderError(
        f"the call took longer than the gateway allows ({settings.PROVIDER_MAX_CALL_SECONDS:g} s)",
        kind=ErrorKind.TIMEOUT,
    )


async def _with_retries(attempt_once: Callable[[], Awaitable[Completion]]) -> Completion:
    attempt = 0
    try:
        async with asyncio.timeout(settings.PROVIDER_MAX_CALL_SECONDS):
            while True:
                try:
                    return await attempt_once()
                except ProviderError as error:
                    if not error.retryable or attempt >= settings.PROVIDER_MAX_RETRIES:
                        raise
                    await asyncio.sleep(_backoff(attempt, error))
                    attempt += 1
    except TimeoutError:
        raise _call_overran() from None


async def _before(deadline: float, items: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
    """`items` until the loop's clock reaches `deadline`, then the TIMEOUT of a call that overran.
    Each wait is timed on its own: a timeout around the yields would fire in the consumer's code."""
    while True:
        try:
            async with asyncio.timeout_at(deadline):
                chunk = await anext(items)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise _call_overran() from None
        yield chunk


async def stream_with_retries(provider: Provider, request: CompletionRequest) -> AsyncIterator[Chunk]:
    """Retries only until the model has produced something (text or a tool call): after that, it
    has reached the client. The events before it (a role, a message_start) are held back until
    then, so a retried attempt does not repeat them to the client."""
    attempt = 0
    deadline = asyncio.get_running_loop().time() + settings.PROVIDER_MAX_CALL_SECONDS
    while True:
        started, opening = False, []
        try:
            async for chunk in _before(deadline, provider.stream(request)):
                if not started and not (chunk.text or chunk.tool_calls or chunk.reasoning):
                    opening.append(chunk)
                    continue
                if not started:
                    started = True
                    for held in opening:
                        yield held
                yield chunk
            for held in [] if started else opening:  # a reply with nothing in it
                yield held
            return
        except ProviderError as error:
            if started or not error.retryable or attempt >= settings.PROVIDER_MAX_RETRIES:
                raise
            await asyncio.sleep(_backoff(attempt, error))
            attempt += 1
