import asyncio

import pytest
from django.db import OperationalError

from gateway.db import db_phase
from gateway.errors import GatewayError


def test_a_database_that_cannot_answer_is_a_503_with_retry_after_not_a_500():
    def phase():
        raise OperationalError("couldn't get a connection after 10.00 sec")

    with pytest.raises(GatewayError) as raised:
        asyncio.run(db_phase(phase))
    assert raised.value.status == 503
    assert raised.value.headers["Retry-After"] == "1"
    assert "retry" in raised.value.message
