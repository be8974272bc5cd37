"""Sending a message: store it, send the conversation to the model, store and bill the reply.

Three phases, so that no database connection, lock or transaction is held while the vendor
answers (a reply takes seconds):
  1. `message_prepare` (sync, one transaction): authenticate, load the dialog, fit the history
     into the context window, check rate limits, reserve the worst case, store the user's message.
  2. the vendor call (async): `message_reply` or `message_reply_stream`.
  3. `message_finish` (sync, one transaction): store the assistant's message and bill it.
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from billing.admission import Admission, completion_admit, reservation_release
from billing.settlement import billed_usage, completion_settle
from common.db import db_phase
from common.errors import GatewayError
from completions.calls import from_provider_error
from dialogs.context import fit_to_context
from dialogs.models import Dialog, Message, MessageStatus, Role
from dialogs.serializers import message_data
from llm_models.providers.base import (
    CompletionRequest,
    ProviderError,
    Usage,
    complete_with_retries,
    stream_with_retries,
)
from llm_models.providers.registry import build_request, get_provider


class ModelUnavailable(GatewayError):
    status = 409
    type = "model_unavailable"


@dataclass
class Prepared:
    dialog: Dialog
    user_message: Message
    admission: Admission
    request: CompletionRequest


def _history(dialog: Dialog) -> list[dict]:
    """The conversation so far, oldest first; failed replies are not part of it."""
    rows = (
        Message.objects.filter(dialog=dialog)
        .exclude(status=MessageStatus.ERROR, role=Role.ASSISTANT)
        .exclude(content="")
        .order_by("created_at", "id")
        .values_list("role", "content")
    )
    return [{"role": role, "content": content} for role, content in rows]


def message_prepare(
    *, user, dialog_id: int, content: str, max_tokens: int | None = None, temperature: float | None = None, api_key=None
) -> Prepared:
    dialog = Dialog.objects.owned_by(user).select_related("model", "agent").filter(pk=dialog_id).first()
    if dialog is None:
        raise GatewayError("No such dialog.", status=404, type="not_found")
    model, agent = dialog.model, dialog.agent
    if not model.enabled:
        raise ModelUnavailable(f"The model {model.name} is disabled; switch the dialog to another model.")
    if max_tokens is None:
        max_tokens = (agent.max_tokens if agent else None) or model.max_output_tokens
    if max_tokens > model.max_output_tokens:
        raise GatewayError(
            f"max_tokens is at most {model.max_output_tokens} for {model.name}.",
            status=400,
            type="validation_error",
            fields={"max_tokens": [f"At most {model.max_output_tokens}."]},
        )
    if temperature is None and agent is not None:
        temperature = agent.temperature
    new_message = {"role": Role.USER.value, "content": content}
    fitted = fit_to_context(
        model=model,
        system_prompt=agent.system_prompt if agent else "",
        history=_history(dialog),
        new_message=new_message,
        max_tokens=max_tokens,
    )
    # Admitted first (a refused message is not stored), in its own short statement (see
    # completion_admit).
    admission = completion_admit(
        user=user, api_key=api_key, model=model, prompt_tokens=fitted.prompt_tokens, max_tokens=max_tokens
    )
    try:
        with transaction.atomic():
            user_message = Message.objects.create(dialog=dialog, role=Role.USER, content=content, model=model)
            Dialog.objects.filter(pk=dialog.pk).update(updated_at=timezone.now())
    except BaseException:
        reservation_release(reservation=admission.reservation)
        raise
    request = build_request(model, messages=fitted.messages, max_tokens=max_tokens, temperature=temperature)
    return Prepared(dialog, user_message, admission, request)


def message_finish(
    prepared: Prepared,
    *,
    text: str,
    usage: Usage | None,
    status: str,
    error: ProviderError | None = None,
    request_id: str = "",
    latency_ms: int | None = None,
) -> Message:
    """Store the assistant's message (also when the vendor failed) and bill it, in one transaction."""
    model = prepared.admission.model
    billed = billed_usage(prepared.admission, usage=usage, text=text)
    with transaction.atomic():
        message = Message.objects.create(
            dialog=prepared.dialog,
            role=Role.ASSISTANT,
            content=text,
            model=model,
            status=status,
            request_id=request_id[:200],
            latency_ms=latency_ms,
            error_type=error.kind if error else "",
            error_message=error.message if error else "",
            prompt_tokens=billed.prompt_tokens,
            completion_tokens=billed.completion_tokens,
            cost=model.cost(billed.prompt_tokens, billed.completion_tokens),
        )
        # The dialog's updated_at moved when the user's message was stored (message_prepare).
        completion_settle(
            admission=prepared.admission,
            status=status,
            usage=billed,
            request_id=request_id,
            dialog=prepared.dialog,
            message=message,
        )
    return message


def usage_data(message: Message) -> dict:
    return {
        "prompt_tokens": message.prompt_tokens,
        "completion_tokens": message.completion_tokens,
        "total_tokens": message.prompt_tokens + message.completion_tokens,
        "cost": str(message.cost),
    }


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


async def message_reply(prepared: Prepared) -> dict:
    """The whole reply at once: {"user_message", "assistant_message", "usage"}, or a GatewayError
    (the user's message and the failed reply stay stored)."""
    started = time.monotonic()
    try:
        completion = await complete_with_retries(get_provider(prepared.admission.model), prepared.request)
    except ProviderError as error:
        message = await db_phase(
            message_finish,
            prepared,
            text="",
            usage=None,
            status=MessageStatus.ERROR,
            error=error,
            request_id=error.request_id,
            latency_ms=_elapsed_ms(started),
        )
        raise from_provider_error(
            error, user_message_id=prepared.user_message.pk, assistant_message_id=message.pk
        ) from error
    except BaseException:
        # The client went away: nothing was received, so nothing is charged.
        await asyncio.shield(
            db_phase(
                message_finish,
                prepared,
                text="",
                usage=None,
                status=MessageStatus.INCOMPLETE,
                latency_ms=_elapsed_ms(started),
            )
        )
        raise
    message = await db_phase(
        message_finish,
        prepared,
        text=completion.text,
        usage=completion.usage,
        status=MessageStatus.OK,
        request_id=completion.request_id,
        latency_ms=_elapsed_ms(started),
    )
    return {
        "user_message": message_data(prepared.user_message),
        "assistant_message": message_data(message),
        "usage": usage_data(message),
    }


def sse(event: str, data) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def message_reply_stream(prepared: Prepared) -> AsyncIterator[bytes]:
    """Server-Sent Events: message, delta..., usage, done; or error. What was received is stored
    and billed however the stream ends, the client hanging up included."""
    yield sse("message", message_data(prepared.user_message))
    started = time.monotonic()
    parts: list[str] = []
    usage, request_id, error = None, "", None
    try:
        async for chunk in stream_with_retries(get_provider(prepared.admission.model), prepared.request):
            if chunk.text:
                parts.append(chunk.text)
                yield sse("delta", {"text": chunk.text})
            usage = chunk.usage or usage
            request_id = chunk.request_id or request_id
    except ProviderError as exc:
        error = exc
        request_id = request_id or exc.request_id
    except BaseException:
        # The client hung up (CancelledError / GeneratorExit): keep and bill what was produced.
        await asyncio.shield(
            db_phase(
                message_finish,
                prepared,
                text="".join(parts),
                usage=usage,
                status=MessageStatus.INCOMPLETE,
                request_id=request_id,
                latency_ms=_elapsed_ms(started),
            )
        )
        raise
    if error is None:
        status = MessageStatus.OK
    else:
        status = MessageStatus.INCOMPLETE if parts else MessageStatus.ERROR
    message = await db_phase(
        message_finish,
        prepared,
        text="".join(parts),
        usage=usage,
        status=status,
        error=error,
        request_id=request_id,
        latency_ms=_elapsed_ms(started),
    )
    if error is not None:
        body = from_provider_error(
            error, user_message_id=prepared.user_message.pk, assistant_message_id=message.pk
        ).body()
        body["error"]["status"] = error.status
        yield sse("error", body)
        return
    yield sse("usage", usage_data(message))
    yield sse("done", message_data(message))
