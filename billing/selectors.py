"""Reads for reports: usage by model, day and user, from the daily aggregates."""

from datetime import date, timedelta
from typing import Any

from django.db.models import F, QuerySet, Sum
from django.utils import timezone

from billing.models import DailyUsage
from common.money import usd


def usage_summary(
    *,
    start: date | None = None,
    end: date | None = None,
    user_id: int | None = None,
    model: str | None = None,
    by_user: bool = False,
) -> dict[str, Any]:
    """Totals by model and by day (and by user for staff), read from the daily aggregates."""
    today = timezone.now().date()
    end = end or today
    start = start or end - timedelta(days=30)
    rows = DailyUsage.objects.filter(day__gte=start, day__lte=end)
    if user_id is not None:
        rows = rows.filter(user_id=user_id)
    if model:
        rows = rows.filter(model_name=model)
    sums = {
        "requests": Sum("requests"),
        "prompt_tokens": Sum("prompt_tokens"),
        "completion_tokens": Sum("completion_tokens"),
        "cost": Sum("cost"),
    }

    def shaped(queryset: QuerySet[DailyUsage], *keys: str, **named: F) -> list[dict[str, Any]]:
        out = []
        for row in queryset.values(*keys, **named).annotate(**sums).order_by(*keys, *named):
            row["cost"] = usd(row["cost"])
            row["total_tokens"] = (row["prompt_tokens"] or 0) + (row["completion_tokens"] or 0)
            out.append(row)
        return out

    result = {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "total": _total(rows, sums),
        "by_model": shaped(rows, "model_name"),
        "by_day": shaped(rows, "day"),
    }
    if by_user:
        result["by_user"] = shaped(rows, "user_id", username=F("user__username"))
    return result


def _total(rows: QuerySet[DailyUsage], sums: dict[str, Sum]) -> dict[str, Any]:
    total = rows.aggregate(**sums)
    total = {key: value or 0 for key, value in total.items()}
    total["cost"] = usd(total["cost"])
    total["total_tokens"] = total["prompt_tokens"] + total["completion_tokens"]
    return total
