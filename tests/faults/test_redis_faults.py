"""Redis failing under the live gateway. Redis is optional (it holds the rate-limit and sign-in
counters): no request fails for it, no reply goes unbilled or is billed twice."""

import httpx2 as httpx
import pytest

from billing.models import Quota, Reservation, UsageRecord
from dialogs.models import Message
from tests.factories import make_dialog, make_key, set_quota

REQUESTS_PER_MINUTE = 5


@pytest.fixture(autouse=True)
def _same_minute(monkeypatch):
    """Every request of a test falls in one rate-limit window."""
    monkeypatch.setattr("billing.ratelimit.clock", lambda: 1_800_000_010.0)


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
