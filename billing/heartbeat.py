"""The heartbeat of a server process (billing.leases): every quarter lease it renews the leases of
the process's reservations in flight and releases those whose lease has lapsed (a dead process's).
One task per event loop, started by the server when a connection opens
(gateway.server.HttpProtocol): a process that serves requests beats."""

import asyncio
import logging
import weakref

from django.conf import settings

from billing.admission import reservations_release_stale
from billing.leases import leases_renew
from common.db import db_phase

logger = logging.getLogger(__name__)

_beating: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task]" = weakref.WeakKeyDictionary()


def heartbeat_start() -> None:
    """Start this event loop's heartbeat, unless it beats already. Call it from the loop."""
    loop = asyncio.get_running_loop()
    task = _beating.get(loop)
    if task is None or task.done():
        _beating[loop] = loop.create_task(_beat(), name="reservation-heartbeat")


def heartbeats_stop() -> None:
    """Stop every event loop's heartbeat (a process about to lose its database, e.g. a test run
    whose test database is dropped next)."""
    for loop, task in list(_beating.items()):
        if not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel)
    _beating.clear()


def _beat_once() -> None:
    leases_renew()
    released = reservations_release_stale()
    if released:
        logger.warning("Released %d reservation(s) whose server process stopped renewing them.", released)


async def _beat() -> None:
    while True:
        await asyncio.sleep(settings.RESERVATION_LEASE_SECONDS / 4)
        try:
            await db_phase(_beat_once)
        except Exception:
            # A database outage: the next beat tries again (a lease outlives three missed beats).
            logger.exception("The reservation heartbeat failed.")
