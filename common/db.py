import asyncio
import logging
import time
import weakref

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import OperationalError, connection

from common import metrics
from common.errors import GatewayError

logger = logging.getLogger(__name__)

# Per event loop (one per worker; tests make many): how many DB phases may run at once.
_slots: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]" = weakref.WeakKeyDictionary()


class DatabaseUnavailable(GatewayError):
    """The database is down or, despite the slots, no connection came in time: the client may
    retry; a 500 would say the gateway is broken."""

    status = 503
    type = "service_unavailable"

    def __init__(self) -> None:
        super().__init__("The database is busy or unavailable; retry shortly.", headers={"Retry-After": "1"})


def _pool_size() -> int:
    pool = settings.DATABASES["default"].get("OPTIONS", {}).get("pool")
    return pool["max_size"] if isinstance(pool, dict) else 20


def _phase_slots() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slots = _slots.get(loop)
    if slots is None:
        slots = _slots[loop] = asyncio.Semaphore(_pool_size())
    return slots


async def db_phase(fn, /, *args, **kwargs):
    """Run one short sync DB phase (e.g. reserve, settle) from async code.

    The connection goes back (to the pool) at the end of the phase, not at the end of the
    request: a streamed reply lasts seconds, and holding a connection for all of it runs the
    database out of connections at a few hundred streams. Inside an outer transaction (tests)
    the connection is left alone.

    At most as many phases run at once as the pool has connections: in a burst (1,000 streams
    opened at once) the rest wait here, in the event loop, in order and without a timeout,
    instead of each holding a thread that waits for a connection and gives up after the pool's
    timeout.
    """

    waiting = time.monotonic()

    def phase():
        metrics.db_phase_wait_seconds.observe(time.monotonic() - waiting)
        try:
            return fn(*args, **kwargs)
        except OperationalError as exc:
            logger.warning("A database phase failed: %s", exc)
            raise DatabaseUnavailable() from exc
        finally:
            if not connection.in_atomic_block:
                connection.close()

    async with _phase_slots():
        return await sync_to_async(phase)()
