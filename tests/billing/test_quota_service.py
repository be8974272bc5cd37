from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from billing.admission import QuotaExceeded, reservation_release, reservations_release_stale
from billing.leases import lease_end, leases_in_flight, leases_renew
from billing.models import DailyUsage, Quota, Reservation, UsageRecord
from billing.quotas import quota_get
from billing.settlement import usage_settle
from llm_models.providers.base import Usage
from tests.factories import make_key, reserve, set_quota

pytestmark = pytest.mark.django_db


def test_a_new_user_gets_the_default_quota(alice, settings):
    quota = quota_get(user=alice)
    assert quota.token_limit == settings.DEFAULT_QUOTA["token_limit"]
    assert quota.period == settings.DEFAULT_QUOTA["period"]


def test_it_admits_requests_until_the_worst_case_would_pass_the_limit(alice):
    set_quota(alice, token_limit=1000)
    reserve(alice, 600)
    with pytest.raises(QuotaExceeded) as refused:
        reserve(alice, 500)
    body = refused.value.body()["error"]
    assert body["type"] == "quota_exceeded"
    assert (body["limit"], body["used"], body["reserved"], body["remaining"]) == (1000, 0, 600, 400)
    assert body["resets_at"]
    assert Reservation.objects.filter(user=alice).count() == 1  # the refused one left nothing


def test_it_refuses_on_the_usd_limit_too(alice):
    set_quota(alice, token_limit=None, usd_limit=Decimal("0.01"))
    with pytest.raises(QuotaExceeded) as refused:
        reserve(alice, 10, Decimal("0.02"))
    assert refused.value.body()["error"]["unit"] == "usd"


def test_unlimited_users_are_never_refused(alice):
    set_quota(alice, token_limit=1, usd_limit=Decimal("0.01"), unlimited=True)

    first = reserve(alice, 10_000, Decimal("5"))
    second = reserve(alice, 10_000, Decimal("5"))

    assert (first.tokens, second.tokens) == (10_000, 10_000)
    quota = Quota.objects.get(user=alice)
    # Both are held on her quota like anyone's: settling moves them into what she used.
    assert (quota.reserved_tokens, quota.reserved_usd) == (20_000, Decimal("10"))
    assert quota.remaining_tokens is None


def test_settling_moves_the_reservation_into_used_and_records_usage(alice, gpt35):
    set_quota(alice, token_limit=1000)
    reservation = reserve(alice, 600, Decimal("0.5"))
    usage_settle(reservation=reservation, user=alice, model=gpt35, usage=Usage(100, 50), status="ok")
    quota = Quota.objects.get(user=alice)
    assert (quota.used_tokens, quota.reserved_tokens, quota.reserved_usd) == (150, 0, 0)
    assert quota.used_usd == gpt35.cost(100, 50) == Decimal("0.000125")
    record = UsageRecord.objects.get(user=alice)
    assert (record.prompt_tokens, record.completion_tokens, record.cost) == (100, 50, Decimal("0.000125"))
    daily = DailyUsage.objects.get(user=alice)
    assert (daily.requests, daily.prompt_tokens, daily.completion_tokens) == (1, 100, 50)
    assert not Reservation.objects.exists()


def test_a_failed_request_gives_its_reservation_back(alice, gpt35):
    set_quota(alice, token_limit=1000)
    reservation = reserve(alice, 900)
    usage_settle(reservation=reservation, user=alice, model=gpt35, usage=Usage(0, 0), status="error")

    quota = Quota.objects.get(user=alice)
    assert (quota.used_tokens, quota.reserved_tokens, quota.used_usd) == (0, 0, 0)
    assert quota.remaining_tokens == 1000
    assert not Reservation.objects.exists()
    record = UsageRecord.objects.get(user=alice)
    assert (record.status, record.prompt_tokens, record.completion_tokens, record.cost) == ("error", 0, 0, 0)
    assert reserve(alice, 900).tokens == 900  # the full quota is there again


def test_stale_reservations_are_released_by_command_and_lazily(alice, gpt35):
    set_quota(alice, token_limit=1000)
    reservation = reserve(alice, 900)
    Reservation.objects.filter(pk=reservation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    reserve(alice, 900)  # lazily: the dead worker's reservation was in the way
    assert Quota.objects.get(user=alice).reserved_tokens == 900
    Reservation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    call_command("release_stale_reservations")
    assert Quota.objects.get(user=alice).reserved_tokens == 0


def test_the_process_renews_the_leases_of_its_calls_in_flight_and_no_others(alice, gpt35):
    set_quota(alice, token_limit=1000)
    running, settled, released = reserve(alice, 300), reserve(alice, 300), reserve(alice, 300)
    usage_settle(reservation=settled, user=alice, model=gpt35, usage=Usage(10, 10), status="ok")
    reservation_release(reservation=released)
    assert running.pk in leases_in_flight() and {settled.pk, released.pk}.isdisjoint(leases_in_flight())
    # Another process's reservation (this one does not renew it), whose lease has lapsed.
    orphan = reserve(alice, 100)
    lease_end(orphan.pk)
    Reservation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    assert leases_renew() == 1
    assert reservations_release_stale() == 1
    assert list(Reservation.objects.values_list("pk", flat=True)) == [running.pk]
    assert Reservation.objects.get().expires_at > timezone.now()
    assert not Reservation.objects.filter(pk=orphan.pk).exists()
    assert Quota.objects.get(user=alice).reserved_tokens == running.tokens


def test_settling_a_reservation_already_released_does_not_free_it_twice(alice, gpt35):
    set_quota(alice, token_limit=1000)
    reservation = reserve(alice, 500)
    Reservation.objects.filter(pk=reservation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert reservations_release_stale(user=alice) == 1
    usage_settle(reservation=reservation, user=alice, model=gpt35, usage=Usage(10, 10), status="ok")
    quota = Quota.objects.get(user=alice)
    assert (quota.used_tokens, quota.reserved_tokens) == (20, 0)


def test_the_period_rolls_over_on_the_first_request_after_the_boundary(alice):
    quota = set_quota(alice, token_limit=1000, period="daily", used_tokens=1000)
    Quota.objects.filter(pk=quota.pk).update(period_start=quota.period_start - timedelta(days=1))
    reserve(alice, 1000)
    quota.refresh_from_db()
    assert quota.used_tokens == 0 and quota.last_reset_at is not None


def test_reset_quotas_resets_chosen_users_and_keeps_usage_records(alice, bob, gpt35, capsys):
    set_quota(alice, used_tokens=500, period="daily")
    set_quota(bob, used_tokens=700, period="monthly")
    UsageRecord.objects.create(user=alice, model=gpt35, model_name=gpt35.name, prompt_tokens=500, status="ok")

    call_command("reset_quotas", "--dry-run")
    assert Quota.objects.get(user=alice).used_tokens == 500
    assert "would reset alice: 500 tokens" in capsys.readouterr().out

    call_command("reset_quotas", "--period", "daily")
    assert Quota.objects.get(user=alice).used_tokens == 0
    assert Quota.objects.get(user=bob).used_tokens == 700

    call_command("reset_quotas", "--user", "bob")
    assert Quota.objects.get(user=bob).used_tokens == 0
    assert UsageRecord.objects.count() == 1


def test_a_key_deleted_mid_request_still_settles_on_the_quota(alice, gpt35):
    set_quota(alice, token_limit=1000)
    key, _ = make_key(alice, name="deleted mid-request")
    reservation = reserve(alice, 600, api_key=key, model=gpt35)
    key.delete()
    usage_settle(reservation=reservation, user=alice, model=gpt35, usage=Usage(100, 50), status="ok")
    quota = Quota.objects.get(user=alice)
    assert (quota.used_tokens, quota.reserved_tokens) == (150, 0)
    record = UsageRecord.objects.get(user=alice)
    assert record.api_key is None and record.completion_tokens == 50
