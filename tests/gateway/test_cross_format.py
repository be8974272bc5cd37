"""A client of one vendor's format and a model of the other's: the gateway translates tools, tool
calls (streamed too), tool results, structured output, images and reasoning both ways, and bills
what the vendor reports. Each test asserts both what the client got and what the vendor was sent.

The same scenarios with a vendor of the client's own format (relayed as they came) are in
test_openai_passthrough.py and test_anthropic_compat.py.
"""

import base64
import json

import anthropic
import openai
import pytest
from pydantic import BaseModel

from billing.models import UsageRecord
from tests.factories import make_model

pytestmark = pytest.mark.django_db(transaction=True)

OPENAI_WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
ANTHROPIC_WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]
PIXEL = base64.b64encode(b"\x89PNG\r\n\x1a\n-a-tiny-picture").decode()


class Person(BaseModel):
    name: str
    age: int


@pytest.fixture
def openai_sdk(live, alice_key) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live}/v1", api_key=alice_key, max_retries=0)


@pytest.fixture
def anthropic_sdk(live, alice_key) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=live, api_key=alice_key, max_retries=0)


def billed() -> list[tuple[int, int, str]]:
    return [(r.prompt_tokens, r.completion_tokens, r.status) for r in UsageRecord.objects.order_by("id")]


# --- the OpenAI SDK with a Claude model -------------------------------------------------------


def test_openai_sdk_tool_loop_with_claude(openai_sdk, fake_anthropic):
    fake_anthropic.configure(tool_calls=[{"name": "get_weather", "arguments": '{"city": "Paris"}'}], usage=(50, 20))
    first = openai_sdk.chat.completions.create(
        model="claude-sonnet-4", messages=QUESTION, tools=[OPENAI_WEATHER], tool_choice="required"
    )

    message = first.choices[0].message
    call = message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls" and message.content is None
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == (
        "toolu_0",
        "get_weather",
        {"city": "Paris"},
    )
    sent = fake_anthropic.last.json
    assert sent["tools"] == [ANTHROPIC_WEATHER] and sent["tool_choice"] == {"type": "any"}

    fake_anthropic.configure(tool_calls=None, text="It is sunny in Paris.", usage=(80, 8))
    history = [*QUESTION, message.model_dump(exclude_none=True)]
    history.append({"role": "tool", "tool_call_id": call.id, "content": '{"sky": "sunny"}'})
    final = openai_sdk.chat.completions.create(model="claude-sonnet-4", messages=history, tools=[OPENAI_WEATHER])

    assert final.choices[0].message.content == "It is sunny in Paris."
    assert final.choices[0].finish_reason == "stop"
    assert fake_anthropic.last.json["messages"][1:] == [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_0", "name": "get_weather", "input": {"city": "Paris"}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_0", "content": '{"sky": "sunny"}'}]},
    ]
    assert billed() == [(50, 20, "ok"), (80, 8, "ok")]


def test_openai_sdk_streams_claudes_tool_call_in_fragments(openai_sdk, fake_anthropic):
    fake_anthropic.configure(
        text="Let me look.", tool_calls=[{"name": "get_weather", "arguments": '{"city": "Paris"}'}], usage=(50, 21)
    )

    chunks = list(
        openai_sdk.chat.completions.create(
            model="claude-sonnet-4",
            messages=QUESTION,
            tools=[OPENAI_WEATHER],
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    deltas = [call for chunk in chunks if chunk.choices for call in chunk.choices[0].delta.tool_calls or []]
    assert (deltas[0].index, deltas[0].id, deltas[0].function.name) == (0, "toolu_0", "get_weather")
    assert len(deltas) > 2  # the arguments came in fragments, as Claude sent them
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {"city": "Paris"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    assert chunks[-1].usage.prompt_tokens == 50 and chunks[-1].usage.completion_tokens == 21
    assert billed() == [(50, 21, "ok")]


def test_openai_sdk_parse_with_claude_through_its_structured_output(openai_sdk, fake_anthropic):
    fake_anthropic.configure(text='{"name": "Alice", "age": 30}', usage=(25, 9))

    completion = openai_sdk.chat.completions.parse(
        model="claude-sonnet-5-5", messages=[{"role": "user", "content": "Alice is 30."}], response_format=Person
    )

    assert completion.choices[0].message.parsed == Person(name="Alice", age=30)
    assert completion.choices[0].finish_reason == "stop"
    sent = fake_anthropic.last.json["output_config"]["format"]
    assert sent["type"] == "json_schema" and sent["schema"]["properties"] == Person.model_json_schema()["properties"]
    assert "tools" not in fake_anthropic.last.json
    assert billed() == [(25, 9, "ok")]


def test_a_json_schema_needs_a_claude_with_structured_output(openai_sdk, fake_anthropic):
    with pytest.raises(openai.BadRequestError) as caught:
        openai_sdk.chat.completions.parse(model="claude-sonnet-4", messages=QUESTION, response_format=Person)
    assert "structured output" in caught.value.message and fake_anthropic.requests == []


def test_json_object_reaches_claude_as_a_forced_tool_and_streams_back_as_text(openai_sdk, fake_anthropic):
    fake_anthropic.configure(tool_calls=[{"name": "json_output", "arguments": '{"name": "Bob", "age": 4}'}])

    chunks = list(
        openai_sdk.chat.completions.create(
            model="claude-sonnet-4",
            messages=[{"role": "user", "content": "Bob is 4, in JSON."}],
            response_format={"type": "json_object"},
            stream=True,
        )
    )

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(text) == {"name": "Bob", "age": 4}
    assert not any(c.choices[0].delta.tool_calls for c in chunks if c.choices)
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    sent = fake_anthropic.last.json
    assert sent["tool_choice"] == {"type": "tool", "name": "json_output"} and len(sent["tools"]) == 1


def test_a_tool_without_parameters_streams_empty_arguments_as_an_object(openai_sdk, fake_anthropic):
    fake_anthropic.configure(tool_calls=[{"name": "get_time", "arguments": "{}"}])
    clock = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}

    chunks = list(
        openai_sdk.chat.completions.create(model="claude-sonnet-4", messages=QUESTION, tools=[clock], stream=True)
    )

    deltas = [call for chunk in chunks if chunk.choices for call in chunk.choices[0].delta.tool_calls or []]
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {}


def test_openai_sdk_asks_claude_about_an_image(openai_sdk, fake_anthropic):
    fake_anthropic.configure(text="A tiny picture.", usage=(1200, 4))
    picture = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}}
    linked = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}

    reply = openai_sdk.chat.completions.create(
        model="claude-sonnet-4",
        messages=[{"role": "user", "content": [{"type": "text", "text": "What are these?"}, picture, linked]}],
    )

    assert reply.choices[0].message.content == "A tiny picture."
    assert fake_anthropic.last.json["messages"][0]["content"] == [
        {"type": "text", "text": "What are these?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
    ]
    assert billed() == [(1200, 4, "ok")]


def test_openai_reasoning_effort_turns_on_claudes_thinking_and_shows_it(openai_sdk, fake_anthropic):
    fake_anthropic.configure(thinking="Paris is in France.", text="Sunny.", usage=(30, 40))

    reply = openai_sdk.chat.completions.create(model="claude-sonnet-4", messages=QUESTION, reasoning_effort="high")

    sent = fake_anthropic.last.json
    assert sent["thinking"] == {"type": "adaptive"} and sent["output_config"] == {"effort": "high"}
    message = reply.choices[0].message
    assert message.content == "Sunny." and message.model_extra["reasoning_content"] == "Paris is in France."


def test_a_tool_call_reply_is_billed_with_its_calls_when_the_vendor_reports_no_usage(anthropic_sdk, fake_openai):
    fake_openai.configure(tool_calls=[{"name": "get_weather", "arguments": '{"city": "Paris"}'}], usage=None)

    anthropic_sdk.messages.create(model="gpt-4o", max_tokens=50, messages=QUESTION, tools=[ANTHROPIC_WEATHER])

    record = UsageRecord.objects.get()
    assert record.prompt_tokens > 0 and record.completion_tokens > 0


def test_an_anthropic_client_gives_openai_max_completion_tokens(anthropic_sdk, fake_openai):
    anthropic_sdk.messages.create(model="gpt-4o", max_tokens=50, messages=QUESTION)
    sent = fake_openai.last.json
    assert sent["max_completion_tokens"] == 50 and "max_tokens" not in sent


def test_reasoning_with_a_forced_tool_is_refused_for_claude(openai_sdk, fake_anthropic):
    with pytest.raises(openai.BadRequestError) as caught:
        openai_sdk.chat.completions.create(
            model="claude-sonnet-4", messages=QUESTION, reasoning_effort="low", response_format={"type": "json_object"}
        )
    assert "reasoning_effort with" in caught.value.message
    assert fake_anthropic.requests == []


# --- the Anthropic SDK with an OpenAI model ---------------------------------------------------


def test_anthropic_sdk_tool_loop_with_an_openai_model(anthropic_sdk, fake_openai):
    fake_openai.configure(tool_calls=[{"name": "get_weather", "arguments": '{"city": "Paris"}'}], usage=(40, 12))
    first = anthropic_sdk.messages.create(
        model="gpt-4o",
        max_tokens=200,
        messages=QUESTION,
        tools=[ANTHROPIC_WEATHER],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
    )

    assert first.stop_reason == "tool_use"
    use = next(block for block in first.content if block.type == "tool_use")
    assert (use.id, use.name, use.input) == ("call_0", "get_weather", {"city": "Paris"})
    sent = fake_openai.last.json
    assert sent["tools"] == [OPENAI_WEATHER]
    assert (sent["tool_choice"], sent["parallel_tool_calls"]) == ("auto", False)

    fake_openai.configure(tool_calls=None, text="It is sunny in Paris.", usage=(60, 7))
    history = [
        *QUESTION,
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": use.id, "content": [{"type": "text", "text": "sunny"}]},
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
    ]
    final = anthropic_sdk.messages.create(model="gpt-4o", max_tokens=200, messages=history, tools=[ANTHROPIC_WEATHER])

    assert final.content[0].text == "It is sunny in Paris." and final.stop_reason == "end_turn"
    assert fake_openai.last.json["messages"][1:] == [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_0",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_0", "content": "sunny"},
        {"role": "user", "content": "And tomorrow?"},
    ]
    assert billed() == [(40, 12, "ok"), (60, 7, "ok")]


def test_anthropic_sdk_streams_an_openai_tool_call(anthropic_sdk, fake_openai):
    arguments = '{"city": "Paris", "unit": "celsius"}'
    fake_openai.configure(tool_calls=[{"name": "get_weather", "arguments": arguments}], usage=(40, 15))

    with anthropic_sdk.messages.stream(
        model="gpt-4o", max_tokens=200, messages=QUESTION, tools=[ANTHROPIC_WEATHER]
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()

    fragments = [e.delta.partial_json for e in events if e.type == "content_block_delta"]
    assert "".join(fragments) == arguments
    assert final.stop_reason == "tool_use" and final.usage.output_tokens == 15
    assert [(b.type, b.name, b.input) for b in final.content] == [
        ("tool_use", "get_weather", {"city": "Paris", "unit": "celsius"})
    ]
    assert billed() == [(40, 15, "ok")]


def test_anthropic_sdk_parse_with_an_openai_model(anthropic_sdk, fake_openai):
    fake_openai.configure(text='{"name": "Alice", "age": 30}')

    message = anthropic_sdk.messages.parse(
        model="gpt-4o", max_tokens=200, messages=[{"role": "user", "content": "Alice is 30."}], output_format=Person
    )

    assert message.parsed_output == Person(name="Alice", age=30)
    sent = fake_openai.last.json["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["schema"]["properties"].keys() == {"name", "age"}


def test_anthropic_sdk_asks_an_openai_model_about_an_image(anthropic_sdk, fake_openai):
    fake_openai.configure(text="A tiny picture.", usage=(900, 4))
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}}

    message = anthropic_sdk.messages.create(
        model="gpt-4o",
        max_tokens=50,
        messages=[{"role": "user", "content": [{"type": "text", "text": "What is this?"}, image]}],
    )

    assert message.content[0].text == "A tiny picture."
    assert fake_openai.last.json["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
    ]
    assert billed() == [(900, 4, "ok")]


def test_anthropic_thinking_asks_an_openai_model_for_reasoning_effort(anthropic_sdk, fake_openai):
    make_model(name="o4-mini", provider_model="o4-mini", context_window=200_000, max_output_tokens=100_000)
    anthropic_sdk.messages.create(
        model="o4-mini",
        max_tokens=20_000,
        messages=QUESTION,
        thinking={"type": "enabled", "budget_tokens": 10_000},
    )
    assert fake_openai.last.json["reasoning_effort"] == "medium"


def test_claudes_signed_thinking_goes_back_with_the_tool_loop(openai_sdk, fake_anthropic):
    fake_anthropic.configure(
        thinking="I need the weather.", tool_calls=[{"name": "get_weather", "arguments": '{"city": "Paris"}'}]
    )
    first = openai_sdk.chat.completions.create(
        model="claude-sonnet-4", messages=QUESTION, tools=[OPENAI_WEATHER], reasoning_effort="low"
    )
    message = first.choices[0].message.model_dump(exclude_none=True)
    assert message["thinking_blocks"][0]["signature"]

    fake_anthropic.configure(thinking=None, tool_calls=None, text="Sunny.")
    history = [*QUESTION, message, {"role": "tool", "tool_call_id": "toolu_0", "content": "sunny"}]
    openai_sdk.chat.completions.create(
        model="claude-sonnet-4", messages=history, tools=[OPENAI_WEATHER], reasoning_effort="low"
    )

    turn = fake_anthropic.last.json["messages"][1]["content"]
    assert [block["type"] for block in turn] == ["thinking", "tool_use"]
    assert turn[0] == message["thinking_blocks"][0]


def test_parallel_openai_tool_calls_stream_as_separate_tool_use_blocks(anthropic_sdk, fake_openai):
    fake_openai.configure(
        tool_calls=[
            {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            {"name": "get_weather", "arguments": '{"city": "Rome"}'},
        ]
    )

    with anthropic_sdk.messages.stream(
        model="gpt-4o", max_tokens=200, messages=QUESTION, tools=[ANTHROPIC_WEATHER]
    ) as stream:
        final = stream.get_final_message()

    assert [(b.id, b.input) for b in final.content] == [("call_0", {"city": "Paris"}), ("call_1", {"city": "Rome"})]
