"""Settlements kept on disk while the database was unavailable are applied once it is back: once
each, however often the spool is replayed (a crash between applying a line and emptying the
file replays it)."""

import io
from decimal import Decimal

import pytest
from django.core.management import call_command

from billing.models import DailyUsage, Quota, Reservation, UsageRecord
from billing.settlement import new_settlement_id, settlement_params, usage_settle
from billing.spool import settlement_spool, spool_pending, spool_replay
from llm_models.providers.base import Usage
from tests.factories import reserve, set_quota

pytestmark = pytest.mark.django_db


@pytest.fixture
def spool(settings, tmp_path):
    settings.SETTLEMENT_SPOOL_DIR = tmp_path / "spool"
    return settings.SETTLEMENT_SPOOL_DIR


def spooled_settlement(user, model, tokens=600):
    reservation = reserve(user, tokens, Decimal("0.5"))
    params = settlement_params(
        reservation=reservation,
        user=user,
        model=model,
        usage=Usage(100, 50),
        status="ok",
        settlement=new_settlement_id(),
        endpoint="openai",
    )
    settlement_spool(params)
    return params


def test_a_spooled_settlement_is_billed_when_replayed(alice, gpt35, spool):
    set_quota(alice, token_limit=1000)
    params = spooled_settlement(alice, gpt35)
    assert spool_pending()
    assert UsageRecord.objects.count() == 0

    call_command("spool_replay", stdout=io.StringIO())

    assert not spool_pending()
    record = UsageRecord.objects.get()
    assert (record.total_tokens, record.settlement.hex, record.endpoint) == (150, params.settlement, "openai")
    quota = Quota.objects.get(user=alice)
    assert (quota.used_tokens, quota.reserved_tokens, quota.reserved_usd) == (150, 0, 0)
    assert DailyUsage.objects.get(user=alice).requests == 1
    assert not Reservation.objects.exists()


def test_a_settlement_applied_twice_is_billed_once(alice, gpt35, spool):
    set_quota(alice, token_limit=1000)
    spooled_settlement(alice, gpt35)
    lines = next(spool.glob("*.jsonl")).read_bytes()
    spool_replay()
    # A crash after applying, before the file was emptied: the same lines are there again.
    next(spool.glob("*.jsonl"), spool / "settlements-crashed-1.jsonl").write_bytes(lines)

    assert spool_replay() == 1

    assert UsageRecord.objects.count() == 1
    quota = Quota.objects.get(user=alice)
    assert (quota.used_tokens, quota.reserved_tokens) == (150, 0)
    assert DailyUsage.objects.get(user=alice).requests == 1


def test_a_settlement_retried_after_it_was_applied_bills_nothing_more(alice, gpt35):
    set_quota(alice, token_limit=1000)
    reservation = reserve(alice, 600)
    settlement = new_settlement_id()
    for _ in range(2):
        usage_settle(
            reservation=reservation, user=alice, model=gpt35, usage=Usage(100, 50), status="ok", settlement=settlement
        )
    assert UsageRecord.objects.count() == 1
    assert Quota.objects.get(user=alice).used_tokens == 150


def test_a_line_cut_short_by_a_crash_is_skipped(alice, gpt35, spool):
    set_quota(alice, token_limit=1000)
    spooled_settlement(alice, gpt35)
    with next(spool.glob("*.jsonl")).open("a") as file:
        file.write('{"reservation": 1, "us')

    assert spool_replay() == 1
    assert not spool_pending()
