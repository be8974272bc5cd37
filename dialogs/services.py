"""Sending a message: store it, send the conversation to the model, store and bill the reply,
through the one completion flow (completions.core):

  1. `message_prepare` (sync, in a db_phase): the dialog, its history fitted into the context
     window, admission (the worst case held, rate limits), then the user's message stored.
  2. `message_reply` or `message_reply_stream` (async): the vendor call; its settlement stores
     the assistant's message (also when the vendor failed or the client left) and bills it, in
     one transaction. If the database stays unavailable then, the bill is spooled (billing.spool)
     but the message is not stored: the client gets a 503 reply_not_saved error carrying the
     reply's text (after the streamed deltas, as the error event), so it is never billed for a
     reply it did not get, and it knows the dialog lacks it.
"""

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from billing.admission import reservation_release
from billing.models import APIKey
from common.errors import GatewayError
from common.money import usd
from completions.core import (
    Call,
    Outcome,
    call_admit,
    call_complete,
    call_stream,
    max_tokens_checked,
    model_enabled,
)
from dialogs.context import fit_to_context
from dialogs.models import Dialog, Message, MessageStatus, Role
from dialogs.serializers import message_data
from llm_models.providers.tokens import has_images


@dataclass
class Prepared:
    dialog: Dialog
    user_message: Message
    call: Call

    @property
    def reply(self) -> Message:
        """The assistant's message, once the call has settled."""
        return self.call.stored["message"]


def _history(dialog: Dialog) -> list[dict]:
    """The conversation so far, oldest first; failed replies are not part of it."""
    rows = (
        Message.objects.filter(dialog=dialog)
        .exclude(status=MessageStatus.ERROR, role=Role.ASSISTANT)
        .exclude(content="", parts__isnull=True)
        .order_by("created_at", "id")
        .values_list("role", "content", "parts")
    )
    return [{"role": role, "content": parts or content} for role, content, parts in rows]


def message_prepare(
    *,
    user: User,
    dialog_id: int,
    content: str | list[dict],
    max_tokens: int | None = None,
    temperature: float | None = None,
    api_key: APIKey | None = None,
    request_id: str = "",
) -> Prepared:
    dialog = Dialog.objects.owned_by(user).select_related("model", "agent").filter(pk=dialog_id).first()
    if dialog is None:
        raise GatewayError("No such dialog.", status=404, type="not_found")
    model, agent = model_enabled(dialog.model), dialog.agent
    if has_images([{"content": content}]) and not model.supports_vision:
        raise GatewayError(f"{model.name} does not support images.", type="invalid_request", param="content")
    max_tokens = max_tokens_checked(model, max_tokens if max_tokens is not None else agent and agent.max_tokens or None)
    if temperature is None and agent is not None:
        temperature = agent.temperature
    fitted = fit_to_context(
        model=model,
        system_prompt=agent.system_prompt if agent else "",
        history=_history(dialog),
        new_message={"role": Role.USER.value, "content": content},
        max_tokens=max_tokens,
    )
    # Admitted first (a refused message is not stored), in its own short statement.
    call = call_admit(
        user=user,
        api_key=api_key,
        model=model,
        messages=fitted.messages,
        prompt_tokens=fitted.prompt_tokens,
        max_tokens=max_tokens,
        endpoint="dialogs",
        request_id=request_id,
        temperature=temperature,
        store=lambda outcome: _reply_store(dialog, outcome),
    )
    try:
        with transaction.atomic():
            user_message = Message.objects.create(
                dialog=dialog,
                role=Role.USER,
                content=content if isinstance(content, str) else "".join(p.get("text", "") for p in content),
                parts=content if isinstance(content, list) else None,
                model=model,
            )
            Dialog.objects.filter(pk=dialog.pk).update(updated_at=timezone.now())
    except BaseException:
        reservation_release(reservation=call.admission.reservation)
        raise
    return Prepared(dialog, user_message, call)


def _reply_store(dialog: Dialog, outcome: Outcome) -> dict[str, Any]:
    """The assistant's message, however the call ended (inside the settlement's transaction)."""
    model = dialog.model
    error = outcome.error
    message = Message.objects.create(
        dialog=dialog,
        role=Role.ASSISTANT,
        # PostgreSQL stores no NUL in text: a vendor's stray NUL is dropped, not the whole reply.
        content=outcome.text.replace("\x00", ""),
        model=model,
        status=outcome.status,
        request_id=outcome.request_id[:200],
        latency_ms=outcome.latency_ms,
        error_type=error.kind if error else "",
        error_message=error.message if error else "",
        prompt_tokens=outcome.usage.prompt_tokens,
        completion_tokens=outcome.usage.completion_tokens,
        cost=model.cost(
            outcome.usage.prompt_tokens,
            outcome.usage.completion_tokens,
            cached=outcome.usage.cached_tokens,
            cache_written=outcome.usage.cache_write_tokens,
        ),
    )
    return {"dialog": dialog, "message": message}


def usage_data(message: Message) -> dict:
    return {
        "prompt_tokens": message.prompt_tokens,
        "completion_tokens": message.completion_tokens,
        "total_tokens": message.prompt_tokens + message.completion_tokens,
        "cost": usd(message.cost),
    }


def _with_messages(error: GatewayError, prepared: Prepared) -> GatewayError:
    """The error, naming the stored messages (the user's, and the failed reply unless the
    database was unavailable to store it: completions.core.ReplyNotSaved)."""
    error.extra["user_message_id"] = prepared.user_message.pk
    if "message" in prepared.call.stored:
        error.extra["assistant_message_id"] = prepared.reply.pk
    return error


async def message_reply(prepared: Prepared) -> dict:
    """The whole reply at once: {"user_message", "assistant_message", "usage"}, or a GatewayError
    (the user's message and the failed reply stay stored)."""
    try:
        await call_complete(prepared.call)
    except GatewayError as error:
        raise _with_messages(error, prepared) from error
    return {
        "user_message": message_data(prepared.user_message),
        "assistant_message": message_data(prepared.reply),
        "usage": usage_data(prepared.reply),
    }


def sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def message_reply_stream(prepared: Prepared) -> AsyncIterator[bytes]:
    """Server-Sent Events: message, delta..., usage, done; or error. What was received is stored
    and billed however the stream ends, the client hanging up included."""
    yield sse("message", message_data(prepared.user_message))
    async for item in call_stream(prepared.call):
        if isinstance(item, GatewayError):
            body = _with_messages(item, prepared).body()
            body["error"]["status"] = item.status
            yield sse("error", body)
            return
        if item.text:
            yield sse("delta", {"text": item.text})
    yield sse("usage", usage_data(prepared.reply))
    yield sse("done", message_data(prepared.reply))
