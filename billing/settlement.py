"""Settlement: bill what a call actually used, however it ended, and give back the rest of its
reservation. One statement on PostgreSQL (billing.sql); call it through common.db.db_phase.

Each settlement has its own id (UsageRecord.settlement): applied twice, it bills once. One the
database cannot take is spooled (billing.spool) and applied when it is back."""

import uuid
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.models import User
from django.db import models, transaction
from django.utils import timezone

from billing.admission import Admission
from billing.leases import lease_end
from billing.models import Endpoint, Reservation
from billing.ratelimit import rate_limit_add_tokens
from billing.sql import SettleParams, statements
from llm_models.models import LLMModel
from llm_models.providers.base import Usage
from llm_models.providers.tokens import count_text


@dataclass
class Settlement:
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal


def new_settlement_id() -> str:
    return uuid.uuid4().hex


def settlement_params(
    *,
    reservation: Reservation,
    user: User,
    model: LLMModel,
    usage: Usage,
    status: str,
    settlement: str,
    request_id: str = "",
    gateway_request_id: str = "",
    endpoint: str = Endpoint.DIALOGS,
    dialog: models.Model | None = None,
    message: models.Model | None = None,
) -> SettleParams:
    """What a settlement writes, priced and dated now, without touching the database."""
    cost = model.cost(
        usage.prompt_tokens, usage.completion_tokens, cached=usage.cached_tokens, cache_written=usage.cache_write_tokens
    )
    now = timezone.now()
    return SettleParams(
        reservation=reservation.pk,
        user=user.pk,
        key=reservation.api_key_id,
        dialog=dialog.pk if dialog else None,
        message=message.pk if message else None,
        model=model.pk,
        model_name=model.name,
        endpoint=endpoint,
        prompt=usage.prompt_tokens,
        completion=usage.completion_tokens,
        cached=usage.cached_tokens,
        cache_written=usage.cache_write_tokens,
        cost=cost,
        status=status,
        request_id=request_id[:200],
        gateway_request_id=gateway_request_id[:40],
        now=now,
        day=now.date(),
        settlement=settlement,
    )


def usage_settle(
    *,
    reservation: Reservation,
    user: User,
    model: LLMModel,
    usage: Usage,
    status: str,
    settlement: str | None = None,
    request_id: str = "",
    gateway_request_id: str = "",
    endpoint: str = Endpoint.DIALOGS,
    dialog: models.Model | None = None,
    message: models.Model | None = None,
) -> Settlement:
    """Bill the actual usage: a usage record, the daily aggregate, and the quota (and the key)
    moved from reserved to used. Zero tokens (a vendor error) simply releases the reservation.
    A settlement whose id was applied already changes nothing."""
    params = settlement_params(
        reservation=reservation,
        user=user,
        model=model,
        usage=usage,
        status=status,
        settlement=settlement or new_settlement_id(),
        request_id=request_id,
        gateway_request_id=gateway_request_id,
        endpoint=endpoint,
        dialog=dialog,
        message=message,
    )
    statements().settle(params)
    # Only once billed: a settlement spooled while the database is down keeps its reservation's
    # lease renewed until the spool applies it, so the hold is not freed before the bill lands.
    lease_end(reservation.pk)
    return Settlement(usage.prompt_tokens, usage.completion_tokens, params.cost)


def billed_usage(
    admission: Admission, *, usage: Usage | None = None, text: str = "", prompt: Usage | None = None
) -> Usage:
    """What a call is billed: what the vendor reported; without a report, the prompt (as the
    vendor counted it at the start, `prompt`, else as the gateway counted it) plus the received
    text (a cut stream); nothing for a failure that produced nothing."""
    if usage is not None:
        return usage
    model = admission.model
    if text:
        completion = count_text(model.provider, model.provider_model, text)
        if prompt is not None:
            return Usage(prompt.prompt_tokens, completion, prompt.cached_tokens, prompt.cache_write_tokens)
        return Usage(admission.prompt_tokens, completion)
    return Usage(0, 0)


def completion_settle(
    *,
    admission: Admission,
    status: str,
    settlement: str,
    usage: Usage | None = None,
    text: str = "",
    request_id: str = "",
    gateway_request_id: str = "",
    endpoint: str = Endpoint.DIALOGS,
    dialog: models.Model | None = None,
    message: models.Model | None = None,
) -> Settlement:
    """Bill the call (billed_usage): the reservation given back, the actual usage recorded."""
    billed = billed_usage(admission, usage=usage, text=text)
    settled = usage_settle(
        reservation=admission.reservation,
        user=admission.user,
        model=admission.model,
        usage=billed,
        status=status,
        settlement=settlement,
        request_id=request_id,
        gateway_request_id=gateway_request_id,
        endpoint=endpoint,
        dialog=dialog,
        message=message,
    )
    # The window already holds the counted prompt; add the rest of what was actually used (where
    # tokens per minute are limited: elsewhere nothing counts them). After COMMIT (at once outside
    # a transaction): not a Redis round trip while the settled rows are locked, and a Redis
    # failure is logged, never a rollback of the reply and its bill.
    unseen = billed.total_tokens - admission.prompt_tokens
    subjects = [f"user:{admission.user.pk}"] if admission.user_tokens_per_minute else []
    if admission.key_tokens_per_minute and admission.api_key is not None:
        subjects.append(f"key:{admission.api_key.pk}")
    for subject in subjects:
        # A plain function, not a functools.partial: Django's robust on_commit logs a failing
        # callback by its __qualname__, which a partial lacks (the log line itself would raise).
        def count_unseen(subject: str = subject) -> None:
            rate_limit_add_tokens(subject=subject, tokens=unseen)

        transaction.on_commit(count_unseen, robust=True)
    return settled
