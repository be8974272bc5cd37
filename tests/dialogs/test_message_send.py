from decimal import Decimal

import pytest

from billing.models import Quota, UsageRecord
from dialogs.models import Message
from tests.dialogs.conftest import send, sse_events
from tests.factories import make_agent, make_dialog

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "dialog_name,fake_name", [("gpt4_turbo_dialog", "fake_openai"), ("claude_sonnet_dialog", "fake_anthropic")]
)
def test_a_reply_is_stored_counted_and_priced_from_the_vendors_usage(request, alice_client, dialog_name, fake_name):
    dialog, fake = request.getfixturevalue(dialog_name), request.getfixturevalue(fake_name)
    fake.configure(text="General Kenobi.", usage=(1200, 300))

    response = send(alice_client, dialog)

    assert response.status_code == 201
    body = response.json()
    assert body["user_message"]["content"] == "Hello there"
    assert body["assistant_message"]["content"] == "General Kenobi."
    model = dialog.model
    expected = (Decimal(1200) * model.input_price_per_1k + Decimal(300) * model.output_price_per_1k) / 1000
    assert body["usage"]["prompt_tokens"] == 1200 and body["usage"]["completion_tokens"] == 300
    assert Decimal(body["usage"]["cost"]) == expected
    record = UsageRecord.objects.get()
    assert (record.prompt_tokens, record.completion_tokens, record.cost, record.status) == (1200, 300, expected, "ok")
    assert record.message_id == body["assistant_message"]["id"]
    assert record.request_id == fake.last.request_id
    assert Quota.objects.get(user=dialog.owner).used_tokens == 1500


def test_the_gpt4_turbo_price_is_the_seeded_one(alice_client, gpt4_turbo_dialog, fake_openai):
    fake_openai.configure(usage=(1000, 1000))
    body = send(alice_client, gpt4_turbo_dialog).json()
    assert Decimal(body["usage"]["cost"]) == Decimal("0.04")  # $0.01 in + $0.03 out per 1k


def test_the_history_goes_to_the_model_in_order_with_the_agents_prompt_first(
    alice_client, alice, gpt4_turbo, fake_openai
):
    agent = make_agent(alice, model=gpt4_turbo, name="Pirate", system_prompt="Talk like a pirate.")
    dialog = make_dialog(alice, model=gpt4_turbo, agent=agent)
    fake_openai.configure(text="Arr.")
    send(alice_client, dialog, "first")
    send(alice_client, dialog, "second")

    sent = fake_openai.last.json["messages"]
    assert [(m["role"], m["content"]) for m in sent] == [
        ("system", "Talk like a pirate."),
        ("user", "first"),
        ("assistant", "Arr."),
        ("user", "second"),
    ]


def test_anthropic_gets_the_system_prompt_apart_and_max_tokens_always(
    alice_client, alice, claude_sonnet, fake_anthropic
):
    agent = make_agent(alice, model=claude_sonnet, name="Poet", system_prompt="Rhyme.", max_tokens=99)
    dialog = make_dialog(alice, model=claude_sonnet, agent=agent)

    assert send(alice_client, dialog, "a poem please").status_code == 201

    sent = fake_anthropic.last.json
    assert sent["system"] == "Rhyme."
    assert sent["max_tokens"] == 99
    # The system prompt is not among the turns, which are the user's message alone.
    assert sent["messages"] == [{"role": "user", "content": "a poem please"}]


@pytest.mark.parametrize(
    "dialog_name,fake_name", [("gpt4_turbo_dialog", "fake_openai"), ("claude_sonnet_dialog", "fake_anthropic")]
)
def test_a_streamed_reply_arrives_as_events_and_is_stored(request, alice_client, dialog_name, fake_name):
    dialog, fake = request.getfixturevalue(dialog_name), request.getfixturevalue(fake_name)
    fake.configure(text="one two three", usage=(10, 3))

    response = send(alice_client, dialog, stream=True)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    events = sse_events(response)
    names = [name for name, _ in events]
    assert names[0] == "message" and names[-2:] == ["usage", "done"]
    assert "".join(data["text"] for name, data in events if name == "delta") == "one two three"
    assert events[-2][1]["prompt_tokens"] == 10 and events[-2][1]["completion_tokens"] == 3
    stored = Message.objects.get(role="assistant")
    assert (stored.content, stored.status, stored.completion_tokens) == ("one two three", "ok", 3)
    assert events[-1][1]["id"] == stored.pk


def test_accept_event_stream_also_streams(alice_client, gpt4_turbo_dialog, fake_openai):
    response = alice_client.post(
        f"/api/dialogs/{gpt4_turbo_dialog.pk}/messages/",
        {"content": "hi"},
        format="json",
        HTTP_ACCEPT="text/event-stream",
    )
    assert response["Content-Type"].startswith("text/event-stream")
    assert sse_events(response)[-1][0] == "done"


def test_a_stream_without_usage_is_billed_by_counting(alice_client, gpt4_turbo_dialog, fake_openai):
    fake_openai.configure(text="hello world", usage=None)
    events = sse_events(send(alice_client, gpt4_turbo_dialog, stream=True))
    usage = dict(events)["usage"]
    assert usage["completion_tokens"] == 2  # "hello world" is 2 tokens in cl100k_base
    assert usage["prompt_tokens"] > 0


def test_a_stream_cut_midway_is_stored_incomplete_and_charged_for_what_came(
    alice_client, gpt4_turbo_dialog, fake_openai, fast_provider_settings
):
    fake_openai.configure(text="alpha beta gamma delta", cut_after=2, usage=None)
    events = sse_events(send(alice_client, gpt4_turbo_dialog, stream=True))
    assert events[-1][0] == "error"
    stored = Message.objects.get(role="assistant")
    assert stored.status == "incomplete"
    assert stored.content == "alpha beta"
    assert stored.completion_tokens == 2
    record = UsageRecord.objects.get()
    assert record.status == "incomplete" and record.completion_tokens == 2
    assert Quota.objects.get(user=gpt4_turbo_dialog.owner).reserved_tokens == 0


def test_another_users_dialog_is_not_found(bob_client, gpt4_turbo_dialog, fake_openai):
    response = send(bob_client, gpt4_turbo_dialog)
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"
    assert bob_client.get(f"/api/dialogs/{gpt4_turbo_dialog.pk}/messages/").status_code == 404
    assert not Message.objects.exists() and not fake_openai.requests


def test_it_needs_sign_in(anon_client, gpt4_turbo_dialog):
    response = send(anon_client, gpt4_turbo_dialog)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "not_authenticated"


def test_bad_input_gets_a_clear_error(alice_client, gpt4_turbo_dialog):
    url = f"/api/dialogs/{gpt4_turbo_dialog.pk}/messages/"
    response = alice_client.post(url, "{not json", content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request"
    response = send(alice_client, gpt4_turbo_dialog, "", temperature=5)
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"content", "temperature"}
    response = send(alice_client, gpt4_turbo_dialog, max_tokens=10**6)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request" and response.json()["error"]["param"] == "max_tokens"
    assert not Message.objects.exists()


def test_the_history_is_listed_oldest_first(alice_client, gpt4_turbo_dialog, fake_openai):
    send(alice_client, gpt4_turbo_dialog, "one")
    send(alice_client, gpt4_turbo_dialog, "two")
    rows = alice_client.get(f"/api/dialogs/{gpt4_turbo_dialog.pk}/messages/").json()["results"]
    assert [(r["role"], r["content"]) for r in rows][::2] == [("user", "one"), ("user", "two")]
    assert rows[1]["role"] == "assistant" and rows[1]["model"] == "gpt-4-turbo"


@pytest.mark.parametrize(
    "model_name,fake_name", [("gpt-4o-mini", "fake_openai"), ("claude-3-sonnet", "fake_anthropic")]
)
def test_a_message_with_an_image_is_stored_and_sent_with_the_history(
    request, alice, alice_client, seeded, model_name, fake_name
):
    fake = request.getfixturevalue(fake_name)
    dialog = make_dialog(alice, model=model_name)
    parts = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]

    first = send(alice_client, dialog, parts)
    send(alice_client, dialog, "And its colour?")

    assert first.status_code == 201
    stored = Message.objects.filter(role="user").order_by("id").first()
    assert (stored.content, stored.parts) == ("What is in this picture?", parts)
    assert first.json()["user_message"]["parts"] == parts
    sent_first_turn = fake.last.json["messages"][0]["content"]
    if fake_name == "fake_openai":
        assert sent_first_turn == parts
    else:
        assert sent_first_turn[1] == {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        }


def test_an_image_for_a_model_without_vision_is_refused_and_not_stored(alice, alice_client, gpt35, fake_openai):
    parts = [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    response = send(alice_client, make_dialog(alice, model=gpt35), parts)
    assert response.status_code == 400 and "images" in response.json()["error"]["message"]
    assert not Message.objects.exists() and fake_openai.requests == []


def test_text_parts_alone_need_no_vision(alice, alice_client, gpt35, fake_openai):
    parts = [{"type": "text", "text": "Hello "}, {"type": "text", "text": "there"}]
    response = send(alice_client, make_dialog(alice, model=gpt35), parts)
    assert response.status_code == 201
    assert Message.objects.get(role="user").content == "Hello there"
