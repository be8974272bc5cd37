"""LangChain's chat models, unchanged, against the gateway: ChatOpenAI and ChatAnthropic, each
with a model of either vendor — a tool loop through bind_tools (call, ToolMessage, answer) and
with_structured_output into a pydantic model, billed as the vendor reported."""

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from billing.models import UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)

# (the gateway's model, the fake vendor behind it, what that vendor names a tool call's id)
MODELS = [("gpt-4o", "fake_openai", "call_0"), ("claude-sonnet-4", "fake_anthropic", "toolu_0")]
CLIENTS = ["openai", "anthropic"]


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}."


class Person(BaseModel):
    """Someone mentioned in the text."""

    name: str
    age: int


def chat_model(client: str, model: str, live: str, key: str):
    if client == "openai":
        return ChatOpenAI(model=model, base_url=f"{live}/v1", api_key=key, max_retries=0)
    return ChatAnthropic(model=model, base_url=live, api_key=key, max_retries=0, max_tokens=500)


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("model,fake_name,call_id", MODELS)
def test_a_tool_loop_through_bind_tools(request, live, alice_key, client, model, fake_name, call_id):
    fake = request.getfixturevalue(fake_name)
    fake.configure(tool_calls=[{"name": "get_weather", "arguments": '{"city": "Paris"}'}], usage=(40, 12))
    llm = chat_model(client, model, live, alice_key).bind_tools([get_weather])
    history = [HumanMessage("What is the weather in Paris?")]

    called = llm.invoke(history)

    assert [(c["name"], c["args"], c["id"]) for c in called.tool_calls] == [("get_weather", {"city": "Paris"}, call_id)]
    fake.configure(tool_calls=None, text="It is sunny in Paris.", usage=(60, 7))
    history += [called, ToolMessage(get_weather.invoke(called.tool_calls[0]["args"]), tool_call_id=call_id)]

    answer = llm.invoke(history)

    assert answer.text == "It is sunny in Paris."
    records = UsageRecord.objects.order_by("id")
    assert [(r.prompt_tokens, r.completion_tokens, r.status) for r in records] == [(40, 12, "ok"), (60, 7, "ok")]


ANSWER = '{"name": "Alice", "age": 30}'


@pytest.mark.parametrize(
    "client,model,fake_name,vendor_reply",
    [
        # ChatOpenAI asks for a JSON schema: OpenAI answers in text, Claude in its structured output.
        ("openai", "gpt-4o", "fake_openai", {"text": ANSWER}),
        ("openai", "claude-sonnet-5-5", "fake_anthropic", {"text": ANSWER}),
        # ChatAnthropic forces a tool of its own named after the model class, at either vendor.
        ("anthropic", "gpt-4o", "fake_openai", {"tool_calls": [{"name": "Person", "arguments": ANSWER}]}),
        ("anthropic", "claude-sonnet-4", "fake_anthropic", {"tool_calls": [{"name": "Person", "arguments": ANSWER}]}),
    ],
)
def test_with_structured_output_fills_the_model(request, live, alice_key, client, model, fake_name, vendor_reply):
    fake = request.getfixturevalue(fake_name)
    fake.configure(usage=(30, 9), **vendor_reply)

    person = chat_model(client, model, live, alice_key).with_structured_output(Person).invoke("Alice is 30.")

    assert person == Person(name="Alice", age=30)
    sent = fake.last.json
    asked = sent.get("response_format") or sent.get("output_config") or sent["tool_choice"]
    assert "Person" in str(asked) or asked["format"]["type"] == "json_schema"
    assert [(r.prompt_tokens, r.completion_tokens) for r in UsageRecord.objects.all()] == [(30, 9)]


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("model,fake_name,call_id", MODELS)
def test_a_streamed_tool_call_adds_up(request, live, alice_key, client, model, fake_name, call_id):
    fake = request.getfixturevalue(fake_name)
    fake.configure(tool_calls=[{"name": "get_weather", "arguments": '{"city": "Paris"}'}], usage=(40, 12))
    llm = chat_model(client, model, live, alice_key).bind_tools([get_weather])

    chunks = list(llm.stream("What is the weather in Paris?"))
    message = chunks[0]
    for chunk in chunks[1:]:
        message += chunk

    assert len(chunks) > 2
    assert [(c["name"], c["args"], c["id"]) for c in message.tool_calls] == [
        ("get_weather", {"city": "Paris"}, call_id)
    ]
    assert [(r.prompt_tokens, r.completion_tokens) for r in UsageRecord.objects.all()] == [(40, 12)]
