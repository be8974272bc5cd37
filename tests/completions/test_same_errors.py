"""One completion flow behind every endpoint: the same problem gives the same error from a dialog
message, /v1/chat/completions and /v1/messages (each in its own wire format), before any vendor
call and with nothing held or stored."""

import pytest
from rest_framework.test import APIClient

from billing.models import Reservation, UsageRecord
from dialogs.models import Message
from llm_models.models import LLMModel
from tests.factories import make_dialog, make_key, make_model

pytestmark = pytest.mark.django_db

# Each format's own error types, by status (the SDKs pick their exception by status); OpenAI's
# `code` and the gateway's own `type` say exactly what.
ANTHROPIC_TYPES = {400: "invalid_request_error", 404: "not_found_error"}
OPENAI_TYPES = {400: "invalid_request_error", 404: "invalid_request_error"}


@pytest.fixture
def tiny(db):
    return make_model(name="tiny", context_window=100, max_output_tokens=40)


def ask_everywhere(user, model_name: str, *, content: str = "Hello", max_tokens: int | None = None) -> dict:
    """The (status, error) each endpoint answers for the same question."""
    _, secret = make_key(user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    limit = {"max_tokens": max_tokens} if max_tokens else {}
    dialog = make_dialog(user, model=LLMModel.objects.get(name=model_name))
    answers = {
        "dialog": client.post(f"/api/dialogs/{dialog.pk}/messages/", {"content": content, **limit}, format="json"),
        "openai": client.post(
            "/v1/chat/completions",
            {"model": model_name, "messages": [{"role": "user", "content": content}], **limit},
            format="json",
        ),
        "anthropic": client.post(
            "/v1/messages",
            {"model": model_name, "max_tokens": max_tokens or 10, "messages": [{"role": "user", "content": content}]},
            format="json",
        ),
    }
    return {name: (response.status_code, response.json()["error"]) for name, response in answers.items()}


def assert_the_same(answers: dict, *, status: int, type: str) -> None:
    assert {name: code for name, (code, _) in answers.items()} == {
        "dialog": status,
        "openai": status,
        "anthropic": status,
    }
    assert answers["dialog"][1]["type"] == type
    assert (answers["openai"][1]["type"], answers["openai"][1]["code"]) == (OPENAI_TYPES[status], type)
    assert answers["anthropic"][1]["type"] == ANTHROPIC_TYPES[status]
    assert not Reservation.objects.exists() and not UsageRecord.objects.exists()
    assert not Message.objects.exists()


def test_a_disabled_model_is_not_found_everywhere(alice, tiny, fake_openai):
    LLMModel.objects.filter(pk=tiny.pk).update(enabled=False)
    answers = ask_everywhere(alice, "tiny")
    assert_the_same(answers, status=404, type="model_not_found")
    assert answers["openai"][1]["param"] == "model"
    assert not fake_openai.requests


def test_too_many_tokens_for_the_reply_is_the_same_bad_request_everywhere(alice, tiny, fake_openai):
    answers = ask_everywhere(alice, "tiny", max_tokens=41)
    assert_the_same(answers, status=400, type="invalid_request")
    assert answers["dialog"][1]["param"] == answers["openai"][1]["param"] == "max_tokens"
    assert not fake_openai.requests


def test_a_prompt_too_long_for_the_window_is_the_same_bad_request_everywhere(alice, tiny, fake_openai):
    answers = ask_everywhere(alice, "tiny", content="word " * 200, max_tokens=10)
    assert_the_same(answers, status=400, type="context_length_exceeded")
    assert answers["dialog"][1]["context_window"] == answers["openai"][1]["context_window"] == 100
    assert not fake_openai.requests
