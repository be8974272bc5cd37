"""An OpenAI-format client and an OpenAI-style vendor: every field the gateway does not need
reaches the vendor unchanged, and the vendor's answer reaches the client unchanged (tools, tool
results, structured output, parameters it ships tomorrow). With a vendor of another format, what
cannot be translated is refused with a 400 naming it, before any vendor call: never dropped."""

import json

import openai
import pytest
from pydantic import BaseModel

from billing.models import UsageRecord
from tests.factories import set_quota

pytestmark = pytest.mark.django_db(transaction=True)

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture
def sdk(live, alice_key) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live}/v1", api_key=alice_key, max_retries=0)


def test_the_tool_loop_works_call_result_answer(sdk, fake_openai):
    fake_openai.configure(tool_calls=[{"name": "get_weather", "arguments": '{"city": "Paris"}'}], usage=(40, 12))
    first = sdk.chat.completions.create(
        model="gpt-3.5-turbo", messages=QUESTION, tools=[WEATHER], tool_choice="auto", parallel_tool_calls=False
    )

    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls" and first.model == "gpt-3.5-turbo"
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})
    sent = fake_openai.last.json
    assert (sent["tools"], sent["tool_choice"], sent["parallel_tool_calls"]) == ([WEATHER], "auto", False)

    fake_openai.configure(tool_calls=None, text="It is sunny in Paris.", usage=(60, 7))
    history = [*QUESTION, first.choices[0].message.model_dump(exclude_none=True)]
    history.append({"role": "tool", "tool_call_id": call.id, "content": '{"sky": "sunny"}'})
    final = sdk.chat.completions.create(model="gpt-3.5-turbo", messages=history, tools=[WEATHER])

    assert final.choices[0].message.content == "It is sunny in Paris."
    assert fake_openai.last.json["messages"][1]["tool_calls"][0]["id"] == call.id
    assert fake_openai.last.json["messages"][2] == history[2]  # the tool's result, as sent
    records = UsageRecord.objects.order_by("id")
    assert [(r.prompt_tokens, r.completion_tokens) for r in records] == [(40, 12), (60, 7)]


def test_a_streamed_tool_call_arrives_in_fragments_and_is_billed(sdk, fake_openai):
    arguments = '{"city": "Paris", "unit": "celsius"}'
    fake_openai.configure(tool_calls=[{"name": "get_weather", "arguments": arguments}], usage=(40, 15))

    chunks = list(
        sdk.chat.completions.create(
            model="gpt-3.5-turbo",
            messages=QUESTION,
            tools=[WEATHER],
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    deltas = [call for chunk in chunks if chunk.choices for call in chunk.choices[0].delta.tool_calls or []]
    assert deltas[0].function.name == "get_weather" and deltas[0].id == "call_0"
    assert "".join(d.function.arguments or "" for d in deltas) == arguments
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    assert chunks[-1].usage.total_tokens == 55 and {c.model for c in chunks} == {"gpt-3.5-turbo"}
    assert UsageRecord.objects.get().completion_tokens == 15


class Person(BaseModel):
    name: str
    age: int


def test_structured_output_parses_into_the_clients_model(sdk, fake_openai):
    fake_openai.configure(text='{"name": "Alice", "age": 30}')

    completion = sdk.chat.completions.parse(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Alice is 30."}], response_format=Person
    )

    assert completion.choices[0].message.parsed == Person(name="Alice", age=30)
    sent = fake_openai.last.json["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "Person"


def test_parameters_the_gateway_does_not_read_reach_the_vendor_unchanged(sdk, fake_openai):
    sdk.chat.completions.create(
        model="gpt-3.5-turbo",
        messages=QUESTION,
        seed=7,
        logprobs=True,
        top_logprobs=2,
        metadata={"team": "search"},
        store=False,
        extra_body={"a_field_from_tomorrow": {"x": 1}},
    )
    sent = fake_openai.last.json
    assert (sent["seed"], sent["logprobs"], sent["top_logprobs"]) == (7, True, 2)
    assert (sent["metadata"], sent["store"], sent["a_field_from_tomorrow"]) == ({"team": "search"}, False, {"x": 1})


def test_n_replies_are_all_held_on_the_quota(sdk, alice, fake_openai):
    set_quota(alice, token_limit=150)
    sdk.chat.completions.create(model="gpt-3.5-turbo", messages=QUESTION, max_tokens=100)  # one reply fits
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(model="gpt-3.5-turbo", messages=QUESTION, max_tokens=100, n=2)
    assert len(fake_openai.requests) == 1


@pytest.mark.parametrize(
    "fields,named",
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"tools": [{"type": "custom", "custom": {"name": "grep"}}]}, "custom tools"),
        ({"functions": [{"name": "get_weather", "parameters": {"type": "object"}}]}, "functions"),
    ],
)
def test_what_cannot_reach_a_vendor_of_another_format_is_refused_by_name(sdk, fake_anthropic, fields, named):
    request = {"model": "claude-3-sonnet", "messages": QUESTION, **fields}
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(**request)
    assert named in caught.value.message
    assert fake_anthropic.requests == [] and not UsageRecord.objects.exists()


def test_an_image_reaches_an_openai_model_as_sent_and_is_counted(sdk, fake_openai):
    picture = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}}
    question = [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, picture]}]
    fake_openai.configure(usage=None)  # no usage reported: billed as counted, image included

    sdk.chat.completions.create(model="gpt-4o-mini", messages=question, max_tokens=10)

    assert fake_openai.last.json["messages"] == question
    assert UsageRecord.objects.get().prompt_tokens > 1_000  # the image's tokens, at most


@pytest.mark.parametrize(
    "model,fields,named",
    [
        (
            "gpt-3.5-turbo",
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}
                ]
            },
            "images",
        ),
        (
            "gpt-4-turbo",
            {"response_format": {"type": "json_schema", "json_schema": {"name": "P", "schema": {}}}},
            "JSON",
        ),
        ("gpt-4o", {"reasoning_effort": "low"}, "reasoning"),
    ],
)
def test_a_request_needing_what_the_model_lacks_is_refused_before_the_vendor(sdk, fake_openai, model, fields, named):
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(**{"model": model, "messages": QUESTION, **fields})
    assert named in caught.value.message and model in caught.value.message
    assert fake_openai.requests == [] and not UsageRecord.objects.exists()


def test_an_image_is_translated_for_claude(sdk, fake_anthropic):
    question = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Compare these."},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ],
        }
    ]

    sdk.chat.completions.create(model="claude-3-sonnet", messages=question, max_tokens=20)

    assert fake_anthropic.last.json["messages"][0]["content"] == [
        {"type": "text", "text": "Compare these."},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
    ]
    assert UsageRecord.objects.get().status == "ok"
