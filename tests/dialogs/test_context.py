"""Fitting a dialog into the model's context window."""

import pytest

from billing.models import UsageRecord
from dialogs.models import Message
from tests.dialogs.conftest import send
from tests.factories import make_agent, make_dialog, make_model

pytestmark = pytest.mark.django_db


@pytest.fixture
def tiny(seeded):
    """A model with room for about 60 prompt tokens once 40 are kept for the reply."""
    return make_model(name="tiny", context_window=100, max_output_tokens=40)


def test_the_oldest_turns_are_dropped_first_and_the_system_prompt_kept(alice, alice_client, tiny, fake_openai):
    agent = make_agent(alice, model=tiny, name="Terse", system_prompt="Be terse.")
    dialog = make_dialog(alice, model=tiny, agent=agent)
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


def test_a_message_too_long_for_the_window_is_a_400_before_any_vendor_call(alice, alice_client, tiny, fake_openai):
    dialog = make_dialog(alice, model=tiny)
    response = send(alice_client, dialog, "word " * 500)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "context_length_exceeded"
    assert error["context_window"] == 100 and error["available_tokens"] == 100  # no max_tokens: nothing kept
    assert error["prompt_tokens"] > 60
    assert not fake_openai.requests
    assert not Message.objects.exists()
    assert not UsageRecord.objects.exists()


def test_a_long_message_without_max_tokens_is_sent_alone_with_the_room_the_window_leaves(
    alice, alice_client, tiny, fake_openai
):
    dialog = make_dialog(alice, model=tiny)
    Message.objects.create(dialog=dialog, role="user", content="an older question")
    Message.objects.create(dialog=dialog, role="assistant", content="an older answer")

    response = send(alice_client, dialog, "word " * 70)  # ~75 prompt tokens: more than 100 - 40

    assert response.status_code == 201
    sent = fake_openai.last.json
    assert [m["content"] for m in sent["messages"]] == ["word " * 70]  # the history made way
    # The window itself stops the reply at what it leaves, which is what was held: nothing to send.
    assert "max_tokens" not in sent and "max_completion_tokens" not in sent


def test_a_long_message_with_max_tokens_that_leaves_no_room_for_them_is_refused(alice, alice_client, tiny, fake_openai):
    dialog = make_dialog(alice, model=tiny)
    response = send(alice_client, dialog, "word " * 70, max_tokens=40)
    assert response.status_code == 400 and response.json()["error"]["type"] == "context_length_exceeded"
    assert not fake_openai.requests
