"""Failed sign-ins, counted per account and per client address, so that guessing passwords is
slow: past the limit a sign-in is refused (429 with Retry-After) until the window ends, even
with the right password, which is never checked meanwhile.

Counters live in the cache (common.counters): with REDIS_URL set they are Redis keys shared by
every server process; without it, or while it fails, each process counts its own. Fixed windows
(as billing.ratelimit's): simple, at most twice the limit across a window boundary, and never a
lock that outlasts its window.
"""

import hashlib
import time

from django.conf import settings
from django.http import HttpRequest
from rest_framework.exceptions import Throttled

from common.counters import counter_add, counter_values

clock = time.time  # tests move it past a window


class SignInThrottled(Throttled):
    """429 with Retry-After from the API; the admin's login form shows its message."""

    def __init__(self, retry_after: int):
        super().__init__(detail=f"Too many failed sign-ins; try again in {retry_after} s.")
        self.wait = retry_after  # set after: DRF would append its own sentence to the message


def _window() -> tuple[int, int]:
    """This window's number and the seconds left in it."""
    now, length = clock(), settings.SIGN_IN_WINDOW_SECONDS
    return int(now // length), max(int(length - now % length), 1)


def _counters(request: HttpRequest | None, username: str) -> list[tuple[str, int]]:
    """(cache key, limit) of the account's counter and, where known, the client address's; a
    limit of 0 turns its counter off."""
    window, _ = _window()
    account = hashlib.sha256(username.lower().encode()).hexdigest()[:32]
    counters = [(f"signin:account:{account}:{window}", settings.SIGN_IN_FAILURES_PER_ACCOUNT)]
    address = request.META.get("REMOTE_ADDR") if request is not None else None
    if address:
        counters.append((f"signin:address:{address}:{window}", settings.SIGN_IN_FAILURES_PER_ADDRESS))
    return [(key, limit) for key, limit in counters if limit > 0]


def sign_in_check(*, request: HttpRequest | None, username: str) -> None:
    """Raise SignInThrottled if the account or the address has failed too often this window."""
    counters = _counters(request, username)
    counts = counter_values([key for key, _ in counters])
    if any(counts[key] >= limit for key, limit in counters):
        _, retry_after = _window()
        raise SignInThrottled(retry_after)


def sign_in_failed(*, request: HttpRequest | None, username: str) -> None:
    for key, _ in _counters(request, username):
        # A key lives a window past its own, then goes.
        counter_add(key, 1, ttl=2 * settings.SIGN_IN_WINDOW_SECONDS)
