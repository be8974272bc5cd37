"""Fitting a dialog into the model's context window."""

import pytest

from dialogs.models import Dialog, Message
from llm_models.models import LLMModel
from tests.dialogs.conftest import send

pytestmark = pytest.mark.django_db


@pytest.fixture
def tiny(seeded):
    """A model with room for about 60 prompt tokens once 40 are kept for the reply."""
    return LLMModel.objects.create(
        name="tiny",
        provider="openai",
        provider_model="gpt-3.5-turbo",
        context_window=100,
        max_output_tokens=40,
        input_price_per_1k="0.001",
        output_price_per_1k="0.002",
    )


def test_the_oldest_turns_are_dropped_first_and_the_system_prompt_kept(alice, alice_client, tiny, fake_openai):
    from agents.models import Agent

    agent = Agent.objects.create(name="Terse", system_prompt="Be terse.", model=tiny, owner=alice)
    dialog = Dialog.objects.create(owner=alice, model=tiny, agent=agent)
    for n in range(6):
        Message.objects.create(dialog=dialog, role="user", content=f"question {n} " + "word " * 5)
        Message.objects.create(dialog=dialog, role="assistant", content=f"answer {n} " + "word " * 5)

    assert send(alice_client, dialog, "the newest question").status_code == 201

    sent = fake_openai.last.json["messages"]
    assert sent[0] == {"role": "system", "content": "Be terse."}
    assert sent[-1] == {"role": "user", "content": "the newest question"}
    kept = [m["content"] for m in sent[1:-1]]
    assert 0 < len(kept) < 12
    assert kept[-1].startswith("answer 5")  # the most recent history survives
    assert not any(content.startswith("question 0") for content in kept)  # the oldest went first
    assert sent[1]["role"] == "user"  # a kept turn starts with the user's message


def test_a_message_too_long_for_the_window_is_a_422_before_any_vendor_call(alice, alice_client, tiny, fake_openai):
    dialog = Dialog.objects.create(owner=alice, model=tiny)
    response = send(alice_client, dialog, "word " * 500)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "context_length_exceeded"
    assert error["context_window"] == 100 and error["available_tokens"] == 60
    assert error["prompt_tokens"] > 60
    assert not fake_openai.requests
    assert not Message.objects.exists()
    from billing.models import UsageRecord

    assert not UsageRecord.objects.exists()
