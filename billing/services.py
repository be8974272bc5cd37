"""Quotas: reserve the worst case before a vendor call, settle to the actual usage after it.

The guarantee (no user spends past their limit, whatever the concurrency, on any number of
server processes) rests on one statement: a conditional UPDATE that adds the reservation only
if used + reserved + this request stays within the limit. The database serialises those
updates on the quota row, so no lock is held while the vendor answers. docs/quotas.md has more.

These functions are sync and short: call them from async code with sync_to_async.
"""

import calendar
import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from billing.models import Period, Quota, Reservation
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
    message = f"This request needs up to {tokens} tokens (${cost:.6f}); {owner} has {remaining} {unit} left of {limit}."
    return QuotaExceeded(
        message,
        unit=unit,
        limit=str(limit) if unit == "usd" else limit,
        used=str(used) if unit == "usd" else used,
        reserved=str(reserved) if unit == "usd" else reserved,
        remaining=str(remaining) if unit == "usd" else remaining,
        resets_at=resets_at.isoformat() if resets_at else None,
        headers={"Retry-After": str(max(int((resets_at - timezone.now()).total_seconds()), 1))} if resets_at else {},
    )


# A refusal read back a moment later may be gone: the hold is tried again, this many times in all.
_HOLD_ATTEMPTS = 3


def _contended(owner: str) -> GatewayError:
    """Refused, then found room, _HOLD_ATTEMPTS times over: the limit is that contended right now."""
    return GatewayError(
        f"Many requests are racing for what is left of {owner}; retry shortly.",
        status=429,
        type="rate_limited",
        headers={"Retry-After": "1"},
    )


# The statements every completion sends, in plain SQL (one statement each for a hold and a settlement
# on PostgreSQL, a few that SQLite runs too elsewhere): built
# by the ORM they cost ~0.5 ms of CPU each, most of a completion's time in the gateway
# (docs/performance.md). Everything else here uses the ORM.
# Used goes up by what the request used, reserved down by what its reservation still held.
_MOVE_TO_USED = (
    "used_tokens = used_tokens + %(used_tokens)s, used_usd = used_usd + %(cost)s, "
    "reserved_tokens = reserved_tokens - {held_tokens}, reserved_usd = reserved_usd - {held_cost}"
)


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


# What makes the key usable for this request (it may come from a per-process cache,
# gateway.auth.api_key_cached: revoking, expiring, deactivating the user or changing the key's
# models takes effect on the next request all the same), and the quota's current period: a
# quota to make or to roll over is refused here and fixed by the slow path.
_KEY_USABLE = (
    "id = %(key)s AND user_id = %(user)s AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > %(now)s) "
    "AND (token_limit IS NULL OR token_limit >= used_tokens + reserved_tokens + %(tokens)s) "
    "AND (usd_limit IS NULL OR usd_limit >= used_usd + reserved_usd + %(cost)s) "
    "AND EXISTS (SELECT 1 FROM {users} WHERE id = %(user)s AND is_active) "
    "AND (NOT EXISTS (SELECT 1 FROM gateway_apikey_allowed_models WHERE apikey_id = %(key)s) "
    "     OR EXISTS (SELECT 1 FROM gateway_apikey_allowed_models "
    "                WHERE apikey_id = %(key)s AND llmmodel_id = %(model)s))"
)
_QUOTA_FITS = (
    "user_id = %(user)s AND period_start >= CASE period WHEN 'daily' THEN %(daily)s WHEN 'weekly' THEN %(weekly)s "
    "WHEN 'monthly' THEN %(monthly)s ELSE period_start END "
    "AND (unlimited OR ((token_limit IS NULL OR token_limit >= used_tokens + reserved_tokens + %(tokens)s) "
    "AND (usd_limit IS NULL OR usd_limit >= used_usd + reserved_usd + %(cost)s)))"
)
_ADD_HOLD = "reserved_tokens = reserved_tokens + %(tokens)s, reserved_usd = reserved_usd + %(cost)s"
_NEW_RESERVATION = (
    "INSERT INTO billing_reservation (user_id, api_key_id, tokens, cost, created_at, expires_at) {source} RETURNING id"
)

# PostgreSQL: the whole hold is one statement, committed on its own (autocommit), so the key's
# and the quota's rows, which every request of the user needs, are locked only while the
# server runs it, never while Python works. It locks the key's row, then the quota's (the one
# order, see _holds_settle), and changes nothing unless both fit.
_HOLD_POSTGRESQL = (
    "WITH usable_key AS (SELECT id, requests_per_minute, tokens_per_minute FROM gateway_apikey "
    f"WHERE {_KEY_USABLE} FOR NO KEY UPDATE), "
    "fitting_quota AS (SELECT id, requests_per_minute, tokens_per_minute FROM billing_quota "
    f"WHERE {_QUOTA_FITS} AND (%(key)s::bigint IS NULL OR EXISTS (SELECT 1 FROM usable_key)) "
    "FOR NO KEY UPDATE), "
    f"key_hold AS (UPDATE gateway_apikey SET {_ADD_HOLD}, last_used_at = %(now)s "
    "WHERE id IN (SELECT id FROM usable_key) AND EXISTS (SELECT 1 FROM fitting_quota)), "
    f"quota_hold AS (UPDATE billing_quota SET {_ADD_HOLD} WHERE id IN (SELECT id FROM fitting_quota)), "
    "reservation AS ("
    + _NEW_RESERVATION.format(
        source="SELECT %(user)s, %(key)s, %(tokens)s, %(cost)s, %(now)s, %(expires)s FROM fitting_quota"
    )
    + ") SELECT (SELECT id FROM reservation), EXISTS (SELECT 1 FROM usable_key), "
    "(SELECT requests_per_minute FROM usable_key), (SELECT tokens_per_minute FROM usable_key), "
    "(SELECT requests_per_minute FROM fitting_quota), (SELECT tokens_per_minute FROM fitting_quota)"
)


@dataclass
class _Held:
    reservation: Reservation | None  # None: refused
    key_refused: bool = False  # refused by the key's conditions, else by the quota's
    key_limits: RateLimits | None = None
    user_limits: RateLimits | None = None


class _Refused(Exception):
    def __init__(self, *, key: bool):
        self.key = key


def _hold_once(*, user, api_key, model, tokens: int, cost: Decimal, now: datetime) -> _Held:
    """One try at the reservation: on the key (if any) and on the quota, or on neither."""
    from django.contrib.auth import get_user_model

    expires = now + timedelta(seconds=settings.RESERVATION_TTL_SECONDS)
    daily, weekly, monthly = (_db_time(period_start(p, now)) for p in (Period.DAILY, Period.WEEKLY, Period.MONTHLY))
    params = {
        "user": user.pk,
        "key": api_key.pk if api_key else None,
        "model": model.pk if model else None,
        "tokens": tokens,
        "cost": cost,
        "now": _db_time(now),
        "expires": _db_time(expires),
        "daily": daily,
        "weekly": weekly,
        "monthly": monthly,
    }
    users = get_user_model()._meta.db_table
    if connection.vendor == "postgresql":
        reservation_id, key_usable, key_rpm, key_tpm, user_rpm, user_tpm = _sql(
            _HOLD_POSTGRESQL.replace("{users}", users), params
        )[0]
        if reservation_id is None:
            return _Held(None, key_refused=api_key is not None and not key_usable)
    else:
        # Elsewhere (SQLite: one writer at a time anyway) the same steps, one statement each, in
        # a transaction that a refusal rolls back.
        try:
            with transaction.atomic():
                key_rpm = key_tpm = None
                if api_key is not None:
                    rows = _sql(
                        f"UPDATE gateway_apikey SET {_ADD_HOLD}, last_used_at = %(now)s "
                        f"WHERE {_KEY_USABLE} RETURNING requests_per_minute, tokens_per_minute".replace(
                            "{users}", users
                        ),
                        params,
                    )
                    if not rows:
                        raise _Refused(key=True)
                    key_rpm, key_tpm = rows[0]
                rows = _sql(
                    f"UPDATE billing_quota SET {_ADD_HOLD} WHERE {_QUOTA_FITS} "
                    "RETURNING requests_per_minute, tokens_per_minute",
                    params,
                )
                if not rows:
                    raise _Refused(key=False)
                user_rpm, user_tpm = rows[0]
                reservation_id = _sql(
                    _NEW_RESERVATION.format(
                        source="VALUES (%(user)s, %(key)s, %(tokens)s, %(cost)s, %(now)s, %(expires)s)"
                    ),
                    params,
                )[0][0]
        except _Refused as refused:
            return _Held(None, key_refused=refused.key)
    reservation = Reservation(
        id=reservation_id,
        user_id=user.pk,
        api_key_id=params["key"],
        tokens=tokens,
        cost=cost,
        created_at=now,
        expires_at=expires,
    )
    return _Held(
        reservation,
        key_limits=RateLimits(key_rpm, key_tpm) if api_key else None,
        user_limits=RateLimits(user_rpm, user_tpm),
    )


def _hold(*, user, api_key, model, tokens: int, cost: Decimal) -> _Held:
    """Reserve `tokens` and `cost` on the key (if any) and the user's quota, or raise 401, 403 or
    429 (QuotaExceeded) saying why."""
    released_stale = False
    for _ in range(_HOLD_ATTEMPTS):
        held = _hold_once(user=user, api_key=api_key, model=model, tokens=tokens, cost=cost, now=timezone.now())
        if held.reservation is not None:
            return held
        if held.key_refused:
            refusal = _key_refusal(api_key, model=model, tokens=tokens, cost=cost)
        else:
            quota = quota_get(user=user)  # made, or rolled into its period, if need be
            resets_at = period_end(quota.period, quota.period_start)
            refusal = (
                None
                if quota.unlimited
                else _exceeded(quota, owner="your quota", resets_at=resets_at, tokens=tokens, cost=cost)
            )
            if refusal is not None and not released_stale:
                # Reservations of dead workers are let go lazily, when they stand in the way.
                released_stale = True
                if reservations_release_stale(user=user):
                    continue
        if refusal is not None:
            raise refusal
    raise _contended("this API key" if held.key_refused else "your quota")


def _key_refusal(api_key, *, model, tokens: int, cost: Decimal) -> GatewayError | None:
    """Why the key refused: read it again (a rare path) and name the reason; None if the request
    fits now."""
    from gateway.auth import api_key_forget, api_key_problem
    from gateway.models import APIKey

    api_key_forget(api_key)
    key = APIKey.objects.select_related("user").filter(pk=api_key.pk, user_id=api_key.user_id).first()
    if key is None or (problem := api_key_problem(key)):
        return GatewayError(problem if key else "Invalid API key.", status=401, type="authentication_failed")
    allowed = set(key.allowed_models.values_list("pk", flat=True))
    if allowed and model.pk not in allowed:
        return GatewayError(
            f"This API key may not use the model '{model.name}'.", status=403, type="permission_denied", param="model"
        )
    return _exceeded(key, owner="this API key", resets_at=None, tokens=tokens, cost=cost)


def quota_reserve(*, user, tokens: int, cost: Decimal, api_key=None, model=None) -> Reservation:
    """Hold `tokens` and `cost` on the user's (and the key's) quota, or raise QuotaExceeded. A
    refused request leaves no row behind."""
    return _hold(user=user, api_key=api_key, model=model, tokens=tokens, cost=cost).reservation


def _give_back(reservation: Reservation) -> bool:
    """Release a reservation unused, if it is still held (a stale one may be gone already)."""
    held = _reservation_delete(reservation)
    _holds_settle(reservation, held=held, used_tokens=0, used_usd=Decimal(0))
    return held


def _reservation_delete(reservation: Reservation) -> bool:
    """Whether the reservation was still held (a stale one may have been released already)."""
    return _sql("DELETE FROM billing_reservation WHERE id = %s", [reservation.pk]) > 0


def _holds_settle(reservation: Reservation, *, held: bool, used_tokens: int, used_usd: Decimal) -> None:
    if not (used_tokens or used_usd or held):
        return
    move = _MOVE_TO_USED.format(held_tokens="%(held_tokens)s", held_cost="%(held_cost)s")
    params = {
        "used_tokens": used_tokens,
        "cost": used_usd,
        "held_tokens": reservation.tokens if held else 0,
        "held_cost": reservation.cost if held else Decimal(0),
        "key": reservation.api_key_id,
        "user": reservation.user_id,
    }
    # The key's row first, then the quota's, as the hold locks them: the other order deadlocks
    # with concurrent holds.
    if reservation.api_key_id:
        _sql(f"UPDATE gateway_apikey SET {move} WHERE id = %(key)s", params)
    _sql(f"UPDATE billing_quota SET {move} WHERE user_id = %(user)s", params)


def reservations_release_stale(*, user=None) -> int:
    """Release reservations past their expiry (their worker died). Returns how many."""
    stale = Reservation.objects.filter(expires_at__lt=timezone.now())
    if user is not None:
        stale = stale.filter(user=user)
    released = 0
    for reservation in stale:
        with transaction.atomic(savepoint=False):
            released += _give_back(reservation)
    return released


@dataclass
class Settlement:
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal


_NEW_USAGE_RECORD = (
    "INSERT INTO billing_usagerecord (user_id, api_key_id, dialog_id, message_id, model_id, model_name, endpoint, "
    "prompt_tokens, completion_tokens, cost, status, request_id, created_at) VALUES (%(user)s, "
    "(SELECT id FROM gateway_apikey WHERE id = %(key)s), %(dialog)s, "  # the key may be deleted by now
    "%(message)s, %(model)s, %(model_name)s, %(endpoint)s, %(prompt)s, %(completion)s, %(cost)s, %(status)s, "
    "%(request_id)s, %(now)s)"
)
_DAY_ADD = (
    "INSERT INTO billing_dailyusage (user_id, model_name, day, requests, prompt_tokens, completion_tokens, cost) "
    "VALUES (%(user)s, %(model_name)s, %(day)s, 1, %(prompt)s, %(completion)s, %(cost)s) "
    "ON CONFLICT (user_id, day, model_name) DO UPDATE SET requests = billing_dailyusage.requests + 1, "
    "prompt_tokens = billing_dailyusage.prompt_tokens + EXCLUDED.prompt_tokens, "
    "completion_tokens = billing_dailyusage.completion_tokens + EXCLUDED.completion_tokens, "
    "cost = billing_dailyusage.cost + EXCLUDED.cost"
)
_MOVE_TO_USED_GIVEN_BACK = _MOVE_TO_USED.format(held_tokens="given_back.tokens", held_cost="given_back.cost")
# PostgreSQL: the whole settlement is one statement (see _HOLD_POSTGRESQL). Each step waits for
# the ones before it (the FROM of a count over them), so the rows are locked in the one order:
# the day's, the key's, the quota's.
_SETTLE_POSTGRESQL = (
    "WITH released AS (DELETE FROM billing_reservation WHERE id = %(reservation)s RETURNING tokens, cost), "
    "given_back AS (SELECT COALESCE(SUM(tokens), 0) AS tokens, COALESCE(SUM(cost), 0) AS cost FROM released), "
    f"record AS ({_NEW_USAGE_RECORD}), "
    f"day AS ({_DAY_ADD} RETURNING 1), "
    f"key_settled AS (UPDATE gateway_apikey SET {_MOVE_TO_USED_GIVEN_BACK} "
    "FROM given_back, (SELECT count(*) FROM day) AS after_day "
    "WHERE gateway_apikey.id = %(key)s RETURNING 1) "
    # After the day's row and the key's, also when there is no key (key_settled is then planned
    # away, and with it its wait for the day's row).
    f"UPDATE billing_quota SET {_MOVE_TO_USED_GIVEN_BACK} FROM given_back, (SELECT count(*) FROM day) AS after_day, "
    "(SELECT count(*) FROM key_settled) AS after_key WHERE billing_quota.user_id = %(user)s"
)


def usage_settle(
    *,
    reservation: Reservation,
    user,
    model,
    prompt_tokens: int,
    completion_tokens: int,
    status: str,
    request_id: str = "",
    endpoint: str = "dialogs",
    dialog=None,
    message=None,
) -> Settlement:
    """Bill the actual usage: a usage record, the daily aggregate, and the quota (and the key)
    moved from reserved to used. Zero tokens (a vendor error) simply releases the reservation."""
    cost = model.cost(prompt_tokens, completion_tokens)
    now = timezone.now()
    params = {
        "reservation": reservation.pk,
        "user": user.pk,
        "key": reservation.api_key_id,
        "dialog": dialog.pk if dialog else None,
        "message": message.pk if message else None,
        "model": model.pk,
        "model_name": model.name,
        "endpoint": endpoint,
        "prompt": prompt_tokens,
        "completion": completion_tokens,
        "used_tokens": prompt_tokens + completion_tokens,
        "cost": cost,
        "status": status,
        "request_id": request_id[:200],
        "now": _db_time(now),
        "day": now.date(),
    }
    if connection.vendor == "postgresql":
        _sql(_SETTLE_POSTGRESQL, params)
        return Settlement(prompt_tokens, completion_tokens, cost)
    with transaction.atomic(savepoint=False):
        held = _reservation_delete(reservation)
        _sql(_NEW_USAGE_RECORD, params)
        # Last, the rows every request of the user needs, in the one order: the day's, then as
        # _holds_settle: the key's and the quota's.
        _sql(_DAY_ADD, params)
        _holds_settle(reservation, held=held, used_tokens=prompt_tokens + completion_tokens, used_usd=cost)
    return Settlement(prompt_tokens, completion_tokens, cost)


@dataclass
class ResetResult:
    user: str
    used_tokens: int
    used_usd: Decimal


def quotas_reset(*, username: str | None = None, period: str | None = None, dry_run: bool = False) -> list[ResetResult]:
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
    user_tokens_per_minute: int | None = None


def completion_admit(*, user, model, prompt_tokens: int, max_tokens: int, api_key=None) -> Admission:
    """The worst-case reservation (prompt + max_tokens) on the key and the user's quota, then the
    rate limits (the key's, the user's) read by the same statement. Raises 401, 403, RateLimited
    or QuotaExceeded; a refused request holds nothing. Call it outside a transaction (on
    PostgreSQL the hold commits on its own, so the rows it locks are free at once)."""
    from billing.ratelimit import rate_limit_check

    tokens, cost = prompt_tokens + max_tokens, model.cost(prompt_tokens, max_tokens)
    held = _hold(user=user, api_key=api_key, model=model, tokens=tokens, cost=cost)
    try:
        if held.key_limits is not None:
            rate_limit_check(
                subject=f"key:{api_key.pk}",
                requests_per_minute=held.key_limits.requests_per_minute,
                tokens_per_minute=held.key_limits.tokens_per_minute,
                tokens=prompt_tokens,
            )
        rate_limit_check(
            subject=f"user:{user.pk}",
            requests_per_minute=held.user_limits.requests_per_minute,
            tokens_per_minute=held.user_limits.tokens_per_minute,
            tokens=prompt_tokens,
        )
    except BaseException:
        completion_release(held.reservation)
        raise
    return Admission(
        user,
        api_key,
        model,
        prompt_tokens,
        max_tokens,
        held.reservation,
        key_tokens_per_minute=held.key_limits.tokens_per_minute if held.key_limits else None,
        user_tokens_per_minute=held.user_limits.tokens_per_minute,
    )


def completion_release(reservation: Reservation) -> None:
    """Give a reservation back unused: its request was refused, or failed before the vendor call."""
    with transaction.atomic(savepoint=False):
        _give_back(reservation)


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


def completion_settle(
    *,
    admission: Admission,
    status: str,
    usage=None,
    text: str = "",
    request_id: str = "",
    endpoint: str = "dialogs",
    dialog=None,
    message=None,
) -> Settlement:
    """Bill the call (billed_usage): the reservation given back, the actual usage recorded."""
    from billing.ratelimit import rate_limit_add_tokens

    billed = billed_usage(admission, usage=usage, text=text)
    prompt, completion = billed.prompt_tokens, billed.completion_tokens
    settlement = usage_settle(
        reservation=admission.reservation,
        user=admission.user,
        model=admission.model,
        prompt_tokens=prompt,
        completion_tokens=completion,
        status=status,
        request_id=request_id,
        endpoint=endpoint,
        dialog=dialog,
        message=message,
    )
    # The window already holds the counted prompt; add the rest of what was actually used (where
    # tokens per minute are limited: elsewhere nothing counts them). After COMMIT (at once outside
    # a transaction): not a Redis round trip while the settled rows are locked, and a Redis
    # failure is logged, never a rollback of the reply and its bill.
    unseen = prompt + completion - admission.prompt_tokens
    subjects = [f"user:{admission.user.pk}"] if admission.user_tokens_per_minute else []
    if admission.key_tokens_per_minute:
        subjects.append(f"key:{admission.api_key.pk}")
    for subject in subjects:
        transaction.on_commit(functools.partial(rate_limit_add_tokens, subject=subject, tokens=unseen), robust=True)
    return settlement
