"""The one completion flow, for every caller: a dialog message (dialogs), an OpenAI-style call
(/v1/chat/completions), an Anthropic-style one (/v1/messages).

  admit   (sync, in a db_phase): the model, the prompt against its context window, the worst case
          held on the key and the quota, the rate limits (billing.admission);
  call    (async, no transaction, no connection held): the vendor, through llm_models.providers,
          with the gateway's own retries;
  settle  (sync, in a db_phase): however the call ended (a reply, a vendor error, a cut stream, a
          client gone), what was produced is stored (the caller's `store`, e.g. the dialog's
          reply) and billed in one transaction (billing.settlement).

The same problem is the same error everywhere: the callers only translate it into their wire
format. The events are vendor-neutral `Chunk`s (text, then one with the billed usage and the
finish reason), or a GatewayError last when the vendor fails mid-way.
"""

import asyncio
import json
import logging
import time
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpRequest
from rest_framework import exceptions

from accounts.credentials import authenticate_request
from billing.admission import Admission, completion_admit, request_count
from billing.models import APIKey, UsageStatus
from billing.settlement import billed_usage, completion_settle, new_settlement_id, settlement_params
from billing.spool import settlement_spool, spool_pending, spool_replay
from common import metrics
from common.db import DatabaseUnavailable, db_phase
from common.errors import GatewayError, from_api_exception, json_object
from common.inflight import call_in_flight
from common.request_ids import request_id_of, request_received
from llm_models import catalog
from llm_models.models import MODEL_NAME_LENGTH, LLMModel, ModelKind, ProviderKind, could_be_model_name
from llm_models.providers.base import (
    Chunk,
    Completion,
    CompletionRequest,
    FinishReason,
    Provider,
    ProviderError,
    Usage,
    complete_with_retries,
    embed_with_retries,
    stream_with_retries,
)
from llm_models.providers.registry import build_request, get_provider
from llm_models.providers.tokens import count_definitions, count_messages, count_text

logger = logging.getLogger(__name__)
# One JSON line per call, once it is settled (docs/operations.md).
request_logger = logging.getLogger("gateway.requests")

# --- the errors every caller gives for the same problem ----------------------------------------


class ModelNotFound(GatewayError):
    status = 404
    type = "model_not_found"


class ContextTooLong(GatewayError):
    status = 400
    type = "context_length_exceeded"


class ReplyNotSaved(GatewayError):
    """A reply that was billed (spooled) but could not be stored: the database was unavailable."""

    status = 503
    type = "reply_not_saved"


def call_caller(http_request: HttpRequest) -> tuple[User, APIKey | None]:
    """Sync: who is calling (a revoked key, an expired one or an inactive user is refused here,
    before anything else answers), their request counted against the key's and the user's
    requests per minute. First thing on every metered path, before the body is read: a caller
    over its rate is refused before the gateway parses, looks up or counts anything for it."""
    try:
        user, api_key = authenticate_request(http_request)
    except exceptions.APIException as exc:
        raise from_api_exception(exc) from exc
    request_count(user=user, api_key=api_key)
    return user, api_key


def model_name_checked(name: str) -> str:
    """`name`, or a 400 if no model could have it (billing nothing, looking nothing up)."""
    if not could_be_model_name(name):
        raise GatewayError(
            f"'model' must be a model name: at most {MODEL_NAME_LENGTH} printable characters.",
            type="invalid_request",
            param="model",
        )
    return name


def model_for_call(name: str, *, kind: str = ModelKind.CHAT) -> LLMModel:
    """The enabled model named `name`, or a 404; of the `kind` the endpoint serves, or a 400."""
    model = catalog.model_get(name)
    if model is None or not model.enabled:
        raise ModelNotFound(f"The model '{name}' does not exist or is disabled.", param="model")
    if model.kind != kind:
        raise GatewayError(
            f"'{name}' is a{'n' if model.kind == ModelKind.EMBEDDING else ''} {model.kind} model; "
            + ("embed with POST /v1/embeddings." if model.kind == ModelKind.EMBEDDING else "it cannot embed."),
            type="invalid_request",
            param="model",
        )
    return model


def model_enabled(model: LLMModel) -> LLMModel:
    """`model`, or the 404 model_for_call gives for a disabled one (a dialog's model, say)."""
    if not model.enabled:
        raise ModelNotFound(f"The model '{model.name}' is disabled; use another model.", param="model")
    return model


def max_tokens_checked(model: LLMModel, requested: int | None) -> int | None:
    """The client's max_tokens, if it set one, within the model's output limit (else a 400)."""
    if requested is not None and requested > model.max_output_tokens:
        raise GatewayError(
            f"max_tokens is at most {model.max_output_tokens} for {model.name}.",
            type="invalid_request",
            param="max_tokens",
        )
    return requested


def reply_room(model: LLMModel, *, prompt_tokens: int) -> int:
    """The longest reply the model can give after this prompt: its output limit, or what its
    context window leaves, whichever is less."""
    return min(model.max_output_tokens, model.context_window - prompt_tokens)


def context_too_long(model: LLMModel, *, prompt_tokens: int, max_tokens: int) -> ContextTooLong:
    available = model.context_window - max_tokens
    kept = f" and {max_tokens} are kept for the reply ({available} left for the messages)" if max_tokens else ""
    return ContextTooLong(
        f"This model's maximum context length is {model.context_window} tokens; the messages need "
        f"{prompt_tokens}{kept}.",
        param="messages",
        prompt_tokens=prompt_tokens,
        context_window=model.context_window,
        max_tokens=max_tokens,
        available_tokens=available,
    )


def from_provider_error(error: ProviderError, **extra: Any) -> GatewayError:
    """A vendor failure as the client is told of it: final, since the gateway has already retried
    what was worth retrying (x-should-retry: false keeps the SDKs from repeating it all)."""
    headers = {"x-should-retry": "false"}
    if error.status == 429:
        headers["Retry-After"] = str(max(int(error.retry_after or 1), 1))
    return GatewayError(error.message, status=error.status, type=error.kind.api_type, headers=headers, **extra)


# --- a call ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    """How a call ended, as it is stored and billed."""

    status: str  # billing.models.UsageStatus
    text: str
    usage: Usage  # what is billed
    request_id: str
    latency_ms: int
    error: ProviderError | None = None
    finish_reason: FinishReason | str | None = None  # of a reply that ended normally
    stop_sequence: str | None = None  # the one that ended it, where the vendor says
    raw: dict | None = None  # the vendor's own answer (Completion.raw)
    tool_calls: list[dict] = field(default_factory=list)  # Completion.tool_calls
    reasoning: str = ""
    thinking_blocks: list[dict] = field(default_factory=list)  # Completion.thinking_blocks


# Stores what a call produced, inside the settlement's transaction; returns the usage record's
# links to it (dialog=..., message=...).
Store = Callable[[Outcome], dict[str, Any]]


@dataclass
class Call:
    admission: Admission
    request: CompletionRequest
    endpoint: str
    request_id: str = ""  # the gateway's (x-request-id)
    store: Store | None = None
    stored: dict[str, Any] = field(default_factory=dict)  # what `store` returned, once settled
    # The vendor's own answer is relayed (Completion.raw, Chunk.raw): the client speaks its format.
    relays: bool = False
    settlement: str = field(default_factory=new_settlement_id)  # billed once, however often applied
    # When the request arrived (time.monotonic()): a call's whole latency is measured from it.
    received: float = field(default_factory=time.monotonic)

    @property
    def model(self) -> LLMModel:
        return self.admission.model


def call_admit(
    *,
    user: User,
    api_key: APIKey | None,
    model: LLMModel,
    messages: list[dict],
    prompt_tokens: int,
    max_tokens: int | None,
    endpoint: str,
    max_tokens_param: str | None = None,
    request_id: str = "",
    temperature: float | None = None,
    top_p: float | None = None,
    stop: list[str] | None = None,
    options: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    choices: int = 1,
    store: Store | None = None,
) -> Call:
    """Hold the worst case and check the rate limits (billing.admission), or raise why not. Sync:
    run it in a db_phase, outside a transaction.

    `max_tokens` is the client's (checked by max_tokens_checked), None if it set none: the reply
    may then be as long as the model allows after the prompt (reply_room), and that is what is
    held, unless the limits only have room for a shorter one, which is held instead (a prompt
    that fits is not refused for want of a number the client never gave). The vendor is sent the
    client's max_tokens under the client's name for it (`max_tokens_param`); without one, only a
    shortened allowance (OpenAI-style vendors: the model's own limit is then the reservation;
    Anthropic's API always takes max_tokens, so it gets the allowance).
    """
    room = reply_room(model, prompt_tokens=prompt_tokens)
    allowance = room if max_tokens is None else max_tokens
    if allowance < 1 or prompt_tokens + allowance > model.context_window:
        raise context_too_long(model, prompt_tokens=prompt_tokens, max_tokens=max_tokens or 0)
    # `choices` replies (OpenAI's n), each up to the allowance: all are held.
    admission = completion_admit(
        user=user,
        api_key=api_key,
        model=model,
        prompt_tokens=prompt_tokens,
        max_tokens=allowance * choices,
        shrinkable=max_tokens is None and choices == 1,
    )
    # OpenAI's current name for it (its reasoning models refuse max_tokens); servers that only mimic
    # OpenAI know the older one. A client of OpenAI's format has named it itself.
    default_param = "max_completion_tokens" if model.provider == ProviderKind.OPENAI else "max_tokens"
    if max_tokens is not None:
        max_tokens_param = max_tokens_param or default_param
    elif admission.max_tokens < room * choices:
        max_tokens_param = default_param
    else:
        max_tokens_param = None
    request = build_request(
        model,
        messages=messages,
        max_tokens=admission.max_tokens // choices,
        max_tokens_param=max_tokens_param,
        temperature=temperature,
        top_p=top_p,
        stop=stop,
        options=options,
        extra=extra,
    )
    return Call(admission, request, endpoint, request_id=request_id, store=store)


@dataclass
class CallParams:
    """A /v1 request, parsed from either wire format."""

    model: str
    # The neutral request (llm_models.providers.base): OpenAI-style messages and options,
    # translated for a vendor of another format than the client's.
    messages: list[dict]
    options: dict[str, Any] = field(default_factory=dict)
    max_tokens: int | None = None  # None: the client set none
    max_tokens_param: str | None = None  # the client's name for it (OpenAI: or max_completion_tokens)
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    wire: str = ProviderKind.OPENAI  # the client's format
    # For a vendor of the client's own format: the request's messages and other fields as they
    # came (tools, response_format, n, logprobs, seed, user, ...), relayed unchanged.
    forwarded: dict[str, Any] = field(default_factory=dict)
    # The prompt as the vendor will read it, when relayed (its system and messages, every block),
    # to count; by default the forwarded messages.
    counted: list[dict] = field(default_factory=list)
    # What a vendor of another format could not be given (refused with a 400 naming it).
    untranslatable: list[str] = field(default_factory=list)
    # What the model must support for this request: "tools", "vision", "json_schema", "reasoning".
    needs: set[str] = field(default_factory=set)
    stream: bool = False  # the reply as events
    include_usage: bool = False  # OpenAI's stream_options.include_usage: a last event with the usage

    def speaks_like(self, model: LLMModel) -> bool:
        """Whether `model`'s vendor speaks the client's format."""
        return FORMATS.get(model.provider) == self.wire


# The wire format each kind of vendor speaks.
FORMATS: dict[str, str] = {
    ProviderKind.OPENAI: ProviderKind.OPENAI,
    ProviderKind.OPENAI_COMPATIBLE: ProviderKind.OPENAI,
    ProviderKind.ANTHROPIC: ProviderKind.ANTHROPIC,
}
# The catalog's capabilities (LLMModel.supports_*), as a refusal names them.
CAPABILITIES = {
    "tools": "tools",
    "vision": "images",
    "json_schema": "structured output to a JSON schema",
    "reasoning": "reasoning or thinking",
}
# Request fields the model reads besides its messages: counted into the prompt.
DEFINITIONS = ("tools", "functions", "response_format")


def prompt_tokens_count(http_request: HttpRequest, parse: Callable[[bytes], CallParams]) -> int:
    """Sync: the prompt tokens admission would count for the request `parse` reads, offline,
    holding nothing. For Claude models that is an estimate that errs high
    (llm_models.providers.tokens)."""
    call_caller(http_request)
    params = parse(http_request.body)
    model = model_for_call(params.model)
    return _vendor_request(params, model).prompt_tokens


@dataclass
class VendorRequest:
    """What goes to a model's vendor besides the neutral messages."""

    options: dict[str, Any]  # the neutral options, to translate (another format than the client's)
    extra: dict[str, Any]  # the request as it came (the vendor speaks the client's format)
    choices: int  # how many replies it asks for (OpenAI's n)
    prompt_tokens: int  # as counted


def _vendor_request(params: CallParams, model: LLMModel) -> VendorRequest:
    """What goes to `model`'s vendor, or the 400 naming what the model or its vendor cannot take."""
    lacking = sorted(need for need in params.needs if not getattr(model, f"supports_{need}"))
    if lacking:
        raise GatewayError(
            f"{model.name} does not support {', '.join(CAPABILITIES[need] for need in lacking)}.",
            type="invalid_request",
            param="model",
        )
    extra: dict[str, Any] = {}
    options, counted = params.options, params.messages
    if params.speaks_like(model):
        # Relayed as it came, over the translation (billing.admission holds what it may cost).
        extra, options = params.forwarded, {}
        counted = params.counted or params.forwarded.get("messages", params.messages)
    elif params.untranslatable:
        names = ", ".join(name[:100] for name in params.untranslatable[:10])  # names echo the client's input
        raise GatewayError(
            f"Not supported with {model.name}, whose vendor speaks another format than this request: {names}.",
            type="invalid_request",
            param=params.untranslatable[0][:100],
        )
    choices = extra.get("n", 1)
    if isinstance(choices, bool) or not isinstance(choices, int) or not 1 <= choices <= 128:
        raise GatewayError("'n' must be a whole number from 1 to 128.", type="invalid_request", param="n")
    fields = extra or options
    definitions = {name: fields[name] for name in DEFINITIONS if name in fields}
    prompt_tokens = count_messages(model.provider, model.provider_model, counted) + count_definitions(
        model.provider, model.provider_model, definitions
    )
    return VendorRequest(options, extra, choices, prompt_tokens)


def call_prepare(
    http_request: HttpRequest, parse: Callable[[bytes], CallParams], *, endpoint: str
) -> tuple[CallParams, Call]:
    """Sync (run it with db_phase): who is calling, the request as `parse` reads it (after the
    caller is known and counted), which model, admission. Raises GatewayError."""
    user, api_key = call_caller(http_request)
    params = parse(http_request.body)
    model = model_for_call(params.model)
    vendor = _vendor_request(params, model)
    call = call_admit(
        user=user,
        api_key=api_key,
        model=model,
        messages=params.messages,
        prompt_tokens=vendor.prompt_tokens,
        max_tokens=max_tokens_checked(model, params.max_tokens),
        max_tokens_param=params.max_tokens_param,
        endpoint=endpoint,
        request_id=request_id_of(http_request),
        temperature=params.temperature,
        top_p=params.top_p,
        stop=params.stop,
        options=vendor.options,
        extra=vendor.extra,
        choices=vendor.choices,
    )
    call.relays = params.speaks_like(model)
    call.received = request_received(http_request)
    return params, call


def _settle(call: Call, outcome: Outcome) -> None:
    if call.store is None:
        _bill(call, outcome, {})  # one statement on PostgreSQL, committed on its own
        return
    with transaction.atomic():
        stored = call.store(outcome)
        _bill(call, outcome, stored)
    call.stored = stored


def _bill(call: Call, outcome: Outcome, stored: dict[str, Any]) -> None:
    completion_settle(
        admission=call.admission,
        status=outcome.status,
        settlement=call.settlement,
        usage=outcome.usage,
        request_id=outcome.request_id,
        gateway_request_id=call.request_id,
        endpoint=call.endpoint,
        dialog=stored.get("dialog"),
        message=stored.get("message"),
    )


# How long a settlement is retried while the database is unavailable before it is spooled (each
# try may also wait for the pool's timeout). The client waits for it: its reply is held meanwhile.
SETTLE_PATIENCE_SECONDS = 4.0


async def _settle_surely(call: Call, outcome: Outcome) -> bool:
    """Store and bill the outcome, retried with backoff while the database is unavailable; if it
    stays so, the bill is spooled (billing.spool: applied once the database is back) and False
    returned: the client still gets what the vendor answered, but the caller's `store` did not
    run (a dialog's reply is not saved). Then the call is counted in the metrics and logged: every
    call ends here once, however it ended."""
    settled = await _settle_or_spool(call, outcome)
    _observe(call, outcome)
    return settled


def _observe(call: Call, outcome: Outcome) -> None:
    """The call's metrics and its log line (in memory, and one write to stdout)."""
    model, usage, endpoint = call.model, outcome.usage, call.endpoint
    cost = model.cost(
        usage.prompt_tokens, usage.completion_tokens, cached=usage.cached_tokens, cache_written=usage.cache_write_tokens
    )
    total = time.monotonic() - call.received
    vendor = outcome.latency_ms / 1000
    metrics.requests.labels(endpoint=endpoint, model=model.name, status=outcome.status).inc()
    metrics.prompt_tokens.labels(model=model.name).inc(usage.prompt_tokens)
    metrics.completion_tokens.labels(model=model.name).inc(usage.completion_tokens)
    metrics.cost_usd.labels(model=model.name).inc(float(cost))
    if outcome.error is not None:
        metrics.vendor_errors.labels(kind=outcome.error.kind.value).inc()
    metrics.request_seconds.labels(endpoint=endpoint).observe(total)
    metrics.vendor_seconds.labels(endpoint=endpoint).observe(vendor)
    metrics.overhead_seconds.labels(endpoint=endpoint).observe(max(total - vendor, 0.0))
    if not request_logger.isEnabledFor(logging.INFO):
        return
    api_key = call.admission.api_key
    line = {
        "request_id": call.request_id,
        "user": call.admission.user.username,
        "key_prefix": api_key.prefix if api_key is not None else None,
        "endpoint": endpoint,
        "model": model.name,
        "status": outcome.status,
        "error": outcome.error.kind.value if outcome.error is not None else None,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cost_usd": str(cost),
        "latency_ms": int(total * 1000),
        "vendor_ms": outcome.latency_ms,
        "gateway_ms": max(int(total * 1000) - outcome.latency_ms, 0),
        "vendor_request_id": outcome.request_id,
    }
    request_logger.info(json.dumps(line))


async def _settle_or_spool(call: Call, outcome: Outcome) -> bool:
    _replayer_start(only_if_pending=True)
    deadline = time.monotonic() + SETTLE_PATIENCE_SECONDS
    delay = 0.25
    while True:
        try:
            await db_phase(_settle, call, outcome)
            return True
        except DatabaseUnavailable:
            if time.monotonic() + delay > deadline:
                break
            await asyncio.sleep(delay)
            delay *= 2
    admission = call.admission
    params = settlement_params(
        reservation=admission.reservation,
        user=admission.user,
        model=admission.model,
        usage=outcome.usage,
        status=outcome.status,
        settlement=call.settlement,
        request_id=outcome.request_id,
        gateway_request_id=call.request_id,
        endpoint=call.endpoint,
    )
    await asyncio.to_thread(settlement_spool, params)
    _replayer_start()
    return False


# Per event loop (one per worker): the task applying the spool, while it has something to apply.
_replayers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task]" = weakref.WeakKeyDictionary()
_replayer_checked: "weakref.WeakSet[asyncio.AbstractEventLoop]" = weakref.WeakSet()


def _replayer_start(*, only_if_pending: bool = False) -> None:
    """Start the worker's replayer, unless it runs; with `only_if_pending`, once per worker and
    only if a spool (this process's, or one a stopped process left) waits."""
    loop = asyncio.get_running_loop()
    if only_if_pending:
        if loop in _replayer_checked:
            return
        _replayer_checked.add(loop)
        if not spool_pending():
            return
    task = _replayers.get(loop)
    if task is None or task.done():
        _replayers[loop] = loop.create_task(_replay_until_empty())


async def _replay_until_empty() -> None:
    while spool_pending():
        try:
            await db_phase(spool_replay)
        except DatabaseUnavailable:
            pass  # still down: next time
        except Exception:
            logger.exception("Applying the settlement spool failed.")
        if spool_pending():
            await asyncio.sleep(settings.SETTLEMENT_REPLAY_SECONDS)


def reply_not_saved(outcome: Outcome) -> ReplyNotSaved:
    return ReplyNotSaved(
        "The database is unavailable: the reply was billed but could not be saved; it is given here as 'reply'.",
        headers={"Retry-After": "5"},
        reply=outcome.text,
    )


def _outcome(
    call: Call,
    *,
    status: str,
    started: float,
    text: str = "",
    tool_text: str = "",
    usage: Usage | None = None,
    prompt_usage: Usage | None = None,
    request_id: str = "",
    error: ProviderError | None = None,
) -> Outcome:
    return Outcome(
        status=status,
        text=text,
        usage=billed_usage(call.admission, usage=usage, text=text + tool_text, prompt=prompt_usage),
        request_id=request_id or (error.request_id if error else ""),
        latency_ms=int((time.monotonic() - started) * 1000),
        error=error,
    )


async def _answer_whole(
    call: Call, attempt: Callable[[Provider, CompletionRequest], Awaitable[Completion]], started: float
) -> Completion:
    """The vendor's whole answer (a reply, embeddings), with the gateway's retries. A failure is
    settled here (nothing was produced) and raised as the client's GatewayError; a client that
    goes away is settled too: nothing was received, so nothing is charged."""
    try:
        with call_in_flight():
            return await attempt(get_provider(call.model), call.request)
    except ProviderError as error:
        await _settle_surely(call, _outcome(call, status=UsageStatus.ERROR, started=started, error=error))
        raise from_provider_error(error) from error
    except BaseException:
        await asyncio.shield(_settle_surely(call, _outcome(call, status=UsageStatus.INCOMPLETE, started=started)))
        raise


async def call_complete(call: Call) -> Outcome:
    """The whole reply, stored and billed; or the GatewayError of the vendor's failure (what the
    call produced, nothing, is stored and billed all the same)."""
    started = time.monotonic()
    completion = await _answer_whole(call, complete_with_retries, started)
    outcome = _outcome(
        call,
        status=UsageStatus.OK,
        started=started,
        text=completion.text,
        # Billed as produced when the vendor reports no usage: the calls and thinking too.
        tool_text=(json.dumps(completion.tool_calls) if completion.tool_calls else "") + completion.reasoning,
        usage=completion.usage,
        request_id=completion.request_id,
    )
    outcome.finish_reason = completion.finish_reason or FinishReason.STOP
    outcome.stop_sequence, outcome.raw = completion.stop_sequence, completion.raw
    outcome.tool_calls, outcome.reasoning = completion.tool_calls, completion.reasoning
    outcome.thinking_blocks = completion.thinking_blocks
    if not await _settle_surely(call, outcome) and call.store is not None:
        raise reply_not_saved(outcome)
    return outcome


async def call_stream(call: Call) -> AsyncGenerator[Chunk | GatewayError]:
    """Text chunks, then one chunk with the billed usage and finish reason; or, if the vendor fails,
    a GatewayError as the last item. Stored and billed however it ends, the client hanging up
    included."""
    started = time.monotonic()
    parts: list[str] = []  # the text, stored as the reply
    tool_parts: list[str] = []  # tool calls, thinking: billed with the text when the vendor reports no usage
    usage, request_id, finish_reason, stop_sequence = None, "", None, None
    prompt_usage = None  # the vendor's count of the prompt, where it told it at the start

    def ended(status: str, error: ProviderError | None = None) -> Outcome:
        """The outcome of the stream so far, however it ended."""
        text, tool_text = "".join(parts), "".join(tool_parts)
        return _outcome(
            call,
            status=status,
            started=started,
            text=text,
            tool_text=tool_text,
            usage=usage,
            prompt_usage=prompt_usage,
            request_id=request_id,
            error=error,
        )

    first_token = True
    try:
        with call_in_flight(), metrics.streams_in_flight.track_inprogress():
            async for chunk in stream_with_retries(get_provider(call.model), call.request):
                request_id = chunk.request_id or request_id
                usage = chunk.usage or usage
                prompt_usage = chunk.prompt_usage or prompt_usage
                finish_reason = chunk.finish_reason or finish_reason
                stop_sequence = chunk.stop_sequence or stop_sequence
                parts.append(chunk.text)
                tool_parts.append(chunk.tool_text + chunk.reasoning)
                if first_token and (chunk.text or chunk.tool_calls or chunk.reasoning):
                    first_token = False
                    metrics.first_token_seconds.labels(endpoint=call.endpoint).observe(time.monotonic() - call.received)
                if chunk.text or chunk.raw or chunk.tool_calls or chunk.reasoning:
                    yield Chunk(
                        text=chunk.text,
                        raw=chunk.raw,
                        tool_calls=chunk.tool_calls,
                        reasoning=chunk.reasoning,
                        request_id=request_id,
                    )
    except ProviderError as error:
        status = UsageStatus.INCOMPLETE if any(parts) or any(tool_parts) else UsageStatus.ERROR
        await _settle_surely(call, ended(status, error))
        yield from_provider_error(error)
        return
    except BaseException:
        # The client hung up (CancelledError / GeneratorExit), or the server is shutting down
        # (gateway.server.Worker cancels the calls in flight): keep and bill what was produced.
        await asyncio.shield(_settle_surely(call, ended(UsageStatus.INCOMPLETE)))
        raise
    outcome = ended(UsageStatus.OK)
    outcome.finish_reason, outcome.stop_sequence = finish_reason or FinishReason.STOP, stop_sequence
    if not await _settle_surely(call, outcome) and call.store is not None:
        yield reply_not_saved(outcome)
        return
    yield Chunk(
        usage=outcome.usage,
        request_id=request_id,
        finish_reason=outcome.finish_reason,
        stop_sequence=stop_sequence,
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


# --- embeddings ------------------------------------------------------------------------------


INPUT_SHAPE = "'input' must be a string, a list of strings or of token arrays."


def _embedding_inputs(value: Any) -> list[str | list[int]]:
    """The client's `input` as a list of texts or token arrays, or a 400."""
    if isinstance(value, str) or (isinstance(value, list) and value and all(isinstance(t, int) for t in value)):
        value = [value]
    if not isinstance(value, list) or not value:
        raise GatewayError(INPUT_SHAPE, type="invalid_request", param="input")
    for item in value:
        text = isinstance(item, str)
        tokens = isinstance(item, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in item)
        if not (text or tokens) or not item:
            raise GatewayError(INPUT_SHAPE, type="invalid_request", param="input")
    return value


def embedding_prepare(http_request: HttpRequest) -> Call:
    """Sync (run it with db_phase): who is calling, which embedding model, its input counted and
    held on the quota. The client's other fields (encoding_format, dimensions, user) go to the
    vendor as they came."""
    user, api_key = call_caller(http_request)
    body = json_object(http_request.body)
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise GatewayError("'model' is required.", type="invalid_request", param="model")
    model = model_for_call(model_name_checked(name), kind=ModelKind.EMBEDDING)
    inputs = _embedding_inputs(body.get("input"))
    counts = [
        count_text(model.provider, model.provider_model, item) if isinstance(item, str) else len(item)
        for item in inputs
    ]
    if max(counts) > model.context_window:
        raise context_too_long(model, prompt_tokens=max(counts), max_tokens=0)
    admission = completion_admit(user=user, api_key=api_key, model=model, prompt_tokens=sum(counts), max_tokens=0)
    fields = {key: value for key, value in body.items() if key != "model"}
    request = build_request(model, messages=[], max_tokens=1, max_tokens_param=None, extra=fields)
    return Call(
        admission, request, "openai", request_id=request_id_of(http_request), received=request_received(http_request)
    )


async def call_embed(call: Call) -> Outcome:
    """The vendor's embeddings, billed per input token (what it reports, else what was counted);
    or the GatewayError of its failure."""
    started = time.monotonic()
    answer = await _answer_whole(call, embed_with_retries, started)
    usage = answer.usage or Usage(call.admission.prompt_tokens, 0)
    outcome = _outcome(call, status=UsageStatus.OK, started=started, usage=usage, request_id=answer.request_id)
    outcome.raw = answer.raw
    await _settle_surely(call, outcome)
    return outcome
