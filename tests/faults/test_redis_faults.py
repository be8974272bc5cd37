"""Redis failing under the live gateway: killed, hung, restarted. Redis is optional: it holds the
rate-limit and sign-in counters, which fall back to each process's memory while it fails
(common.counters), so no request fails for it, no reply goes unbilled or is billed twice, and
the gateway goes back to Redis by itself when it answers again."""

import httpx2 as httpx
import pytest
from django.core.cache import cache

from billing.models import Quota, Reservation, UsageRecord
from common import counters
from dialogs.models import Message
from tests.factories import make_dialog, make_key, password_for, set_quota

REQUESTS_PER_MINUTE = 5
NOW = 1_800_000_010.0
USER_REQUESTS = f"rl:req:user:{{}}:{int(NOW // 60)}"  # alice's requests this minute, by her id


@pytest.fixture(autouse=True)
def _same_window(monkeypatch):
    """Every request of a test falls in one rate-limit window and one sign-in window."""
    monkeypatch.setattr("billing.ratelimit.clock", lambda: NOW)
    monkeypatch.setattr("accounts.throttle.clock", lambda: NOW)


@pytest.fixture
def now(monkeypatch) -> list[float]:
    """The counters' clock: now[0] += counters.BREAK_SECONDS ends a break."""
    moment = [1000.0]
    monkeypatch.setattr(counters, "clock", lambda: moment[0])
    return moment


@pytest.fixture
def gateway(gateway_on_throwaway_redis, alice) -> str:
    set_quota(alice, requests_per_minute=REQUESTS_PER_MINUTE, tokens_per_minute=10_000)
    return gateway_on_throwaway_redis


@pytest.fixture
def key(alice) -> str:
    """Alice's API key, with rate limits of its own (two more counters in Redis)."""
    return make_key(alice, requests_per_minute=REQUESTS_PER_MINUTE, tokens_per_minute=10_000)[1]


def chat(url: str, key: str) -> httpx.Response:
    body = {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "Hello there"}]}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def messages(url: str, key: str) -> httpx.Response:
    body = {"model": "claude-3-sonnet", "max_tokens": 100, "messages": [{"role": "user", "content": "Hello there"}]}
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    return httpx.post(f"{url}/v1/messages", json=body, headers=headers, timeout=30)


def dialog_message(url: str, key: str) -> httpx.Response:
    dialog = make_dialog(Quota.objects.get(user__username="alice").user, model="gpt-3.5-turbo")
    return httpx.post(
        f"{url}/api/dialogs/{dialog.pk}/messages/",
        json={"content": "Hello there"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


ENDPOINTS = {"chat": (chat, 200), "messages": (messages, 200), "dialog": (dialog_message, 201)}


def assert_the_books_balance(user, replies: int) -> None:
    """One usage record per reply the vendor gave, the quota's `used` their sum, nothing held."""
    records = UsageRecord.objects.filter(user=user)
    assert records.count() == replies
    quota = Quota.objects.get(user=user)
    assert quota.used_tokens == sum(r.prompt_tokens + r.completion_tokens for r in records)
    assert quota.used_usd == sum(r.cost for r in records)
    assert quota.reserved_tokens == 0 and quota.reserved_usd == 0
    assert not Reservation.objects.filter(user=user).exists()


def healthz(url: str) -> tuple[int, dict]:
    response = httpx.get(f"{url}/healthz", timeout=30)
    return response.status_code, response.json()


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_redis_dying_while_the_vendor_answers_still_delivers_the_billed_reply(
    endpoint, gateway, key, alice, throwaway_redis, fake_openai, fake_anthropic
):
    send, ok = ENDPOINTS[endpoint]
    for fake in (fake_openai, fake_anthropic):
        fake.configure(usage=(40, 60))
        fake.on_request = throwaway_redis.kill  # after admission, before settlement

    response = send(gateway, key)

    assert response.status_code == ok, response.text
    assert_the_books_balance(alice, replies=1)
    assert UsageRecord.objects.get(user=alice).completion_tokens == 60
    if endpoint == "dialog":
        assert Message.objects.filter(role="assistant").count() == 1


def counters_logged(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "common.counters"]


def test_with_redis_down_requests_are_served_and_rate_limited_in_memory(
    gateway, key, alice, throwaway_redis, caplog, now
):
    throwaway_redis.kill()

    for send, ok in ENDPOINTS.values():
        assert send(gateway, key).status_code == ok
    assert chat(gateway, key).status_code == 200
    assert chat(gateway, key).status_code == 200  # the fifth request this minute
    refused = chat(gateway, key)

    assert refused.status_code == 429 and refused.headers["Retry-After"]
    assert_the_books_balance(alice, replies=5)
    [warning] = counters_logged(caplog)  # once per break, not once per request
    assert "ConnectionError" in warning
    assert healthz(gateway) == (
        200,
        {"status": "degraded", "checks": {"database": "ok", "redis": "down: ConnectionError"}},
    )


def test_the_gateway_goes_back_to_redis_by_itself_when_it_answers_again(
    gateway, key, alice, throwaway_redis, caplog, now
):
    throwaway_redis.kill()
    assert chat(gateway, key).status_code == 200  # counted in memory
    throwaway_redis.start()  # on the same port, empty
    assert healthz(gateway) == (200, {"status": "ok", "checks": {"database": "ok", "redis": "ok"}})

    now[0] += counters.BREAK_SECONDS
    assert chat(gateway, key).status_code == 200

    assert cache.get(USER_REQUESTS.format(alice.pk)) == 1  # counted in Redis again
    assert "answers again" in counters_logged(caplog)[-1]
    assert_the_books_balance(alice, replies=2)


def test_a_hung_redis_holds_up_one_request_per_break_not_every_request(
    gateway, key, alice, throwaway_redis, caplog, now
):
    assert chat(gateway, key).status_code == 200
    throwaway_redis.pause()  # connections are accepted, nothing answers: a socket timeout

    for send, ok in ENDPOINTS.values():
        assert send(gateway, key).status_code == ok

    [warning] = counters_logged(caplog)  # only the first request waited for Redis
    assert "TimeoutError" in warning
    assert healthz(gateway) == (
        200,
        {"status": "degraded", "checks": {"database": "ok", "redis": "down: TimeoutError"}},
    )
    throwaway_redis.resume()
    now[0] += counters.BREAK_SECONDS
    assert chat(gateway, key).status_code == 200
    assert cache.get(USER_REQUESTS.format(alice.pk)) == 2  # the first request and this one
    assert_the_books_balance(alice, replies=5)


def test_with_redis_down_sign_ins_are_still_throttled_in_memory(gateway, alice, throwaway_redis, now):
    throwaway_redis.kill()

    def sign_in(password: str) -> httpx.Response:
        body = {"username": "alice", "password": password}
        return httpx.post(f"{gateway}/api/auth/token/", json=body, timeout=30)

    assert sign_in(password_for("alice")).status_code == 200
    for _ in range(10):
        assert sign_in("a-guess").status_code == 401
    refused = sign_in(password_for("alice"))
    assert refused.status_code == 429 and refused.headers["Retry-After"]
