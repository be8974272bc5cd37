from asgiref.sync import sync_to_async
from django.db import connection


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
        finally:
            if not connection.in_atomic_block:
                connection.close()

    return await sync_to_async(phase)()
