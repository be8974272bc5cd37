"""Quota periods: when one starts, when it ends."""

import calendar
from datetime import datetime, timedelta

from django.db import models


class Period(models.TextChoices):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    NONE = "none", "none (a total)"


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
