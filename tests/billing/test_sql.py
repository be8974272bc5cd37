"""Each of billing's hot statements, on PostgreSQL, takes the rows of a user in the one order
docs/quotas.md states: the day's, then the key's, then the quota's. The other order deadlocks
concurrent requests.

How: another connection locks one of the rows; the statement runs and waits for it; a third
connection then tries each row with NOWAIT. Rows the statement takes before the locked one are
already its own (NOWAIT fails); rows it takes after are still free.
"""

import threading
import time
import uuid
from datetime import timedelta
from decimal import Decimal

import psycopg
import pytest
from django.db import connection, transaction
from django.utils import timezone

from billing.admission import quota_reserve
from billing.keys import api_key_create
from billing.models import APIKey, DailyUsage, Quota
from billing.periods import Period, period_start
from billing.quotas import quota_get
from billing.sql import HoldParams, SettleParams, statements
from llm_models.models import LLMModel

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="PostgreSQL's row locks"),
]


def connect() -> psycopg.Connection:
    db = connection.settings_dict
    return psycopg.connect(
        dbname=db["NAME"], user=db["USER"], password=db["PASSWORD"] or None, host=db["HOST"], port=db["PORT"] or None
    )


def row_lock(table: type, pk: int) -> str:
    return f'SELECT 1 FROM "{table._meta.db_table}" WHERE id = {int(pk)} FOR NO KEY UPDATE'


def wait_until_blocked(observer: psycopg.Connection, thread: threading.Thread, errors: list) -> None:
    for _ in range(200):
        if not thread.is_alive():
            raise AssertionError(f"the statement ended without waiting for the locked row: {errors}")
        waiting = observer.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        ).fetchone()[0]
        if waiting:
            return
        time.sleep(0.02)
    raise AssertionError("the statement never waited for the locked row")


def is_free(observer: psycopg.Connection, lock: str) -> bool:
    with observer.transaction():
        try:
            observer.execute(lock + " NOWAIT")
        except psycopg.errors.LockNotAvailable:
            return False
    return True


def order_of_locks(statement, rows: dict[str, str]) -> list[str]:
    """The order in which `statement()` (run in a thread, on its own connection) takes `rows`."""
    seen = []
    holder, observer = connect(), connect()
    observer.autocommit = True
    try:
        for blocked_at, lock in rows.items():
            with holder.transaction():
                holder.execute(lock)
                errors: list[Exception] = []

                def run(errors=errors):
                    try:
                        statement()
                    except Exception as exc:  # reported below, in the test's thread
                        errors.append(exc)
                    finally:
                        connection.close()

                thread = threading.Thread(target=run)
                thread.start()
                wait_until_blocked(observer, thread, errors)
                taken_before = [name for name, other in rows.items() if other != lock and not is_free(observer, other)]
            thread.join(10)
            assert not errors, errors
            seen.append((len(taken_before), blocked_at))
    finally:
        holder.close()
        observer.close()
    return [name for _, name in sorted(seen)]


@pytest.fixture
def spender(django_user_model, seeded):
    user = django_user_model.objects.create_user("alice", "alice@example.com", "pw")
    quota = quota_get(user=user)
    Quota.objects.filter(pk=quota.pk).update(token_limit=1_000_000)
    key, _ = api_key_create(user=user, name="batch job")
    model = LLMModel.objects.get(name="gpt-3.5-turbo")
    day = DailyUsage.objects.create(user=user, model_name=model.name, day=timezone.now().date())
    return user, key, model, quota, day


def hold_params(user, key, model) -> HoldParams:
    now = timezone.now()
    return HoldParams(
        user=user.pk,
        key=key.pk,
        model=model.pk,
        tokens=100,
        cost=Decimal("0.001"),
        now=now,
        expires=now + timedelta(minutes=5),
        daily=period_start(Period.DAILY, now),
        weekly=period_start(Period.WEEKLY, now),
        monthly=period_start(Period.MONTHLY, now),
    )


def test_a_hold_locks_the_key_then_the_quota(spender):
    user, key, model, quota, _ = spender
    rows = {"key": row_lock(APIKey, key.pk), "quota": row_lock(Quota, quota.pk)}

    def hold():
        assert statements().hold(hold_params(user, key, model)).reservation_id is not None

    assert order_of_locks(hold, rows) == ["key", "quota"]


def test_a_settlement_locks_the_day_then_the_key_then_the_quota(spender):
    user, key, model, quota, day = spender
    rows = {
        "day": row_lock(DailyUsage, day.pk),
        "key": row_lock(APIKey, key.pk),
        "quota": row_lock(Quota, quota.pk),
    }
    reservations = [quota_reserve(user=user, api_key=key, model=model, tokens=100, cost=Decimal(0)) for _ in rows]

    def settle():
        now = timezone.now()
        statements().settle(
            SettleParams(
                reservation=reservations.pop().pk,
                user=user.pk,
                key=key.pk,
                dialog=None,
                message=None,
                model=model.pk,
                model_name=model.name,
                endpoint="openai",
                prompt=10,
                completion=5,
                cached=0,
                cache_written=0,
                cost=Decimal("0.0001"),
                status="ok",
                request_id="",
                gateway_request_id="req_test",
                now=now,
                day=now.date(),
                settlement=uuid.uuid4().hex,
            )
        )

    assert order_of_locks(settle, rows) == ["day", "key", "quota"]
    assert DailyUsage.objects.get(pk=day.pk).requests == 3


def test_giving_a_reservation_back_locks_the_key_then_the_quota(spender):
    user, key, model, quota, _ = spender
    rows = {"key": row_lock(APIKey, key.pk), "quota": row_lock(Quota, quota.pk)}
    reservations = [quota_reserve(user=user, api_key=key, model=model, tokens=100, cost=Decimal(0)) for _ in rows]

    def give_back():
        with transaction.atomic():
            assert statements().give_back(reservations.pop())

    assert order_of_locks(give_back, rows) == ["key", "quota"]
    assert Quota.objects.get(pk=quota.pk).reserved_tokens == 0
