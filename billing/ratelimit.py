"""Requests and tokens per minute, per user (and per API key).

Counters live in the cache (common.counters): with REDIS_URL set they are Redis keys shared by
every server process (INCR is atomic, keys expire with their minute); without Redis, or while it
fails, they are per process, so each process allows the full rate. Fixed one-minute windows:
simple, and at most twice the rate across a window boundary, which is what per-minute limits
are for.
"""

import time

from common.counters import counter_add, counter_values
from common.errors import GatewayError


class RateLimited(GatewayError):
    status = 429
    type = "rate_limited"


clock = time.time  # tests pin it to one window


def _window() -> tuple[int, int]:
    now = clock()
    minute = int(now // 60)
    return minute, max(int(60 - now % 60), 1)


def _add(key: str, amount: int) -> int:
    return counter_add(key, amount, ttl=120)


def _refusal(limit: int, unit: str, retry_after: int) -> RateLimited:
    return RateLimited(
        f"Rate limit of {limit} {unit} per minute reached; retry in {retry_after} s.",
        limit=limit,
        retry_after=retry_after,
        headers={"Retry-After": str(retry_after)},
    )


def rate_limit_request(*, subject: str, requests_per_minute: int | None) -> None:
    """Count one request for `subject` ("user:7", "key:3") in this minute's window, or raise."""
    if requests_per_minute:
        minute, retry_after = _window()
        if _add(f"rl:req:{subject}:{minute}", 1) > requests_per_minute:
            raise _refusal(requests_per_minute, "requests", retry_after)


def rate_limit_tokens(*, subject: str, tokens_per_minute: int | None, tokens: int) -> None:
    """Count `tokens` prompt tokens for `subject` in this minute's window, or raise."""
    if tokens_per_minute:
        minute, retry_after = _window()
        key = f"rl:tok:{subject}:{minute}"
        used = counter_values([key])[key]
        if used + tokens > tokens_per_minute and used > 0:
            raise _refusal(tokens_per_minute, "tokens", retry_after)
        _add(key, tokens)


def rate_limit_add_tokens(*, subject: str, tokens: int) -> None:
    """Count tokens known only after the reply in this minute's window (negative: fewer than counted)."""
    if tokens:
        minute, _ = _window()
        _add(f"rl:tok:{subject}:{minute}", tokens)
