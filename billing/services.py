"""Quotas: reserve the worst case before a vendor call, settle to the actual usage after it.

The guarantee (no user spends past their limit, whatever the concurrency, on any number of
server processes) rests on one statement: a conditional UPDATE that adds the reservation only
if used + reserved + this request stays within the limit. The database serialises those
updates on the quota row, so no lock is held while the vendor answers. docs/quotas.md has more.

These functions are sync and short: call them from async code with sync_to_async.
"""

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from billing.models import DailyUsage, Period, Quota, Reservation
from gateway.errors import GatewayError


class QuotaExceeded(GatewayError):
    status = 429
    type = "quota_exceeded"


def period_start(period: str, now: datetime) -> datetime:
    """Start (UTC) of the period that contains `now`."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == Period.DAILY:
        return day
    if period == Period.WEEKLY:
        return day - timedelta(days=day.weekday())
    if period == Period.MONTHLY:
        return day.replace(day=1)
    return datetime(1970, 1, 1, tzinfo=now.tzinfo)


def period_end(period: str, start: datetime) -> datetime | None:
    """When the period that began at `start` resets (None: a total never does)."""
    if period == Period.DAILY:
        return start + timedelta(days=1)
    if period == Period.WEEKLY:
        return start + timedelta(days=7)
    if period == Period.MONTHLY:
        days = calendar.monthrange(start.year, start.month)[1]
        return start + timedelta(days=days)
    return None


def quota_get(*, user) -> Quota:
    """The user's quota, made from settings.DEFAULT_QUOTA on first use, rolled into the current
    period if its period has ended (lazily: the first request after the boundary does it)."""
    now = timezone.now()
    quota = Quota.objects.filter(user=user).first()
    if quota is None:
        defaults = dict(settings.DEFAULT_QUOTA)
        defaults["period_start"] = period_start(defaults["period"], now)
        quota, _ = Quota.objects.get_or_create(user=user, defaults=defaults)
    current = period_start(quota.period, now)
    if quota.period_start < current:
        # Conditional on the old start, so of many processes exactly one rolls it over.
        Quota.objects.filter(pk=quota.pk, period_start=quota.period_start).update(
            used_tokens=0, used_usd=0, period_start=current, last_reset_at=now
        )
        quota.refresh_from_db()
    return quota


def _within_limits(tokens: int, cost: Decimal) -> Q:
    """used + reserved + this request <= limit, for each limit that is set (on a Quota or an APIKey)."""
    return (Q(token_limit__isnull=True) | Q(token_limit__gte=F("used_tokens") + F("reserved_tokens") + tokens)) & (
        Q(usd_limit__isnull=True) | Q(usd_limit__gte=F("used_usd") + F("reserved_usd") + cost)
    )


def _exceeded(holder, *, owner: str, resets_at: datetime | None, tokens: int, cost: Decimal) -> QuotaExceeded | None:
    """The 429 for `holder` (a Quota or an APIKey), naming the limit that refuses the request; None
    if none does any more (requests that gave back since the refusal made room)."""
    if holder.token_limit is not None and holder.used_tokens + holder.reserved_tokens + tokens > holder.token_limit:
        limit, used, reserved, unit = holder.token_limit, holder.used_tokens, holder.reserved_tokens, "tokens"
    elif holder.usd_limit is not None and holder.used_usd + holder.reserved_usd + cost > holder.usd_limit:
        limit, used, reserved, unit = holder.usd_limit, holder.used_usd, holder.reserved_usd, "usd"
    else:
        return None
    remaining = max(limit - used - reserved, 0)
    message = (
        f"This request needs up to {tokens} tokens (${cost:.6f}); {owner} has {remaining} {unit} "
        f"left of {limit}."
    )
    return QuotaExceeded(
        message, unit=unit, limit=str(limit) if unit == "usd" else limit,
        used=str(used) if unit == "usd" else used,
        reserved=str(reserved) if unit == "usd" else reserved,
        remaining=str(remaining) if unit == "usd" else remaining,
        resets_at=resets_at.isoformat() if resets_at else None,
        headers={"Retry-After": str(max(int((resets_at - timezone.now()).total_seconds()), 1))}
        if resets_at else {},
    )


# A refusal read back a moment later may be gone: the hold is tried again, this many times in all.
_HOLD_ATTEMPTS = 3


def _contended(owner: str) -> GatewayError:
    """Refused, then found room, _HOLD_ATTEMPTS times over: the limit is that contended right now."""
    return GatewayError(f"Many requests are racing for what is left of {owner}; retry shortly.", status=429,
                        type="rate_limited", headers={"Retry-After": "1"})


# The statements every completion sends, in plain SQL that PostgreSQL and SQLite both run: built
# by the ORM they cost ~0.5 ms of CPU each, most of a completion's time in the gateway
# (docs/performance.md). Everything else here uses the ORM.
_FITS = ("(token_limit IS NULL OR token_limit >= used_tokens + reserved_tokens + %s) "
         "AND (usd_limit IS NULL OR usd_limit >= used_usd + reserved_usd + %s)")
_HOLD = "reserved_tokens = reserved_tokens + %s, reserved_usd = reserved_usd + %s"
_SETTLE = ("used_tokens = used_tokens + %s, used_usd = used_usd + %s, "
           "reserved_tokens = reserved_tokens - %s, reserved_usd = reserved_usd - %s")


def _sql(statement: str, params: list) -> list[tuple] | int:
    """Rows for a statement that returns some (SELECT, ... RETURNING), else the rows it changed."""
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else cursor.rowcount


def _db_time(value: datetime):
    return connection.ops.adapt_datetimefield_value(value)


@dataclass
class RateLimits:
    requests_per_minute: int | None
    tokens_per_minute: int | None


def _hold_on_key(*, api_key, model, tokens: int, cost: Decimal, now: datetime) -> None:
    """Add the reservation to the key if the key may still be used, for this model, within its
    limits: one statement, so revoking, expiring, deactivating the user or changing the key's
    models takes effect on the next request even when the caller came from a cache
    (gateway.auth.api_key_cached). Raises 401, 403 or 429 otherwise."""
    for _ in range(_HOLD_ATTEMPTS):
        rows = _sql(
            f"UPDATE gateway_apikey SET {_HOLD}, last_used_at = %s "
            f"WHERE id = %s AND user_id = %s AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > %s) "
            f"AND {_FITS} AND EXISTS (SELECT 1 FROM {_user_table()} WHERE id = %s AND is_active) "
            "AND (NOT EXISTS (SELECT 1 FROM gateway_apikey_allowed_models WHERE apikey_id = %s) "
            "     OR EXISTS (SELECT 1 FROM gateway_apikey_allowed_models WHERE apikey_id = %s AND llmmodel_id = %s))",
            [tokens, cost, _db_time(now), api_key.pk, api_key.user_id, _db_time(now), tokens, cost,
             api_key.user_id, api_key.pk, api_key.pk, model.pk],
        )
        if rows:
            return
        if refusal := _key_refusal(api_key, model=model, tokens=tokens, cost=cost):
            raise refusal
    raise _contended("this API key")


def _user_table() -> str:
    from django.contrib.auth import get_user_model

    return get_user_model()._meta.db_table


def _key_refusal(api_key, *, model, tokens: int, cost: Decimal) -> GatewayError | None:
    """Why _hold_on_key refused: read the key again (a rare path) and name the reason; None if the
    request fits now."""
    from gateway.auth import api_key_forget, api_key_problem
    from gateway.models import APIKey

    api_key_forget(api_key)
    key = APIKey.objects.select_related("user").filter(pk=api_key.pk, user_id=api_key.user_id).first()
    if key is None or (problem := api_key_problem(key)):
        return GatewayError(problem if key else "Invalid API key.", status=401, type="authentication_failed")
    allowed = set(key.allowed_models.values_list("pk", flat=True))
    if allowed and model.pk not in allowed:
        return GatewayError(f"This API key may not use the model '{model.name}'.", status=403,
                            type="permission_denied", param="model")
    return _exceeded(key, owner="this API key", resets_at=None, tokens=tokens, cost=cost)


def _hold_on_quota(*, user, tokens: int, cost: Decimal, now: datetime) -> None:
    """Add the reservation to the user's quota if it fits, in one statement. The statement only
    matches a quota in its current period; a missing quota, a period to roll over or a refusal
    take the slow path, which also says why."""
    starts = [_db_time(period_start(period, now)) for period in (Period.DAILY, Period.WEEKLY, Period.MONTHLY)]
    rows = _sql(
        f"UPDATE billing_quota SET {_HOLD} WHERE user_id = %s "
        "AND period_start >= CASE period WHEN 'daily' THEN %s WHEN 'weekly' THEN %s WHEN 'monthly' THEN %s "
        "ELSE period_start END "
        f"AND (unlimited OR ({_FITS}))",
        [tokens, cost, user.pk, *starts, tokens, cost],
    )
    if rows:
        return
    quota = quota_get(user=user)  # made or rolled over if need be
    released_stale = False
    for _ in range(_HOLD_ATTEMPTS):
        if _hold_on_quota_row(quota, tokens=tokens, cost=cost):
            return
        if not released_stale:
            # Reservations of dead workers are let go lazily, when they stand in the way.
            released_stale = True
            if reservations_release_stale(user=user):
                continue
        quota.refresh_from_db()
        resets_at = period_end(quota.period, quota.period_start)
        if refusal := _exceeded(quota, owner="your quota", resets_at=resets_at, tokens=tokens, cost=cost):
            raise refusal
    raise _contended("your quota")


def _hold_on_quota_row(quota: Quota, *, tokens: int, cost: Decimal) -> bool:
    held = {"reserved_tokens": F("reserved_tokens") + tokens, "reserved_usd": F("reserved_usd") + cost}
    return bool(Quota.objects.filter(pk=quota.pk).filter(Q(unlimited=True) | _within_limits(tokens, cost))
                .update(**held))


def _reservation_create(*, user, api_key, tokens: int, cost: Decimal,
                        now: datetime) -> tuple[Reservation, RateLimits | None, RateLimits | None]:
    """The reservation's row, and the rate limits of the key and of the user's quota (None for a
    user without a quota yet) read by the same statement."""
    expires = now + timedelta(seconds=settings.RESERVATION_TTL_SECONDS)
    key_id = api_key.pk if api_key else None
    rows = _sql(
        "INSERT INTO billing_reservation (user_id, api_key_id, tokens, cost, created_at, expires_at) "
        "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id, "
        "(SELECT requests_per_minute FROM gateway_apikey WHERE id = %s), "
        "(SELECT tokens_per_minute FROM gateway_apikey WHERE id = %s), "
        "EXISTS (SELECT 1 FROM billing_quota WHERE user_id = %s), "
        "(SELECT requests_per_minute FROM billing_quota WHERE user_id = %s), "
        "(SELECT tokens_per_minute FROM billing_quota WHERE user_id = %s)",
        [user.pk, key_id, tokens, cost, _db_time(now), _db_time(expires), key_id, key_id, *[user.pk] * 3],
    )
    reservation_id, key_rpm, key_tpm, has_quota, user_rpm, user_tpm = rows[0]
    reservation = Reservation(id=reservation_id, user_id=user.pk, api_key_id=key_id, tokens=tokens, cost=cost,
                              created_at=now, expires_at=expires)
    return (reservation, RateLimits(key_rpm, key_tpm) if api_key else None,
            RateLimits(user_rpm, user_tpm) if has_quota else None)


def quota_reserve(*, user, tokens: int, cost: Decimal, api_key=None, model=None) -> Reservation:
    """Hold `tokens` and `cost` on the user's (and the key's) quota, or raise QuotaExceeded.

    Call inside transaction.atomic(): nothing is inserted before the conditional updates have
    succeeded, so a refused request leaves no row behind.
    """
    now = timezone.now()
    if api_key is not None:
        _hold_on_key(api_key=api_key, model=model, tokens=tokens, cost=cost, now=now)
    _hold_on_quota(user=user, tokens=tokens, cost=cost, now=now)
    return _reservation_create(user=user, api_key=api_key, tokens=tokens, cost=cost, now=now)[0]


def _give_back(reservation: Reservation, *, used_tokens: int = 0, used_usd: Decimal = Decimal(0)) -> None:
    """Move a reservation into `used`, if it is still held (a stale one may be gone already)."""
    _holds_settle(reservation, held=_reservation_delete(reservation), used_tokens=used_tokens, used_usd=used_usd)


def _reservation_delete(reservation: Reservation) -> bool:
    """Whether the reservation was still held (a stale one may have been released already)."""
    return _sql("DELETE FROM billing_reservation WHERE id = %s", [reservation.pk]) > 0


def _holds_settle(reservation: Reservation, *, held: bool, used_tokens: int, used_usd: Decimal) -> None:
    if not (used_tokens or used_usd or held):
        return
    changes = [used_tokens, used_usd, reservation.tokens if held else 0, reservation.cost if held else Decimal(0)]
    # The key's row first, then the quota's, as completion_admit locks them: the other order
    # deadlocks with concurrent admissions.
    if reservation.api_key_id:
        _sql(f"UPDATE gateway_apikey SET {_SETTLE} WHERE id = %s", [*changes, reservation.api_key_id])
    _sql(f"UPDATE billing_quota SET {_SETTLE} WHERE user_id = %s", [*changes, reservation.user_id])


def reservations_release_stale(*, user=None) -> int:
    """Release reservations past their expiry (their worker died). Returns how many."""
    stale = Reservation.objects.filter(expires_at__lt=timezone.now())
    if user is not None:
        stale = stale.filter(user=user)
    released = 0
    for reservation in stale:
        with transaction.atomic(savepoint=False):
            _give_back(reservation)
        released += 1
    return released


@dataclass
class Settlement:
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal


def usage_settle(*, reservation: Reservation | None, user, model, prompt_tokens: int,
                 completion_tokens: int, status: str, request_id: str = "", endpoint: str = "dialogs",
                 api_key=None, dialog=None, message=None) -> Settlement:
    """Bill the actual usage: a usage record, the daily aggregate, and the quota moved from
    reserved to used. Zero tokens (a vendor error) simply releases the reservation."""
    cost = model.cost(prompt_tokens, completion_tokens)
    now = timezone.now()
    with transaction.atomic(savepoint=False):
        held = reservation is not None and _reservation_delete(reservation)
        _sql(
            "INSERT INTO billing_usagerecord (user_id, api_key_id, dialog_id, message_id, model_id, model_name, "
            "endpoint, prompt_tokens, completion_tokens, cost, status, request_id, created_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [user.pk, api_key.pk if api_key else None, dialog.pk if dialog else None,
             message.pk if message else None, model.pk, model.name, endpoint, prompt_tokens, completion_tokens,
             cost, status, request_id[:200], _db_time(now)],
        )
        # Last, the rows every request of the user needs: each stays locked until COMMIT, and
        # the other requests wait for it (the day's row, then as completion_admit: key, quota).
        _daily_add(user_id=user.pk, model_name=model.name, day=now.date(),
                   prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost=cost)
        if reservation is not None:
            _holds_settle(reservation, held=held, used_tokens=prompt_tokens + completion_tokens, used_usd=cost)
    return Settlement(prompt_tokens, completion_tokens, cost)


def _daily_add(*, user_id: int, model_name: str, day, prompt_tokens: int, completion_tokens: int,
               cost: Decimal) -> None:
    # One statement on PostgreSQL and SQLite alike: insert the day's row or add to it.
    table = DailyUsage._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (user_id, model_name, day, requests, prompt_tokens, completion_tokens, cost) "
            "VALUES (%s, %s, %s, 1, %s, %s, %s) "
            "ON CONFLICT (user_id, day, model_name) DO UPDATE SET "
            "requests = {t}.requests + 1, prompt_tokens = {t}.prompt_tokens + EXCLUDED.prompt_tokens, "
            "completion_tokens = {t}.completion_tokens + EXCLUDED.completion_tokens, "
            "cost = {t}.cost + EXCLUDED.cost".replace("{t}", table),
            [user_id, model_name, day, prompt_tokens, completion_tokens, cost],
        )


@dataclass
class ResetResult:
    user: str
    used_tokens: int
    used_usd: Decimal


def quotas_reset(*, username: str | None = None, period: str | None = None,
                 dry_run: bool = False) -> list[ResetResult]:
    """Zero the used amounts (never the usage records) of the chosen quotas."""
    quotas = Quota.objects.select_related("user").order_by("user__username")
    if username:
        quotas = quotas.filter(user__username=username)
    if period:
        quotas = quotas.filter(period=period)
    results = [ResetResult(q.user.username, q.used_tokens, q.used_usd) for q in quotas]
    if not dry_run:
        now = timezone.now()
        for quota in quotas:
            quota_reset(quota=quota, now=now)
    return results


def quota_reset(*, quota: Quota, now: datetime | None = None) -> None:
    now = now or timezone.now()
    Quota.objects.filter(pk=quota.pk).update(
        used_tokens=0, used_usd=0, last_reset_at=now, period_start=period_start(quota.period, now)
    )


@dataclass
class Admission:
    """A request let through: its rate-limit subject, counted prompt and held reservation."""

    user: object
    api_key: object
    model: object
    prompt_tokens: int
    max_tokens: int
    reservation: Reservation
    key_tokens_per_minute: int | None = None


def completion_admit(*, user, model, prompt_tokens: int, max_tokens: int, api_key=None) -> Admission:
    """The worst-case reservation (prompt + max_tokens) on the key and the user's quota, and the
    rate limits (the key's, the user's). Raises (401, 403,
    RateLimited or QuotaExceeded). Call inside transaction.atomic(), as the caller's last
    statements: a refusal rolls everything back, and the rows it locks wait for COMMIT."""
    from billing.ratelimit import rate_limit_check

    tokens, cost, now = prompt_tokens + max_tokens, model.cost(prompt_tokens, max_tokens), timezone.now()
    # The holds lock the key's and the quota's rows, which every request of the user needs, until
    # COMMIT: they come last, after the reservation's row and the rate limits (read by its
    # INSERT, counted in Redis).
    reservation, key_limits, user_limits = _reservation_create(user=user, api_key=api_key, tokens=tokens,
                                                               cost=cost, now=now)
    if user_limits is None:  # the user's first request: their quota is made now
        quota = quota_get(user=user)
        user_limits = RateLimits(quota.requests_per_minute, quota.tokens_per_minute)
    if key_limits is not None:
        rate_limit_check(subject=f"key:{api_key.pk}", requests_per_minute=key_limits.requests_per_minute,
                         tokens_per_minute=key_limits.tokens_per_minute, tokens=prompt_tokens)
    rate_limit_check(subject=f"user:{user.pk}", requests_per_minute=user_limits.requests_per_minute,
                     tokens_per_minute=user_limits.tokens_per_minute, tokens=prompt_tokens)
    if api_key is not None:
        _hold_on_key(api_key=api_key, model=model, tokens=tokens, cost=cost, now=now)
    _hold_on_quota(user=user, tokens=tokens, cost=cost, now=now)
    return Admission(user, api_key, model, prompt_tokens, max_tokens, reservation,
                     key_tokens_per_minute=key_limits.tokens_per_minute if key_limits else None)


def billed_usage(admission: Admission, *, usage=None, text: str = ""):
    """What a call is billed: what the vendor reported; without a report, the counted prompt plus
    the received text (a cut stream); nothing for a failure that produced nothing."""
    from llm_models.providers.base import Usage
    from llm_models.providers.tokens import count_text

    if usage is not None:
        return usage
    model = admission.model
    if text:
        return Usage(admission.prompt_tokens, count_text(model.provider, model.provider_model, text))
    return Usage(0, 0)


def completion_settle(*, admission: Admission, status: str, usage=None, text: str = "",
                      request_id: str = "", endpoint: str = "dialogs", dialog=None, message=None) -> Settlement:
    """Bill the call (billed_usage): the reservation given back, the actual usage recorded."""
    from billing.ratelimit import rate_limit_add_tokens

    billed = billed_usage(admission, usage=usage, text=text)
    prompt, completion = billed.prompt_tokens, billed.completion_tokens
    settlement = usage_settle(
        reservation=admission.reservation, user=admission.user, api_key=admission.api_key, model=admission.model,
        prompt_tokens=prompt, completion_tokens=completion, status=status, request_id=request_id,
        endpoint=endpoint, dialog=dialog, message=message,
    )
    # The window already holds the counted prompt; add the rest of what was actually used.
    rate_limit_add_tokens(subject=f"user:{admission.user.pk}",
                          tokens=prompt + completion - admission.prompt_tokens)
    if admission.key_tokens_per_minute:
        rate_limit_add_tokens(subject=f"key:{admission.api_key.pk}",
                              tokens=prompt + completion - admission.prompt_tokens)
    return settlement
