import pytest

from dialogs.models import Message
from tests.dialogs.conftest import send
from tests.factories import make_dialog, set_quota

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _same_minute(monkeypatch):
    """Every request of a test falls in one fixed one-minute window."""
    monkeypatch.setattr("billing.ratelimit.clock", lambda: 1_800_000_010.0)


@pytest.fixture
def dialog(alice, gpt35):
    return make_dialog(alice, model=gpt35)


def test_requests_over_the_per_minute_limit_get_429_with_retry_after(alice, alice_client, dialog, fake_openai):
    set_quota(alice, requests_per_minute=2)
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
    set_quota(alice, tokens_per_minute=100, requests_per_minute=None)
    with django_capture_on_commit_callbacks(execute=True):  # the reply's tokens count after COMMIT
        assert send(alice_client, dialog).status_code == 201  # 100 tokens this minute
    response = send(alice_client, dialog)
    assert response.status_code == 429 and response.json()["error"]["type"] == "rate_limited"
    assert response["Retry-After"]


def test_limits_are_per_user(alice, bob, bob_client, alice_client, dialog, fake_openai):
    set_quota(alice, requests_per_minute=1)
    bobs = make_dialog(bob, model=dialog.model)
    assert send(alice_client, dialog).status_code == 201
    assert send(alice_client, dialog).status_code == 429
    assert send(bob_client, bobs).status_code == 201


def test_a_reply_stays_delivered_and_billed_when_the_cache_fails_after_it(
    alice, alice_client, dialog, fake_openai, django_capture_on_commit_callbacks, monkeypatch
):
    fake_openai.configure(usage=(40, 60))
    set_quota(alice, tokens_per_minute=10_000, requests_per_minute=None)

    def cache_down(**kwargs):
        raise ConnectionError("Redis went away")

    monkeypatch.setattr("billing.settlement.rate_limit_add_tokens", cache_down)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = send(alice_client, dialog)

    assert len(callbacks) == 1  # the tokens-per-minute count, after COMMIT: it failed, and was logged
    assert response.status_code == 201
    assert response.json()["usage"]["total_tokens"] == 100
    assert Message.objects.get(role="assistant").completion_tokens == 60
