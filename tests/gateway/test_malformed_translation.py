"""Malformed or hostile requests to the vendor-compatible endpoints get a JSON 400 naming what is
wrong, for a model of either vendor — never a 500, never a vendor call, nothing billed."""

import json

import httpx2
import pytest

from billing.models import UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "Hello"}]
OPENAI_BODIES = [
    {"messages": [{"role": "assistant", "tool_calls": "x"}]},
    {"messages": [{"role": "tool", "content": "result"}]},
    {"messages": [{"role": "user", "content": {"text": "a dict"}}]},
    {"messages": HELLO, "tools": "get_weather"},
    {"messages": HELLO, "tools": [{"type": "function", "function": "get_weather"}]},
    {"messages": HELLO, "parallel_tool_calls": "yes"},
    {"messages": HELLO, "response_format": "json"},
    {"messages": HELLO, "max_completion_tokens": -1},
    {"messages": HELLO, "stream_options": "x"},
]
# Relayed to an OpenAI model as they came (its vendor judges them); Claude cannot be given them.
OPENAI_BODIES_FOR_CLAUDE = [
    {"messages": [{"role": "assistant", "tool_calls": [{"id": "c1"}]}]},
    {"messages": [{"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": 5}}]}]},
    {
        "messages": [
            {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "[" * 100_000}}]}
        ]
    },
    {
        "messages": HELLO,
        "response_format": {"type": "json_object"},
        "tools": [{"type": "function", "function": {"name": "f"}}],
    },
]
ANTHROPIC_BODIES = [
    {"messages": [{"role": "user", "content": {"type": "text"}}]},
    {"messages": HELLO, "tools": {"name": "x"}},
    {"messages": HELLO, "tools": [{"input_schema": {}}]},
    {"messages": HELLO, "tool_choice": "any"},
    {"messages": HELLO, "output_config": "json"},
    {"messages": HELLO, "output_config": {"format": {"type": "json_schema", "schema": "x"}}},
    {"messages": HELLO, "thinking": {"type": "enabled", "budget_tokens": "lots"}},
    {"messages": HELLO, "system": 42},
    {"messages": [{"role": "system", "content": "no"}]},
]


@pytest.fixture
def post(live, alice_key):
    def post(path: str, body: dict | bytes) -> httpx2.Response:
        headers = {"authorization": f"Bearer {alice_key}", "anthropic-version": "2023-06-01"}
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["content-type"] = "application/json"
        return httpx2.post(f"{live}{path}", content=content, headers=headers, timeout=10)

    return post


@pytest.mark.parametrize(
    "model,body",
    [(model, body) for model in ("gpt-4o", "claude-sonnet-4") for body in OPENAI_BODIES]
    + [("claude-sonnet-4", body) for body in OPENAI_BODIES_FOR_CLAUDE],
)
def test_openai_format_malformed_is_a_json_400(post, fake_openai, fake_anthropic, model, body):
    response = post("/v1/chat/completions", {"model": model, **body})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert fake_openai.requests == fake_anthropic.requests == [] and not UsageRecord.objects.exists()


@pytest.mark.parametrize("model", ["gpt-4o", "claude-sonnet-4"])
@pytest.mark.parametrize("body", ANTHROPIC_BODIES)
def test_anthropic_format_malformed_is_a_json_400(post, fake_openai, fake_anthropic, model, body):
    response = post("/v1/messages", {"model": model, "max_tokens": 50, **body})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert fake_openai.requests == fake_anthropic.requests == [] and not UsageRecord.objects.exists()


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_a_body_nested_past_the_stack_is_a_json_400(post, path):
    deep = b'{"model": "gpt-4o", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = post(path, deep)
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"


def test_a_huge_untranslatable_name_is_not_echoed_whole(post, fake_anthropic):
    response = post(
        "/v1/chat/completions", {"model": "claude-sonnet-4", "messages": HELLO, "tools": [{"type": "x" * 100_000}]}
    )
    assert response.status_code == 400 and len(response.content) < 2_000
