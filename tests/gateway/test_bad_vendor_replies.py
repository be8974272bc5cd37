"""A vendor (or an OpenAI-compatible server) that answers 200 with a body its format does not
allow: no message, no content, counts that are not numbers. Every caller (both /v1 formats and
dialogs) gets a 502 in its own error body, never a 500; a well-formed empty reply is an empty
reply."""

import httpx2 as httpx
import pytest

from tests.factories import make_dialog

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "Say hello"}]
MALFORMED_OPENAI = {
    "no choices": {},
    "empty choices": {"choices": []},
    "no message": {"choices": [{"finish_reason": "stop"}]},
    "null message": {"choices": [{"message": None}]},
    "choices not a list": {"choices": "x"},
    "choice not an object": {"choices": ["x"]},
    "message not an object": {"choices": [{"message": "x"}]},
    "content a number": {"choices": [{"message": {"role": "assistant", "content": 5}}]},
    "content a list": {"choices": [{"message": {"role": "assistant", "content": ["a"]}}]},
    "tool calls not a list": {"choices": [{"message": {"content": None, "tool_calls": "x"}}]},
    "usage not numbers": {
        "choices": [{"message": {"content": "hi"}}],
        "usage": {"prompt_tokens": "a", "completion_tokens": 1},
    },
}
MALFORMED_ANTHROPIC = {
    "no content": {"type": "message", "role": "assistant", "stop_reason": "end_turn"},
    "null content": {"type": "message", "content": None},
    "content a string": {"type": "message", "content": "x"},
    "block not an object": {"type": "message", "content": ["x"]},
    "usage not an object": {"type": "message", "content": [], "usage": "x"},
    "usage not numbers": {"type": "message", "content": [], "usage": {"input_tokens": "a", "output_tokens": 1}},
    "stop_reason a list": {"type": "message", "content": [], "stop_reason": ["end_turn"]},
}
# Bytes the fake sends as they are: JSON nested past Python's stack.
NESTED = b'{"choices": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
MALFORMED_OPENAI["nested past the stack"] = NESTED
MALFORMED_ANTHROPIC["nested past the stack"] = NESTED
CASES = [("gpt-3.5-turbo", "fake_openai", name, body) for name, body in MALFORMED_OPENAI.items()] + [
    ("claude-3-sonnet", "fake_anthropic", name, body) for name, body in MALFORMED_ANTHROPIC.items()
]


@pytest.fixture
def ask(live, alice, alice_key):
    """Ask `model` through one caller; the response."""

    def ask(caller: str, model: str) -> httpx.Response:
        headers = {"authorization": f"Bearer {alice_key}"}
        if caller == "openai":
            return httpx.post(f"{live}/v1/chat/completions", json={"model": model, "messages": HELLO}, headers=headers)
        if caller == "anthropic":
            body = {"model": model, "max_tokens": 50, "messages": HELLO}
            return httpx.post(f"{live}/v1/messages", json=body, headers=headers | {"anthropic-version": "2023-06-01"})
        dialog = make_dialog(alice, model=model)
        return httpx.post(f"{live}/api/dialogs/{dialog.pk}/messages/", json={"content": "hi"}, headers=headers)

    return ask


@pytest.mark.parametrize("caller", ["openai", "anthropic", "dialog"])
@pytest.mark.parametrize("model,fake_name,name,body", CASES, ids=[f"{case[1][5:]}: {case[2]}" for case in CASES])
def test_a_malformed_vendor_answer_is_a_502(request, ask, caller, model, fake_name, name, body):
    request.getfixturevalue(fake_name).configure(body=body)

    response = ask(caller, model)

    assert response.status_code == 502, response.content
    error = response.json()["error"]
    assert "malformed" in error["message"]
    assert error["type"] in ("provider_error", "server_error", "api_error")


@pytest.mark.parametrize("caller", ["openai", "anthropic", "dialog"])
@pytest.mark.parametrize(
    "model,fake_name,body",
    [
        (
            "gpt-3.5-turbo",
            "fake_openai",
            {"choices": [{"index": 0, "message": {"role": "assistant", "content": None}, "finish_reason": "stop"}]},
        ),
        ("claude-3-sonnet", "fake_anthropic", {"type": "message", "role": "assistant", "content": []}),
    ],
    ids=["openai null content", "anthropic no blocks"],
)
def test_a_well_formed_empty_answer_is_an_empty_reply(request, ask, caller, model, fake_name, body):
    request.getfixturevalue(fake_name).configure(body=body)

    response = ask(caller, model)

    assert response.status_code in (200, 201), response.content
    answer = response.json()
    if caller == "dialog":
        assert answer["assistant_message"]["content"] == ""
    elif caller == "openai":
        assert not answer["choices"][0]["message"].get("content")
    else:
        assert "".join(block.get("text", "") for block in answer["content"]) == ""


def test_a_nul_in_a_reply_is_dropped_from_the_stored_message(fake_openai, ask):
    fake_openai.configure(text="Hello\x00 there")

    response = ask("dialog", "gpt-3.5-turbo")

    assert response.status_code == 201, response.content
    assert response.json()["assistant_message"]["content"] == "Hello there"
