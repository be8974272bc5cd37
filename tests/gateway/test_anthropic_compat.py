"""The Anthropic-compatible endpoint, driven by the official `anthropic` SDK against a real gateway
server: messages.create and messages.stream for Anthropic and OpenAI models alike."""

import asyncio

import anthropic
import httpx2 as httpx
import pytest
from pydantic import BaseModel

from billing.models import APIKey, Quota, UsageRecord
from llm_models.models import LLMModel
from llm_models.providers.tokens import count_messages
from tests.factories import make_key, seeded_model, set_quota
from tests.fakes.server import Reply

pytestmark = pytest.mark.django_db(transaction=True)

MODELS = [("claude-3-sonnet", "fake_anthropic"), ("gpt-3.5-turbo", "fake_openai")]
HELLO = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def sdk(live, alice_key) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=live, api_key=alice_key, max_retries=0)


@pytest.mark.parametrize("model,fake_name", MODELS)
def test_a_message_answers_in_anthropics_format_with_the_vendors_usage(request, sdk, model, fake_name):
    fake = request.getfixturevalue(fake_name)
    fake.configure(text="Hello there, friend.", usage=(12, 5))

    message = sdk.messages.create(model=model, max_tokens=50, messages=HELLO)

    assert message.type == "message" and message.role == "assistant" and message.id.startswith("msg_")
    assert message.model == model
    assert [(b.type, b.text) for b in message.content] == [("text", "Hello there, friend.")]
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 5)


@pytest.mark.parametrize("model,fake_name", MODELS)
def test_a_streamed_message_gives_text_and_the_final_usage(request, sdk, model, fake_name):
    fake = request.getfixturevalue(fake_name)
    fake.configure(text="one two three four", usage=(12, 5))

    with sdk.messages.stream(model=model, max_tokens=50, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()

    assert text == "one two three four"
    assert final.content[0].text == "one two three four"
    assert final.stop_reason == "end_turn" and final.model == model
    assert (final.usage.input_tokens, final.usage.output_tokens) == (12, 5)


def test_the_raw_event_sequence_is_anthropics(sdk, fake_openai):
    events = list(sdk.messages.create(model="gpt-3.5-turbo", max_tokens=50, messages=HELLO, stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert set(kinds[2:-3]) == {"content_block_delta"}
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]


def test_a_reply_cut_at_max_tokens_says_so(sdk, fake_anthropic):
    fake_anthropic.configure(text="a b c d e f g h")
    message = sdk.messages.create(model="claude-3-sonnet", max_tokens=3, messages=HELLO)
    assert message.stop_reason == "max_tokens"
    with sdk.messages.stream(model="claude-3-sonnet", max_tokens=3, messages=HELLO) as stream:
        assert stream.get_final_message().stop_reason == "max_tokens"


def test_the_async_client_creates_and_streams(live, alice_key, fake_anthropic):
    fake_anthropic.configure(text="async works", usage=(9, 2))

    async def run():
        async with anthropic.AsyncAnthropic(base_url=live, api_key=alice_key, max_retries=0) as client:
            message = await client.messages.create(model="claude-3-sonnet", max_tokens=20, messages=HELLO)
            async with client.messages.stream(model="claude-3-sonnet", max_tokens=20, messages=HELLO) as stream:
                text = "".join([t async for t in stream.text_stream])
                final = await stream.get_final_message()
            return message, text, final

    message, text, final = asyncio.run(run())
    assert message.content[0].text == "async works" and text == "async works"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (9, 2)


def test_the_system_prompt_and_parameters_reach_the_vendor(sdk, fake_anthropic, fake_openai):
    # This SDK has no `temperature` argument any more; older programs still send it.
    sdk.messages.create(
        model="claude-3-sonnet",
        max_tokens=40,
        system="Be brief.",
        stop_sequences=["END"],
        extra_body={"temperature": 0.3},
        messages=[{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
    )
    sent = fake_anthropic.last.json
    assert sent["system"] in ("Be brief.", [{"type": "text", "text": "Be brief."}])
    assert (sent["max_tokens"], sent["stop_sequences"]) == (40, ["END"])
    assert "temperature" not in sent  # the provider leaves it out for Anthropic (see its comment)

    sdk.messages.create(model="gpt-3.5-turbo", max_tokens=40, system="Be brief.", messages=HELLO)
    assert fake_openai.last.json["messages"][0] == {"role": "system", "content": "Be brief."}


def test_every_call_is_recorded_with_its_key_and_endpoint(sdk, alice, fake_openai, fake_anthropic):
    fake_anthropic.configure(usage=(12, 5))
    fake_openai.configure(usage=(30, 7))
    sdk.messages.create(model="claude-3-sonnet", max_tokens=20, messages=HELLO)
    with sdk.messages.stream(model="gpt-3.5-turbo", max_tokens=20, messages=HELLO) as stream:
        stream.until_done()

    key = APIKey.objects.get()
    assert [
        (r.model_name, r.prompt_tokens, r.completion_tokens, r.status, r.endpoint, r.api_key_id)
        for r in UsageRecord.objects.order_by("id")
    ] == [("claude-3-sonnet", 12, 5, "ok", "anthropic", key.pk), ("gpt-3.5-turbo", 30, 7, "ok", "anthropic", key.pk)]
    quota = Quota.objects.get(user=alice)
    assert (quota.used_tokens, quota.reserved_tokens) == (54, 0)


@pytest.mark.parametrize("header", ["x-api-key", "authorization"])
def test_the_key_is_accepted_as_x_api_key_or_bearer(live, alice_key, fake_anthropic, header):
    headers = {"x-api-key": alice_key} if header == "x-api-key" else {"Authorization": f"Bearer {alice_key}"}
    response = httpx.post(
        f"{live}/v1/messages",
        headers={**headers, "anthropic-version": "2023-06-01"},
        json={"model": "claude-3-sonnet", "max_tokens": 20, "messages": HELLO},
    )
    assert response.status_code == 200, response.text
    assert response.json()["type"] == "message"


def test_the_sdk_with_an_x_api_key_header_works(live, alice_key, fake_anthropic):
    client = anthropic.Anthropic(
        base_url=live, api_key=None, auth_token=None, max_retries=0, default_headers={"X-Api-Key": alice_key}
    )
    assert client.messages.create(model="claude-3-sonnet", max_tokens=20, messages=HELLO).content


@pytest.mark.parametrize("stream", [False, True])
def test_an_exhausted_quota_raises_rate_limit_error(sdk, alice, fake_anthropic, stream):
    set_quota(alice, token_limit=100, used_tokens=95)

    with pytest.raises(anthropic.RateLimitError) as caught:
        if stream:
            with sdk.messages.stream(model="claude-3-sonnet", max_tokens=20, messages=HELLO) as s:
                s.until_done()
        else:
            sdk.messages.create(model="claude-3-sonnet", max_tokens=20, messages=HELLO)

    assert caught.value.body["error"]["type"] == "rate_limit_error"
    assert "your quota" in caught.value.body["error"]["message"]
    assert fake_anthropic.requests == [] and not UsageRecord.objects.exists()


def test_a_revoked_key_raises_authentication_error(sdk, alice_client, fake_anthropic):
    sdk.messages.create(model="claude-3-sonnet", max_tokens=20, messages=HELLO)
    key = APIKey.objects.get()
    alice_client.delete(f"/api/keys/{key.pk}/")

    with pytest.raises(anthropic.AuthenticationError, match="revoked"):
        sdk.messages.create(model="claude-3-sonnet", max_tokens=20, messages=HELLO)
    with pytest.raises(anthropic.AuthenticationError):
        with sdk.messages.stream(model="claude-3-sonnet", max_tokens=20, messages=HELLO) as stream:
            stream.until_done()
    assert len(fake_anthropic.requests) == 1


def test_an_unknown_model_raises_not_found(sdk):
    with pytest.raises(anthropic.NotFoundError) as caught:
        sdk.messages.create(model="claude-17", max_tokens=20, messages=HELLO)
    assert caught.value.body["error"]["type"] == "not_found_error"


def test_a_model_outside_the_keys_list_raises_permission_denied(live, alice, fake_openai):
    _, secret = make_key(alice, name="claude only", allowed_models=[seeded_model("claude-3-sonnet")])
    client = anthropic.Anthropic(base_url=live, api_key=secret, max_retries=0)
    with pytest.raises(anthropic.PermissionDeniedError):
        client.messages.create(model="gpt-3.5-turbo", max_tokens=20, messages=HELLO)


@pytest.mark.parametrize(
    "fields",
    [
        {"messages": []},
        {"messages": [{"role": "system", "content": "no"}]},
        {"max_tokens": 0},
        {"extra_body": {"temperature": 3}},
    ],
)
def test_a_bad_request_raises_bad_request_error(sdk, fake_anthropic, fields):
    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk.messages.create(**{"model": "claude-3-sonnet", "max_tokens": 20, "messages": HELLO, **fields})
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert fake_anthropic.requests == []


def test_a_vendor_failure_mid_stream_raises_an_api_error(sdk, alice, fake_anthropic):
    fake_anthropic.configure(text="one two three four five", cut_after=2)
    with pytest.raises(anthropic.APIError):
        with sdk.messages.stream(model="claude-3-sonnet", max_tokens=50, messages=HELLO) as stream:
            stream.until_done()
    record = UsageRecord.objects.get()
    assert record.status == "incomplete" and record.endpoint == "anthropic"
    assert Quota.objects.get(user=alice).reserved_tokens == 0


def test_a_cut_stream_is_billed_the_prompt_claude_counted_not_the_gateways_estimate(sdk, alice, fake_anthropic):
    # Claude said at the start it read 7 prompt tokens; the gateway's own count errs high.
    fake_anthropic.configure(text="one two three four five", usage=(7, 5), cut_after=2)
    with pytest.raises(anthropic.APIError):
        with sdk.messages.stream(model="claude-3-sonnet", max_tokens=50, messages=HELLO) as stream:
            stream.until_done()
    record = UsageRecord.objects.get()
    assert (record.status, record.prompt_tokens) == ("incomplete", 7)
    assert record.completion_tokens > 0  # the two pieces received, as counted
    assert Quota.objects.get(user=alice).used_tokens == 7 + record.completion_tokens


@pytest.mark.parametrize("model,fake_name", MODELS)
def test_a_vendor_refusal_before_a_stream_starts_is_an_http_status(request, sdk, model, fake_name):
    request.getfixturevalue(fake_name).fail(429, times=5)
    with pytest.raises(anthropic.RateLimitError):
        with sdk.messages.stream(model=model, max_tokens=20, messages=HELLO) as stream:
            stream.until_done()
    assert UsageRecord.objects.get().status == "error"


def test_the_sdk_lists_and_retrieves_models_in_anthropics_format(sdk):
    LLMModel.objects.filter(name="claude-3-opus").update(enabled=False)

    listed = list(sdk.models.list())
    model = sdk.models.retrieve("claude-3-sonnet")

    assert sorted(m.id for m in listed) == [
        "claude-3-sonnet",
        "claude-opus-5-5",
        "claude-sonnet-4",
        "claude-sonnet-5-5",
        "gpt-3.5-turbo",
        "gpt-4-turbo",
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-6-luna",
        "text-embedding-3-small",
    ]
    assert {m.type for m in listed} == {"model"}
    assert (model.id, model.type, model.display_name) == ("claude-3-sonnet", "model", "claude-3-sonnet")
    with pytest.raises(anthropic.NotFoundError) as caught:
        sdk.models.retrieve("claude-3-opus")
    assert caught.value.body["error"]["type"] == "not_found_error"


@pytest.mark.parametrize("model", ["claude-3-sonnet", "gpt-3.5-turbo"])
def test_the_sdk_counts_tokens_offline_as_admission_would(sdk, model, fake_anthropic, fake_openai):
    counted = sdk.messages.count_tokens(model=model, system="Be brief.", messages=HELLO)

    catalog_model = seeded_model(model)
    expected = count_messages(
        catalog_model.provider,
        catalog_model.provider_model,
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}],
    )
    assert counted.input_tokens == expected > 0
    assert fake_anthropic.requests == [] and fake_openai.requests == []
    assert not UsageRecord.objects.exists()


def test_counting_tokens_needs_a_key_and_an_enabled_model(live, sdk):
    with pytest.raises(anthropic.NotFoundError):
        sdk.messages.count_tokens(model="gpt-17", messages=HELLO)
    stranger = anthropic.Anthropic(base_url=live, api_key="sk-gw-not-a-key", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        stranger.messages.count_tokens(model="claude-3-sonnet", messages=HELLO)


@pytest.mark.parametrize("stream", [False, True])
def test_a_reply_ended_by_a_stop_sequence_says_which(sdk, fake_anthropic, stream):
    fake_anthropic.configure(text="one two END three four")
    if stream:
        with sdk.messages.stream(
            model="claude-3-sonnet", max_tokens=50, messages=HELLO, stop_sequences=["NEVER", "END"]
        ) as events:
            message = events.get_final_message()
    else:
        message = sdk.messages.create(
            model="claude-3-sonnet", max_tokens=50, messages=HELLO, stop_sequences=["NEVER", "END"]
        )

    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "END")
    assert message.content[0].text == "one two "
    assert fake_anthropic.last.json["stop_sequences"] == ["NEVER", "END"]


def test_a_reply_that_ends_on_its_own_has_no_stop_sequence(sdk, fake_anthropic):
    message = sdk.messages.create(model="claude-3-sonnet", max_tokens=50, messages=HELLO, stop_sequences=["NEVER"])
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)


def test_system_blocks_stay_apart(sdk, fake_anthropic, fake_openai):
    system = [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Answer in French."}]

    sdk.messages.create(model="claude-3-sonnet", max_tokens=20, system=system, messages=HELLO)
    sdk.messages.create(model="gpt-3.5-turbo", max_tokens=20, system=system, messages=HELLO)

    assert fake_anthropic.last.json["system"] == system  # as sent
    assert fake_openai.last.json["messages"][:2] == [
        {"role": "system", "content": "Be brief."},
        {"role": "system", "content": "Answer in French."},
    ]


def test_what_cannot_reach_a_vendor_of_another_format_is_refused_by_name_not_dropped(sdk, fake_openai):
    search = {"type": "web_search_20250305", "name": "web_search"}  # runs at Anthropic only
    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk.messages.create(model="gpt-4o", max_tokens=20, messages=HELLO, tools=[search])
    assert "web_search_20250305 tools" in caught.value.message
    document = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Notes."}}
    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk.messages.create(model="gpt-4o", max_tokens=20, messages=[{"role": "user", "content": [document]}])
    assert "document blocks" in caught.value.message
    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk.messages.create(model="gpt-4o", max_tokens=20, messages=HELLO, extra_body={"top_k": 5})
    assert "top_k" in caught.value.message
    assert fake_openai.requests == [] and not UsageRecord.objects.exists()


def test_metadata_reaches_anthropic_and_its_user_id_is_openais_user(sdk, fake_anthropic, fake_openai):
    sdk.messages.create(model="claude-3-sonnet", max_tokens=20, messages=HELLO, metadata={"user_id": "u-7"})
    sdk.messages.create(model="gpt-3.5-turbo", max_tokens=20, messages=HELLO, metadata={"user_id": "u-7"})
    assert fake_anthropic.last.json["metadata"] == {"user_id": "u-7"}
    assert "metadata" not in fake_openai.last.json and fake_openai.last.json["user"] == "u-7"


WEATHER_TOOL = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
WEATHER_QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]


def test_the_tool_loop_works_with_claude_use_result_answer(sdk, fake_anthropic):
    fake_anthropic.configure(tool_calls=[{"name": "get_weather", "arguments": '{"city": "Paris"}'}], usage=(50, 20))
    first = sdk.messages.create(
        model="claude-3-sonnet",
        max_tokens=200,
        messages=WEATHER_QUESTION,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "auto"},
    )

    use = next(block for block in first.content if block.type == "tool_use")
    assert first.stop_reason == "tool_use" and first.model == "claude-3-sonnet"
    assert (use.name, use.input) == ("get_weather", {"city": "Paris"})
    assert fake_anthropic.last.json["tools"] == [WEATHER_TOOL]
    assert fake_anthropic.last.json["tool_choice"] == {"type": "auto"}

    fake_anthropic.configure(tool_calls=None, text="Sunny in Paris.", usage=(80, 6))
    result = {"type": "tool_result", "tool_use_id": use.id, "content": '{"sky": "sunny"}'}
    history = [
        *WEATHER_QUESTION,
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {"role": "user", "content": [result]},
    ]
    final = sdk.messages.create(model="claude-3-sonnet", max_tokens=200, messages=history, tools=[WEATHER_TOOL])

    assert final.content[0].text == "Sunny in Paris."
    assert fake_anthropic.last.json["messages"][2]["content"] == [result]  # as sent
    records = UsageRecord.objects.order_by("id")
    assert [(r.prompt_tokens, r.completion_tokens) for r in records] == [(50, 20), (80, 6)]


def test_a_streamed_tool_use_arrives_whole_and_is_billed(sdk, fake_anthropic):
    fake_anthropic.configure(tool_calls=[{"name": "get_weather", "arguments": '{"city": "Paris"}'}], usage=(50, 21))

    with sdk.messages.stream(
        model="claude-3-sonnet", max_tokens=200, messages=WEATHER_QUESTION, tools=[WEATHER_TOOL]
    ) as stream:
        message = stream.get_final_message()

    use = next(block for block in message.content if block.type == "tool_use")
    assert (use.name, use.input, message.stop_reason) == ("get_weather", {"city": "Paris"}, "tool_use")
    assert message.model == "claude-3-sonnet"
    assert UsageRecord.objects.get().completion_tokens == 21


class Person(BaseModel):
    name: str
    age: int


def test_structured_output_parses_into_the_clients_model_with_claude(sdk, fake_anthropic):
    fake_anthropic.configure(text='{"name": "Alice", "age": 30}', usage=(20, 9))

    message = sdk.messages.parse(
        model="claude-sonnet-5-5",
        max_tokens=100,
        messages=[{"role": "user", "content": "Alice is 30."}],
        output_format=Person,
    )

    assert message.parsed_output == Person(name="Alice", age=30)
    sent = fake_anthropic.last.json["output_config"]["format"]
    assert sent["type"] == "json_schema" and sent["schema"]["properties"].keys() == {"name", "age"}
    assert UsageRecord.objects.get().completion_tokens == 9


def test_an_image_reaches_claude_as_sent(sdk, fake_anthropic):
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    sdk.messages.create(
        model="claude-3-sonnet",
        max_tokens=20,
        messages=[{"role": "user", "content": [image, {"type": "text", "text": "What is this?"}]}],
    )
    assert fake_anthropic.last.json["messages"][0]["content"][0] == image


def test_a_stream_cut_before_any_text_is_retried_and_the_client_sees_one_clean_message(
    sdk, fake_anthropic, fast_provider_settings
):
    fake_anthropic.script(Reply(cut_after=0))  # message_start sent, then the connection drops
    fake_anthropic.configure(text="Hello again.", usage=(9, 3))

    with sdk.messages.stream(model="claude-3-sonnet", max_tokens=20, messages=HELLO) as stream:
        events = [event.type for event in stream]
        message = stream.get_final_message()

    assert len(fake_anthropic.requests) == 2
    assert events.count("message_start") == 1
    assert message.content[0].text == "Hello again." and message.usage.output_tokens == 3
    assert UsageRecord.objects.get().completion_tokens == 3


def test_counting_tokens_counts_what_claude_will_read_images_and_tools_included(sdk):
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    plain = sdk.messages.count_tokens(model="claude-3-sonnet", messages=HELLO).input_tokens
    with_image = sdk.messages.count_tokens(
        model="claude-3-sonnet", messages=[{"role": "user", "content": [image, {"type": "text", "text": "Say hello"}]}]
    ).input_tokens
    with_tools = sdk.messages.count_tokens(model="claude-3-sonnet", messages=HELLO, tools=[WEATHER_TOOL]).input_tokens
    assert with_image > plain + 1_000 and with_tools > plain
