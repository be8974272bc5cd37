import asyncio
import threading
import time

import pytest
from asgiref.sync import ThreadSensitiveContext
from django.db import OperationalError

import common.db
from common.db import db_phase
from common.errors import GatewayError


def test_a_database_that_cannot_answer_is_a_503_with_retry_after_not_a_500():
    def phase():
        raise OperationalError("couldn't get a connection after 10.00 sec")

    with pytest.raises(GatewayError) as raised:
        asyncio.run(db_phase(phase))
    assert raised.value.status == 503
    assert raised.value.headers["Retry-After"] == "1"
    assert "retry" in raised.value.message


def test_no_more_phases_run_at_once_than_the_pool_has_connections(monkeypatch):
    monkeypatch.setattr(common.db, "_pool_size", lambda: 3)
    lock, running, most = threading.Lock(), 0, 0

    def phase():
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    async def request():
        async with ThreadSensitiveContext():  # as the ASGI handler runs each request: a thread of its own
            await db_phase(phase)

    async def burst():
        await asyncio.gather(*(request() for _ in range(12)))

    asyncio.run(burst())
    assert most == 3
