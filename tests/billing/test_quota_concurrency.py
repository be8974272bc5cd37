"""The quota guarantee: many concurrent requests of one user, through two server processes that
share PostgreSQL, never take recorded usage past the limit; every admitted request is recorded,
every refused one nowhere."""

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db.models import Sum

from billing.models import APIKey, Quota, Reservation, UsageRecord
from dialogs.models import Message
from tests.factories import access_token, make_dialog, make_key, set_quota
from tests.live_server import gateway_processes

pytestmark = pytest.mark.django_db(transaction=True)


def post(url: str, token: str, body: dict) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        error.read()
        return error.code


@pytest.mark.parametrize("redis", [False, True], ids=["postgres-only", "with-redis"])
def test_thirty_messages_at_once_never_pass_a_1000_token_quota(redis, alice, gpt35, fake_openai):
    fake_openai.configure(text="word " * 40, usage=(30, 60), first_byte_delay=0.3)
    set_quota(alice, token_limit=1000, period="daily", requests_per_minute=None)
    dialog = make_dialog(alice, model=gpt35)
    # The servers are other processes: they know alice by a token, never by her password.
    token = access_token(alice)
    env = {"OPENAI_BASE_URL": fake_openai.base_url, "OPENAI_API_KEY": "sk-test"}

    with gateway_processes(2, redis=redis, env=env) as (first, second):
        urls = [f"{(first, second)[i % 2]}/api/dialogs/{dialog.pk}/messages/" for i in range(30)]
        # Each message may use up to 100 tokens: its prompt plus max_tokens.
        prompt = "hello"
        with ThreadPoolExecutor(30) as pool:
            statuses = list(pool.map(lambda url: post(url, token, {"content": prompt, "max_tokens": 85}), urls))

    admitted, refused = statuses.count(201), statuses.count(429)
    assert admitted + refused == 30, statuses
    assert admitted > 0 and refused > 0
    used = UsageRecord.objects.filter(user=alice).aggregate(total=Sum("prompt_tokens") + Sum("completion_tokens"))
    assert used["total"] <= 1000
    assert UsageRecord.objects.filter(user=alice).count() == admitted
    assert Message.objects.filter(dialog=dialog, role="user").count() == admitted
    assert Message.objects.filter(dialog=dialog, role="assistant").count() == admitted
    quota = Quota.objects.get(user=alice)
    assert quota.used_tokens == used["total"]
    assert quota.reserved_tokens == 0 and not Reservation.objects.exists()


def test_sixty_calls_twenty_at_a_time_on_one_api_key_never_pass_its_limit_nor_fail(alice, seeded, fake_openai):
    # A call holds on the key's row and on the quota's; settling gives back on both. Both sides
    # must take the rows in the same order, or concurrent calls deadlock (and get 503s).
    fake_openai.configure(text="word " * 40, usage=(30, 60), first_byte_delay=0.02)
    key, secret = make_key(alice, name="batch job", token_limit=4000)
    env = {"OPENAI_BASE_URL": fake_openai.base_url, "OPENAI_API_KEY": "sk-test"}
    body = {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 85}

    with gateway_processes(2, redis=False, env=env) as urls:
        calls = [f"{urls[i % 2]}/v1/chat/completions" for i in range(60)]
        with ThreadPoolExecutor(20) as pool:
            statuses = list(pool.map(lambda url: post(url, secret, body), calls))

    admitted = statuses.count(200)
    assert admitted + statuses.count(429) == 60, {s: statuses.count(s) for s in set(statuses)}
    assert admitted > 0 and statuses.count(429) > 0
    records = UsageRecord.objects.filter(api_key=key)
    used = records.aggregate(total=Sum("prompt_tokens") + Sum("completion_tokens"))["total"]
    assert records.count() == admitted and used <= 4000
    key = APIKey.objects.get(pk=key.pk)
    assert key.used_tokens == used and key.reserved_tokens == 0
    quota = Quota.objects.get(user=alice)
    assert quota.used_tokens == used and quota.reserved_tokens == 0
    assert not Reservation.objects.exists()


def test_rate_limits_hold_across_processes_with_redis(alice, gpt35, fake_openai):
    import time

    set_quota(alice, requests_per_minute=5)
    dialog = make_dialog(alice, model=gpt35)
    token = access_token(alice)
    env = {"OPENAI_BASE_URL": fake_openai.base_url, "OPENAI_API_KEY": "sk-test"}

    with gateway_processes(2, redis=True, env=env) as urls:
        if time.time() % 60 > 50:  # keep all ten requests inside one one-minute window
            time.sleep(61 - time.time() % 60)
        statuses = [
            post(f"{urls[i % 2]}/api/dialogs/{dialog.pk}/messages/", token, {"content": "hi"}) for i in range(10)
        ]

    assert statuses.count(201) == 5 and statuses.count(429) == 5, statuses
