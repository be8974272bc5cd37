"""A user's quota: made on first use, rolled into each new period, edited by staff, reset.

These are the only writes of a quota's limits and counters outside the hold and settlement
statements (billing.sql): the REST API, the admin and the commands all come through here.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.utils import timezone

from billing.models import Quota
from billing.periods import period_start

# What staff may change; the counters move only by holds, settlements and resets.
QUOTA_EDITABLE = ["unlimited", "token_limit", "usd_limit", "period", "requests_per_minute", "tokens_per_minute"]


def quota_get(*, user: User) -> Quota:
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


def quota_save(*, quota: Quota, changed: Iterable[str]) -> None:
    """Save `quota` after an edit of the fields named in `changed` (the admin's forms edit the
    instance first). A new quota starts its period now, and so does one whose period changed
    (daily -> monthly starts a fresh month). Only the edited fields are written: the counters in
    memory may be stale, and requests in flight move them."""
    changed = [name for name in changed if name in QUOTA_EDITABLE]
    if quota.period_start is None or "period" in changed:
        quota.period_start = period_start(quota.period, timezone.now())
    if quota.pk is None:
        quota.save()
    else:
        quota.save(update_fields=[*changed, "period_start", "updated_at"])


def quota_update(*, quota: Quota, **fields: Any) -> Quota:
    """Change the limits, rates or period of `quota` (only QUOTA_EDITABLE fields)."""
    unknown = set(fields) - set(QUOTA_EDITABLE)
    if unknown:
        raise TypeError(f"Not editable: {', '.join(sorted(unknown))}")
    changed = [name for name, value in fields.items() if getattr(quota, name) != value]
    for name, value in fields.items():
        setattr(quota, name, value)
    quota_save(quota=quota, changed=changed)
    return quota


def quota_reset(*, quota: Quota, now: datetime | None = None) -> None:
    """Zero what `quota` has used (never the usage records) and start its period again."""
    now = now or timezone.now()
    Quota.objects.filter(pk=quota.pk).update(
        used_tokens=0, used_usd=0, last_reset_at=now, period_start=period_start(quota.period, now)
    )


@dataclass
class ResetResult:
    user: str
    used_tokens: int
    used_usd: Decimal


def quotas_reset(*, username: str | None = None, period: str | None = None, dry_run: bool = False) -> list[ResetResult]:
    """quota_reset on the chosen quotas (all by default); what each had used."""
    quotas: QuerySet[Quota] = Quota.objects.select_related("user").order_by("user__username")
    if username:
        quotas = quotas.filter(user__username=username)
    if period:
        quotas = quotas.filter(period=period)
    results = [ResetResult(q.user.get_username(), q.used_tokens, q.used_usd) for q in quotas]
    if not dry_run:
        now = timezone.now()
        for quota in quotas:
            quota_reset(quota=quota, now=now)
    return results
