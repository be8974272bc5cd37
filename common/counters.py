"""Counters that expire, for the rate limits (billing.ratelimit) and the sign-in throttle
(accounts.throttle): in the cache, which is Redis when REDIS_URL is set, shared by every server
process.

Redis is optional, and a counter is never worth a failed request: when the cache fails, the
counters fall back to this process's memory (each process then counts on its own, as without
Redis) and the cache is left alone for BREAK_SECONDS, so that requests meanwhile do not each wait
for a connect timeout. The first counter after the break tries the cache again: the gateway goes
back to Redis by itself when it answers. One warning is logged per break, not one per request,
and one line when Redis answers again.

What the memory counted during a break is not carried over to Redis: a window that spans the
outage may allow up to twice its limit, as across a window boundary.
"""

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from django.core.cache import cache
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.locmem import LocMemCache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

BREAK_SECONDS = 10
# What a failing Redis raises through django-redis (or a socket, directly).
CACHE_ERRORS = (RedisError, OSError)

clock = time.monotonic  # tests move it past a break
_memory = LocMemCache("common.counters", {"OPTIONS": {"MAX_ENTRIES": 100_000}})
_broken_until: float | None = None  # while the cache is left alone; None: it is in use
_lock = threading.Lock()  # requests failing together start one break, with one warning

T = TypeVar("T")


def _counted(operation: Callable[[BaseCache], T]) -> T:
    """`operation` on the cache, or on this process's memory while the cache fails."""
    global _broken_until
    if _broken_until is not None and clock() < _broken_until:
        return operation(_memory)
    try:
        result = operation(cache)
    except CACHE_ERRORS as exc:
        with _lock:
            starts_a_break = _broken_until is None or clock() >= _broken_until
            _broken_until = clock() + BREAK_SECONDS
        if starts_a_break:
            logger.warning(
                "The cache (Redis) failed (%s): rate limits and sign-in throttling count in each process's "
                "memory; trying the cache again in %s s.",
                type(exc).__name__,
                BREAK_SECONDS,
            )
        return operation(_memory)
    if _broken_until is not None:
        with _lock:
            ends_a_break, _broken_until = _broken_until is not None, None
        if ends_a_break:
            logger.info("The cache (Redis) answers again: rate limits and sign-in throttling count in it.")
    return result


def counter_add(key: str, amount: int, *, ttl: int) -> int:
    """Add `amount` to the counter `key` (made with `ttl` seconds to live by its first add); its
    new value."""

    def add(backend: BaseCache) -> int:
        # One round trip in the common case: the counter exists after its first add.
        try:
            return backend.incr(key, amount)
        except ValueError:  # the first add (or the counter just expired)
            if backend.add(key, amount, ttl):
                return amount
            return backend.incr(key, amount)  # another request made it in between

    return _counted(add)


def counter_values(keys: list[str]) -> dict[str, int]:
    """The counters' values; a counter not made yet (or expired) is 0."""
    found = _counted(lambda backend: backend.get_many(keys))
    return {key: found.get(key, 0) for key in keys}


def counters_forget() -> None:
    """Back to the cache, the memory's counts dropped (tests start from here)."""
    global _broken_until
    _broken_until = None
    _memory.clear()
