from asgiref.sync import sync_to_async
from django.db import OperationalError, connection

from gateway.errors import GatewayError


async def db_phase(fn, /, *args, **kwargs):
    """Run one short sync DB phase (e.g. reserve, settle) from async code.

    The connection goes back (to the pool) at the end of the phase, not at the end of the
    request: a streamed reply lasts seconds, and holding a connection for all of it runs the
    database out of connections at a few hundred streams. Inside an outer transaction (tests)
    the connection is left alone.
    """

    def phase():
        try:
            return fn(*args, **kwargs)
        except OperationalError as exc:
            # No connection free in the pool in time (a burst), or the database is down: the
            # client may retry; a 500 would say the gateway is broken.
            raise GatewayError("The database is busy or unavailable; retry shortly.", status=503,
                               type="service_unavailable", headers={"Retry-After": "1"}) from exc
        finally:
            if not connection.in_atomic_block:
                connection.close()

    return await sync_to_async(phase)()
