"""The vendor calls in flight in this process, so that a server shutting down can end them itself,
settled, before it exits (gateway.server.Worker): stopped any other way (the process killed at
the end of its graceful timeout) a call's settlement never runs, and what it sent is never billed."""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

_calls: set[asyncio.Task] = set()


@contextmanager
def call_in_flight() -> Iterator[None]:
    """While inside, the current task runs a vendor call that cancelling ends settled (its
    settle-on-cancel path runs before the task ends)."""
    task = asyncio.current_task()
    if task is None:
        yield
        return
    _calls.add(task)
    try:
        yield
    finally:
        _calls.discard(task)


async def calls_cancel(*, timeout: float) -> int:
    """Cancel this event loop's calls in flight and wait up to `timeout` seconds for them to
    settle. Returns how many were cancelled."""
    loop = asyncio.get_running_loop()
    tasks = [task for task in _calls if task.get_loop() is loop and not task.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=timeout)
    return len(tasks)
