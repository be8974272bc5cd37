import pytest

from billing.quotas import quota_get
from dialogs.models import Dialog, Message
from llm_models.models import LLMModel
from tests.dialogs.conftest import send

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _same_minute(monkeypatch):
    """Every request of a test falls in one fixed one-minute window."""
    monkeypatch.setattr("billing.ratelimit.clock", lambda: 1_800_000_010.0)


@pytest.fixture
def dialog(alice, seeded):
    return Dialog.objects.create(owner=alice, model=LLMModel.objects.get(name="gpt-3.5-turbo"))


def test_requests_over_the_per_minute_limit_get_429_with_retry_after(alice, alice_client, dialog, fake_openai):
    quota = quota_get(user=alice)
    quota.requests_per_minute = 2
    quota.save()
    assert send(alice_client, dialog).status_code == 201
    assert send(alice_client, dialog).status_code == 201
    response = send(alice_client, dialog)
    assert response.status_code == 429
    assert response.json()["error"]["type"] == "rate_limited"
    assert response["Retry-After"] == "50"
    assert len(fake_openai.requests) == 2
    assert Message.objects.filter(role="user").count() == 2  # the limited one was not stored


def test_tokens_over_the_per_minute_limit_get_429(
    alice, alice_client, dialog, fake_openai, django_capture_on_commit_callbacks
):
    fake_openai.configure(usage=(40, 60))
    quota = quota_get(user=alice)
    quota.tokens_per_minute, quota.requests_per_minute = 100, None
    quota.save()
    with django_capture_on_commit_callbacks(execute=True):  # the reply's tokens count after COMMIT
        assert send(alice_client, dialog).status_code == 201  # 100 tokens this minute
    response = send(alice_client, dialog)
    assert response.status_code == 429 and response.json()["error"]["type"] == "rate_limited"
    assert response["Retry-After"]


def test_limits_are_per_user(alice, bob, bob_client, alice_client, dialog, fake_openai, seeded):
    quota = quota_get(user=alice)
    quota.requests_per_minute = 1
    quota.save()
    bobs = Dialog.objects.create(owner=bob, model=dialog.model)
    assert send(alice_client, dialog).status_code == 201
    assert send(alice_client, dialog).status_code == 429
    assert send(bob_client, bobs).status_code == 201
