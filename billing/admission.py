"""Admission: count a request against the requests-per-minute limits as soon as its caller is
known (`request_count`), then hold its worst case on its API key and its user's quota before the
vendor is called, and count its prompt against the tokens-per-minute limits.

The guarantee (no user or key spends past a limit, whatever the concurrency, on any number of
server processes) rests on the hold being one conditional write per row: used + reserved + this
request must stay within the limit, and the database serialises writers of a row, re-checking
the condition against the row as the previous writer left it. No lock is held while the vendor
answers. docs/quotas.md has more; billing.sql has the statements.

These functions are sync and short: call them from async code through common.db.db_phase.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from billing.keys import api_key_problem
from billing.leases import lease_begin, lease_end, lease_expiry
from billing.models import APIKey, Quota, Reservation
from billing.periods import Period, period_start
from billing.quotas import quota_get
from billing.ratelimit import RateLimited, rate_limit_request, rate_limit_tokens
from billing.sql import HoldParams, statements
from common import metrics
from common.errors import GatewayError
from llm_models.models import LLMModel


class QuotaExceeded(GatewayError):
    status = 429
    type = "quota_exceeded"


# A refusal read back a moment later may be gone: the hold is tried again, this many times in all.
_HOLD_ATTEMPTS = 3
# A request that set no max_tokens is let through with a shorter reply when the limits have
# room for the prompt and at least this many reply tokens (fewer is no answer worth paying for).
MIN_REPLY_TOKENS = 16


@dataclass
class Admission:
    """A request let through: who and what it is for, its counted prompt, its reservation."""

    user: User
    api_key: APIKey | None
    model: LLMModel
    prompt_tokens: int
    max_tokens: int
    reservation: Reservation
    # Where tokens per minute are limited, settlement counts the rest of what was used.
    key_tokens_per_minute: int | None = None
    user_tokens_per_minute: int | None = None


@contextmanager
def _refusals_counted() -> Iterator[None]:
    """Counts a refusal by a quota or a rate limit in the metrics (common.metrics)."""
    try:
        yield
    except (QuotaExceeded, RateLimited) as refusal:
        metrics.refusals.labels(reason=refusal.type).inc()
        raise


@_refusals_counted()
def request_count(*, user: User, api_key: APIKey | None) -> None:
    """Count one request against the key's and the user's requests per minute, or raise
    RateLimited. Call it right after authentication, before the request's body is read: a caller
    over its rate is refused before the gateway spends anything on it. The key (and its user's
    quota) come as the authentication read them (billing.keys.user_for_api_key)."""
    if api_key is not None:
        rate_limit_request(subject=f"key:{api_key.pk}", requests_per_minute=api_key.requests_per_minute)
    quota = getattr(user, "quota", None)  # none yet: made by the hold, with the default limits
    if quota is not None:
        rate_limit_request(subject=f"user:{user.pk}", requests_per_minute=quota.requests_per_minute)


@_refusals_counted()
def completion_admit(
    *,
    user: User,
    model: LLMModel,
    prompt_tokens: int,
    max_tokens: int,
    api_key: APIKey | None = None,
    shrinkable: bool = False,
) -> Admission:
    """The worst-case reservation (prompt + max_tokens) on the key and the user's quota, then the
    tokens-per-minute limits (the key's, the user's) read by the same statement (requests were
    counted by `request_count`). Raises 401, 403, RateLimited or QuotaExceeded; a refused request
    holds nothing. Call it outside a transaction (on PostgreSQL the hold commits on its own, so the
    rows it locks are free at once).

    `shrinkable`: the client set no max_tokens, so where the limits have no room for the whole
    `max_tokens` but do for the prompt and a shorter reply (MIN_REPLY_TOKENS at least), the
    reply's allowance shrinks to fit (Admission.max_tokens) instead of the request being refused.
    """

    def hold(reply_tokens: int) -> tuple[Reservation, _Limits, _Limits]:
        cost = model.worst_cost(prompt_tokens, reply_tokens)
        return _hold(user=user, api_key=api_key, model=model, tokens=prompt_tokens + reply_tokens, cost=cost)

    try:
        reservation, key_limits, user_limits = hold(max_tokens)
    except QuotaExceeded:
        room = _reply_room(user=user, api_key=api_key, model=model, prompt_tokens=prompt_tokens) if shrinkable else 0
        if not MIN_REPLY_TOKENS <= room < max_tokens:
            raise
        max_tokens = room
        reservation, key_limits, user_limits = hold(max_tokens)
    try:
        if api_key is not None:
            rate_limit_tokens(subject=f"key:{api_key.pk}", tokens_per_minute=key_limits[1], tokens=prompt_tokens)
        rate_limit_tokens(subject=f"user:{user.pk}", tokens_per_minute=user_limits[1], tokens=prompt_tokens)
    except BaseException:
        reservation_release(reservation=reservation)
        raise
    return Admission(
        user,
        api_key,
        model,
        prompt_tokens,
        max_tokens,
        reservation,
        key_tokens_per_minute=key_limits[1] if api_key is not None else None,
        user_tokens_per_minute=user_limits[1],
    )


def _reply_room(*, user: User, api_key: APIKey | None, model: LLMModel, prompt_tokens: int) -> int:
    """How many reply tokens the user's quota and the key still have room for after the prompt
    (read now: the room may be gone by the hold, which re-checks it)."""
    quota = quota_get(user=user)
    holders: list[Quota | APIKey] = [] if quota.unlimited else [quota]
    if api_key is not None:
        key = APIKey.objects.filter(pk=api_key.pk).first()
        holders += [key] if key is not None else []
    room = model.max_output_tokens
    for holder in holders:
        if holder.token_limit is not None:
            room = min(room, holder.token_limit - holder.used_tokens - holder.reserved_tokens - prompt_tokens)
        if holder.usd_limit is not None and model.output_price_per_1k > 0:
            money = holder.usd_limit - holder.used_usd - holder.reserved_usd - model.worst_cost(prompt_tokens, 0)
            room = min(room, int(money * 1000 / model.output_price_per_1k))
    return room


def quota_reserve(
    *,
    user: User,
    tokens: int,
    cost: Decimal,
    api_key: APIKey | None = None,
    model: LLMModel | None = None,
) -> Reservation:
    """Hold `tokens` and `cost` on the user's (and the key's) quota, or raise QuotaExceeded. A
    refused request leaves no row behind."""
    return _hold(user=user, api_key=api_key, model=model, tokens=tokens, cost=cost)[0]


def reservation_release(*, reservation: Reservation) -> bool:
    """Give a reservation back unused (its request was refused, or failed before the vendor
    call). False if it was no longer held."""
    lease_end(reservation.pk)
    with transaction.atomic(savepoint=False):
        return statements().give_back(reservation)


def reservations_release_stale(*, user: User | None = None) -> int:
    """Release reservations whose lease has lapsed (billing.leases: the process that held them
    died). Returns how many."""
    stale = Reservation.objects.filter(expires_at__lt=timezone.now())
    if user is not None:
        stale = stale.filter(user=user)
    return sum(reservation_release(reservation=reservation) for reservation in stale)


_Limits = tuple[int | None, int | None]  # (requests, tokens) per minute


def _hold(
    *, user: User, api_key: APIKey | None, model: LLMModel | None, tokens: int, cost: Decimal
) -> tuple[Reservation, _Limits, _Limits]:
    """Reserve `tokens` and `cost` on the key (if any) and the user's quota, or raise 401, 403 or
    429 (QuotaExceeded) saying why."""
    released_stale = False
    key_refused = False
    for _ in range(_HOLD_ATTEMPTS):
        now = timezone.now()
        expires = lease_expiry()
        held = statements().hold(
            HoldParams(
                user=user.pk,
                key=api_key.pk if api_key else None,
                model=model.pk if model else None,
                tokens=tokens,
                cost=cost,
                now=now,
                expires=expires,
                daily=period_start(Period.DAILY, now),
                weekly=period_start(Period.WEEKLY, now),
                monthly=period_start(Period.MONTHLY, now),
            )
        )
        if held.reservation_id is not None:
            lease_begin(held.reservation_id)
            reservation = Reservation(
                id=held.reservation_id,
                user_id=user.pk,
                api_key_id=api_key.pk if api_key else None,
                tokens=tokens,
                cost=cost,
                created_at=now,
                expires_at=expires,
            )
            return reservation, held.key_limits, held.user_limits
        key_refused = held.key_refused
        if api_key is not None and key_refused:
            refusal = _key_refusal(api_key, model=model, tokens=tokens, cost=cost)
        else:
            quota = quota_get(user=user)  # made, or rolled into its period, if need be
            refusal = _quota_refusal(quota, tokens=tokens, cost=cost)
            if refusal is not None and not released_stale:
                # Reservations of dead workers are let go lazily, when they stand in the way.
                released_stale = True
                if reservations_release_stale(user=user):
                    continue
        if refusal is not None:
            raise refusal
    raise _contended("this API key" if key_refused else "your quota")


def _contended(owner: str) -> GatewayError:
    """Refused, then found room, _HOLD_ATTEMPTS times over: the limit is that contended right now."""
    return GatewayError(
        f"Many requests are racing for what is left of {owner}; retry shortly.",
        status=429,
        type="rate_limited",
        headers={"Retry-After": "1"},
    )


def _quota_refusal(quota: Quota, *, tokens: int, cost: Decimal) -> QuotaExceeded | None:
    if quota.unlimited:
        return None
    return _exceeded(quota, owner="your quota", resets_at=quota.resets_at, tokens=tokens, cost=cost)


def _key_refusal(api_key: APIKey, *, model: LLMModel | None, tokens: int, cost: Decimal) -> GatewayError | None:
    """Why the key refused: read it again (a rare path) and name the reason; None if the request
    fits now."""
    key = APIKey.objects.select_related("user").filter(pk=api_key.pk, user_id=api_key.user_id).first()
    if key is None:
        return GatewayError("Invalid API key.", status=401, type="authentication_failed")
    if problem := api_key_problem(key):
        return GatewayError(problem, status=401, type="authentication_failed")
    allowed = set(key.allowed_models.values_list("pk", flat=True))
    if model is not None and allowed and model.pk not in allowed:
        return GatewayError(
            f"This API key may not use the model '{model.name}'.", status=403, type="permission_denied", param="model"
        )
    return _exceeded(key, owner="this API key", resets_at=None, tokens=tokens, cost=cost)


def _exceeded(
    holder: Quota | APIKey, *, owner: str, resets_at: datetime | None, tokens: int, cost: Decimal
) -> QuotaExceeded | None:
    """The 429 for `holder`, naming the limit that refuses the request; None if none does any more
    (requests that gave back since the refusal made room)."""
    limit: int | Decimal
    used: int | Decimal
    reserved: int | Decimal
    if holder.token_limit is not None and holder.used_tokens + holder.reserved_tokens + tokens > holder.token_limit:
        limit, used, reserved, unit = holder.token_limit, holder.used_tokens, holder.reserved_tokens, "tokens"
    elif holder.usd_limit is not None and holder.used_usd + holder.reserved_usd + cost > holder.usd_limit:
        limit, used, reserved, unit = holder.usd_limit, holder.used_usd, holder.reserved_usd, "usd"
    else:
        return None
    remaining = max(limit - used - reserved, 0)

    def shown(amount: int | Decimal) -> int | str:
        return str(amount) if unit == "usd" else int(amount)

    message = f"This request needs up to {tokens} tokens (${cost:.6f}); {owner} has {remaining} {unit} left of {limit}."
    # Retrying cannot help before the limit resets: the SDKs read x-should-retry.
    headers = {"x-should-retry": "false"}
    if resets_at is not None:
        headers["Retry-After"] = str(max(int((resets_at - timezone.now()).total_seconds()), 1))
    return QuotaExceeded(
        message,
        unit=unit,
        limit=shown(limit),
        used=shown(used),
        reserved=shown(reserved),
        remaining=shown(remaining),
        resets_at=resets_at.isoformat() if resets_at else None,
        headers=headers,
    )
