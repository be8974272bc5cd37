"""What a request without max_tokens holds and sends: the reply may be as long as the model allows
after the prompt, and that is what is held; a prompt that fits is never refused for want of a
number the client did not give; and the vendor is sent only what the client asked for, under the
client's own name for it, unless the gateway has to cap the reply."""

import openai
import pytest

from billing.models import Quota, Reservation
from llm_models.providers.tokens import count_messages
from tests.factories import set_quota

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def sdk(live, alice_key) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live}/v1", api_key=alice_key, max_retries=0)


def test_a_long_prompt_without_max_tokens_fits_where_the_model_limit_would_not(sdk, fake_openai):
    fake_openai.configure(usage=(13_000, 5))
    long_prompt = [{"role": "user", "content": "word " * 13_000}]  # gpt-3.5-turbo: 16,385 window, 4,096 out

    completion = sdk.chat.completions.create(model="gpt-3.5-turbo", messages=long_prompt)

    assert completion.choices[0].message.content
    sent = fake_openai.last.json
    assert "max_tokens" not in sent and "max_completion_tokens" not in sent  # the window caps the reply


def test_no_max_tokens_is_sent_when_the_client_gave_none(sdk, fake_openai):
    sdk.chat.completions.create(model="gpt-3.5-turbo", messages=HELLO)
    sent = fake_openai.last.json
    assert "max_tokens" not in sent and "max_completion_tokens" not in sent


def test_the_clients_name_for_max_tokens_is_the_one_sent(sdk, fake_openai):
    sdk.chat.completions.create(model="gpt-3.5-turbo", messages=HELLO, max_completion_tokens=30)
    assert fake_openai.last.json["max_completion_tokens"] == 30 and "max_tokens" not in fake_openai.last.json

    sdk.chat.completions.create(model="gpt-3.5-turbo", messages=HELLO, max_tokens=31)
    assert fake_openai.last.json["max_tokens"] == 31 and "max_completion_tokens" not in fake_openai.last.json


def test_anthropic_always_gets_max_tokens_the_reply_allowance(sdk, fake_anthropic):
    sdk.chat.completions.create(model="claude-3-sonnet", messages=HELLO)
    assert fake_anthropic.last.json["max_tokens"] == 4096  # claude-3-sonnet's output limit


def test_a_user_near_the_limit_gets_a_shorter_reply_not_a_refusal(sdk, alice, fake_openai):
    set_quota(alice, token_limit=130, used_tokens=0)
    fake_openai.configure(usage=(12, 5))

    completion = sdk.chat.completions.create(model="gpt-3.5-turbo", messages=HELLO)

    # The gateway capped the reply to what the quota has room for after the prompt as it counts it.
    assert fake_openai.last.json["max_completion_tokens"] == 130 - count_messages("openai", "gpt-3.5-turbo", HELLO)
    assert completion.usage.total_tokens == 17
    quota = Quota.objects.get(user=alice)
    assert (quota.used_tokens, quota.reserved_tokens) == (17, 0)
    assert not Reservation.objects.exists()


def test_a_client_that_asked_for_more_than_the_quota_holds_is_refused(sdk, alice, fake_openai):
    set_quota(alice, token_limit=130)
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.chat.completions.create(model="gpt-3.5-turbo", messages=HELLO, max_tokens=500)
    assert caught.value.code == "quota_exceeded"
    assert fake_openai.requests == []


def test_no_room_even_for_a_short_reply_is_refused(sdk, alice, fake_openai):
    set_quota(alice, token_limit=20)
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(model="gpt-3.5-turbo", messages=HELLO)
    assert fake_openai.requests == []
