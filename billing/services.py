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

from billing.models import DailyUsage, Period, Quota, Reservation, UsageRecord
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


def _exceeded(holder, *, owner: str, resets_at: datetime | None, tokens: int, cost: Decimal) -> QuotaExceeded:
    """The 429 for `holder` (a Quota or an APIKey), naming the limit that refused the request."""
    if holder.token_limit is not None and holder.used_tokens + holder.reserved_tokens + tokens > holder.token_limit:
        limit, used, reserved, unit = holder.token_limit, holder.used_tokens, holder.reserved_tokens, "tokens"
    else:
        limit, used, reserved, unit = holder.usd_limit, holder.used_usd, holder.reserved_usd, "usd"
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


def _reserve_once(*, quota: Quota, api_key, tokens: int, cost: Decimal) -> str | None:
    """Add the reservation to the quota (and the key) if it fits. Returns who refused, if anyone."""
    held = {"reserved_tokens": F("reserved_tokens") + tokens, "reserved_usd": F("reserved_usd") + cost}
    if not Quota.objects.filter(pk=quota.pk).filter(Q(unlimited=True) | _within_limits(tokens, cost)).update(**held):
        return "user"
    if api_key is not None:
        from gateway.models import APIKey

        if not APIKey.objects.filter(pk=api_key.pk).filter(_within_limits(tokens, cost)).update(**held):
            # Undo the user's part in the same transaction.
            Quota.objects.filter(pk=quota.pk).update(
                reserved_tokens=F("reserved_tokens") - tokens, reserved_usd=F("reserved_usd") - cost
            )
            return "key"
    return None


def quota_reserve(*, user, tokens: int, cost: Decimal, api_key=None, quota: Quota | None = None) -> Reservation:
    """Hold `tokens` and `cost` on the user's (and the key's) quota, or raise QuotaExceeded.

    Call inside transaction.atomic(): nothing is inserted before the conditional update has
    succeeded, so a refused request leaves no row behind.
    """
    quota = quota or quota_get(user=user)
    refused = _reserve_once(quota=quota, api_key=api_key, tokens=tokens, cost=cost)
    if refused == "user" and reservations_release_stale(user=user):
        # Reservations of dead workers are let go lazily, when they stand in the way.
        refused = _reserve_once(quota=quota, api_key=api_key, tokens=tokens, cost=cost)
    if refused == "key":
        api_key.refresh_from_db()
        raise _exceeded(api_key, owner="this API key", resets_at=None, tokens=tokens, cost=cost)
    if refused == "user":
        quota.refresh_from_db()
        resets_at = period_end(quota.period, quota.period_start)
        raise _exceeded(quota, owner="your quota", resets_at=resets_at, tokens=tokens, cost=cost)
    expires = timezone.now() + timedelta(seconds=settings.RESERVATION_TTL_SECONDS)
    return Reservation.objects.create(user=user, api_key=api_key, tokens=tokens, cost=cost, expires_at=expires)


def _give_back(reservation: Reservation, *, used_tokens: int = 0, used_usd: Decimal = Decimal(0)) -> None:
    """Move a reservation into `used`, if it is still held (a stale one may be gone already)."""
    from gateway.models import APIKey

    held = Reservation.objects.filter(pk=reservation.pk).delete()[0] > 0
    reserved_tokens = reservation.tokens if held else 0
    reserved_usd = reservation.cost if held else Decimal(0)
    if not (used_tokens or used_usd or held):
        return
    changes = {
        "used_tokens": F("used_tokens") + used_tokens,
        "used_usd": F("used_usd") + used_usd,
        "reserved_tokens": F("reserved_tokens") - reserved_tokens,
        "reserved_usd": F("reserved_usd") - reserved_usd,
    }
    Quota.objects.filter(user_id=reservation.user_id).update(**changes)
    if reservation.api_key_id:
        APIKey.objects.filter(pk=reservation.api_key_id).update(**changes)


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
    record: UsageRecord


def usage_settle(*, reservation: Reservation | None, user, model, prompt_tokens: int,
                 completion_tokens: int, status: str, request_id: str = "", endpoint: str = "dialogs",
                 api_key=None, dialog=None, message=None) -> Settlement:
    """Bill the actual usage: a usage record, the daily aggregate, and the quota moved from
    reserved to used. Zero tokens (a vendor error) simply releases the reservation."""
    cost = model.cost(prompt_tokens, completion_tokens)
    with transaction.atomic(savepoint=False):
        if reservation is not None:
            _give_back(reservation, used_tokens=prompt_tokens + completion_tokens, used_usd=cost)
        record = UsageRecord.objects.create(
            user=user, api_key=api_key, dialog=dialog, message=message, model=model, model_name=model.name,
            endpoint=endpoint, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
            cost=cost, status=status, request_id=request_id[:200],
        )
        _daily_add(user_id=user.pk, model_name=model.name, day=record.created_at.date(),
                   prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost=cost)
    return Settlement(prompt_tokens, completion_tokens, cost, record)


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


def completion_admit(*, user, model, prompt_tokens: int, max_tokens: int, api_key=None) -> Admission:
    """The key's model list, rate limits (the key's, the user's), then the worst-case reservation
    (prompt + max_tokens).
    Raises (403, RateLimited or QuotaExceeded) before anything is stored. Call inside
    transaction.atomic()."""
    from billing.ratelimit import rate_limit_check

    if api_key is not None:
        allowed = set(api_key.allowed_models.values_list("pk", flat=True))
        if allowed and model.pk not in allowed:
            raise GatewayError(f"This API key may not use the model '{model.name}'.", status=403,
                               type="permission_denied", param="model")
        if api_key.requests_per_minute or api_key.tokens_per_minute:
            rate_limit_check(subject=f"key:{api_key.pk}", requests_per_minute=api_key.requests_per_minute,
                             tokens_per_minute=api_key.tokens_per_minute, tokens=prompt_tokens)
    quota = quota_get(user=user)
    rate_limit_check(subject=f"user:{user.pk}", requests_per_minute=quota.requests_per_minute,
                     tokens_per_minute=quota.tokens_per_minute, tokens=prompt_tokens)
    worst = prompt_tokens + max_tokens
    reservation = quota_reserve(user=user, api_key=api_key, quota=quota, tokens=worst,
                                cost=model.cost(prompt_tokens, max_tokens))
    return Admission(user, api_key, model, prompt_tokens, max_tokens, reservation)


def completion_settle(*, admission: Admission, status: str, usage=None, text: str = "",
                      request_id: str = "", endpoint: str = "dialogs", dialog=None, message=None) -> Settlement:
    """Bill what the vendor reported; without a report, the counted prompt plus the received text
    (a cut stream). A failure that produced nothing is free: the reservation is given back."""
    from billing.ratelimit import rate_limit_add_tokens
    from llm_models.providers.tokens import count_text

    model = admission.model
    if usage is not None:
        prompt, completion = usage.prompt_tokens, usage.completion_tokens
    elif text:
        prompt, completion = admission.prompt_tokens, count_text(model.provider, model.provider_model, text)
    else:
        prompt, completion = 0, 0
    settlement = usage_settle(
        reservation=admission.reservation, user=admission.user, api_key=admission.api_key, model=model,
        prompt_tokens=prompt, completion_tokens=completion, status=status, request_id=request_id,
        endpoint=endpoint, dialog=dialog, message=message,
    )
    # The window already holds the counted prompt; add the rest of what was actually used.
    rate_limit_add_tokens(subject=f"user:{admission.user.pk}",
                          tokens=prompt + completion - admission.prompt_tokens)
    if admission.api_key is not None and admission.api_key.tokens_per_minute:
        rate_limit_add_tokens(subject=f"key:{admission.api_key.pk}",
                              tokens=prompt + completion - admission.prompt_tokens)
    return settlement
