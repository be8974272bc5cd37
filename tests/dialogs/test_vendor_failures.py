"""Every vendor failure becomes a clear error; the user's message is kept and nothing is charged."""

import pytest

from billing.models import Quota, UsageRecord
from dialogs.models import Message
from tests.dialogs.conftest import send
from tests.fakes.server import hang

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast(fast_provider_settings):
    pass


def assert_kept_and_free(dialog, status: str = "error"):
    user_message = Message.objects.get(role="user")
    assert user_message.content == "Hello there"
    reply = Message.objects.get(role="assistant")
    assert reply.status == status and reply.error_type
    record = UsageRecord.objects.get()
    assert record.status == status and record.prompt_tokens + record.completion_tokens == 0
    quota = Quota.objects.get(user=dialog.owner)
    assert (quota.used_tokens, quota.reserved_tokens) == (0, 0)


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_credentials_are_a_502_that_never_shows_the_key(alice_client, gpt4_turbo_dialog, fake_openai, status):
    fake_openai.configure(status=status)
    response = send(alice_client, gpt4_turbo_dialog)
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["type"] == "provider_auth_error"
    assert "rejected the gateway's credentials" in error["message"]
    assert "sk-" not in response.content.decode()
    assert_kept_and_free(gpt4_turbo_dialog)


def test_vendor_rate_limits_are_retried_then_answered_429_with_retry_after(
    alice_client, gpt4_turbo_dialog, fake_openai
):
    fake_openai.configure(status=429, headers={"retry-after": "0"})
    response = send(alice_client, gpt4_turbo_dialog)
    assert response.status_code == 429
    assert response["Retry-After"]
    assert response.json()["error"]["type"] == "provider_rate_limited"
    assert len(fake_openai.requests) == 3  # one try and two retries
    assert_kept_and_free(gpt4_turbo_dialog)


def test_a_vendor_500_is_retried_and_a_success_is_charged_once(alice_client, gpt4_turbo_dialog, fake_openai):
    fake_openai.fail(500, times=2)
    fake_openai.configure(usage=(5, 5))
    response = send(alice_client, gpt4_turbo_dialog)
    assert response.status_code == 201
    assert len(fake_openai.requests) == 3
    assert UsageRecord.objects.get().prompt_tokens == 5
    assert Quota.objects.get(user=gpt4_turbo_dialog.owner).used_tokens == 10


def test_a_vendor_that_keeps_failing_is_a_502(alice_client, claude_sonnet_dialog, fake_anthropic):
    fake_anthropic.configure(status=500)
    response = send(alice_client, claude_sonnet_dialog)
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "provider_error"
    assert_kept_and_free(claude_sonnet_dialog)


def test_a_vendor_timeout_is_a_504(alice_client, gpt4_turbo_dialog, fake_openai, settings):
    settings.PROVIDER_TIMEOUT_SECONDS = 0.5
    fake_openai.script(hang(3))
    response = send(alice_client, gpt4_turbo_dialog)
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "provider_timeout"
    assert_kept_and_free(gpt4_turbo_dialog)


def test_a_vendor_400_passes_its_reason_on(alice_client, gpt4_turbo_dialog, fake_openai):
    fake_openai.configure(status=400)
    response = send(alice_client, gpt4_turbo_dialog)
    assert response.status_code == 400
    assert "maximum context length" in response.json()["error"]["message"]
    assert_kept_and_free(gpt4_turbo_dialog)


def test_a_vendor_without_a_key_is_unavailable(alice_client, gpt4_turbo_dialog, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    response = send(alice_client, gpt4_turbo_dialog)
    assert response.status_code == 503
    assert "OPENAI_API_KEY" in response.json()["error"]["message"]
    assert_kept_and_free(gpt4_turbo_dialog)


def test_a_stream_that_fails_before_any_text_sends_an_error_event(alice_client, gpt4_turbo_dialog, fake_openai):
    from tests.dialogs.conftest import sse_events

    fake_openai.configure(status=500)
    events = sse_events(send(alice_client, gpt4_turbo_dialog, stream=True))
    assert [name for name, _ in events] == ["message", "error"]
    assert events[-1][1]["error"]["status"] == 502
    assert_kept_and_free(gpt4_turbo_dialog)
