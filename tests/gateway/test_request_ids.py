"""Every answer carries the gateway's request id (x-request-id; on /v1/messages also request-id,
where the Anthropic SDK reads it), and the usage record keeps it beside the vendor's, so a client
can match a call to its bill. A failure the gateway already retried tells the SDKs not to retry."""

import anthropic
import httpx2 as httpx
import openai
import pytest

from billing.models import UsageRecord
from tests.dialogs.conftest import send
from tests.factories import make_dialog

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "Say hello"}]


def test_the_openai_sdk_sees_the_id_its_usage_record_keeps(live, alice_key, fake_openai):
    sdk = openai.OpenAI(base_url=f"{live}/v1", api_key=alice_key, max_retries=0)
    fake_openai.configure(usage=(12, 5))

    completion = sdk.chat.completions.create(model="gpt-3.5-turbo", messages=HELLO, max_tokens=20)

    record = UsageRecord.objects.get()
    assert completion._request_id and completion._request_id.startswith("req_")
    assert record.gateway_request_id == completion._request_id
    assert record.request_id and record.request_id != record.gateway_request_id  # the vendor's own


def test_the_anthropic_sdk_sees_the_id_its_usage_record_keeps(live, alice_key, fake_anthropic):
    sdk = anthropic.Anthropic(base_url=live, api_key=alice_key, max_retries=0)

    message = sdk.messages.create(model="claude-3-sonnet", max_tokens=20, messages=HELLO)

    assert message._request_id == UsageRecord.objects.get().gateway_request_id
    assert message._request_id.startswith("req_")


def test_each_request_gets_an_id_of_its_own_errors_included(live, alice_key):
    first = httpx.get(f"{live}/api/no-such-thing", timeout=5)
    second = httpx.get(f"{live}/v1/models", headers={"Authorization": "Bearer sk-gw-wrong"}, timeout=5)
    assert (first.status_code, second.status_code) == (404, 401)
    assert first.headers["x-request-id"].startswith("req_")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


def test_a_dialog_message_answers_with_the_id_of_its_usage_record(alice, alice_client, gpt35, fake_openai):
    response = send(alice_client, make_dialog(alice, model=gpt35))
    assert response.status_code == 201
    assert response["x-request-id"] == UsageRecord.objects.get().gateway_request_id


def test_after_the_gateways_own_retries_the_sdk_does_not_retry_again(live, alice_key, fake_openai):
    fake_openai.fail(500, times=10)
    sdk = openai.OpenAI(base_url=f"{live}/v1", api_key=alice_key, max_retries=2)  # the SDK's default

    with pytest.raises(openai.InternalServerError) as caught:
        sdk.chat.completions.create(model="gpt-3.5-turbo", messages=HELLO, max_tokens=20)

    assert caught.value.response.headers["x-should-retry"] == "false"
    assert len(fake_openai.requests) == 3  # the gateway's one try and two retries, not three times that
