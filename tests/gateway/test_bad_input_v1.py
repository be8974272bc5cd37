"""The vendor-compatible endpoints (/v1/) under hostile input: JSON nested past Python's stack,
NUL in a model name (PostgreSQL refuses it in text), a message role that is not a string. Each is
a 4xx in the vendor's own error body, never a 500."""

import json

import httpx2 as httpx
import pytest

pytestmark = pytest.mark.django_db(transaction=True)

DEEP = "[" * 5000 + "]" * 5000
HELLO = [{"role": "user", "content": "Say hello"}]
OPENAI, ANTHROPIC = "openai", "anthropic"


@pytest.fixture
def post(live, alice_key):
    def post(path: str, body, *, format: str = OPENAI) -> httpx.Response:
        headers = {"content-type": "application/json", "authorization": f"Bearer {alice_key}"}
        if format == ANTHROPIC:
            headers["anthropic-version"] = "2023-06-01"
        content = body if isinstance(body, str) else json.dumps(body)
        return httpx.post(f"{live}{path}", content=content, headers=headers, timeout=10)

    return post


def vendor_error(response: httpx.Response, status: int, format: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    if format == ANTHROPIC:
        assert body["type"] == "error"
    assert body["error"]["message"]
    return body["error"]


@pytest.mark.parametrize(
    "path,format",
    [
        ("/v1/chat/completions", OPENAI),
        ("/v1/embeddings", OPENAI),
        ("/v1/messages", ANTHROPIC),
        ("/v1/messages/count_tokens", ANTHROPIC),
    ],
)
def test_json_nested_past_the_stack_is_a_400(post, path, format):
    vendor_error(post(path, DEEP, format=format), 400, format)


@pytest.mark.parametrize(
    "path,body,format",
    [
        ("/v1/chat/completions", {"model": "gpt-3.5\x00", "messages": HELLO}, OPENAI),
        ("/v1/embeddings", {"model": "text-embedding\x00", "input": "hi"}, OPENAI),
        ("/v1/messages", {"model": "claude\x00", "max_tokens": 5, "messages": HELLO}, ANTHROPIC),
        ("/v1/messages/count_tokens", {"model": "claude\x00", "messages": HELLO}, ANTHROPIC),
    ],
)
def test_a_nul_in_the_model_is_refused_as_no_model_name(post, path, body, format):
    error = vendor_error(post(path, body, format=format), 400, format)
    assert "must be a model name" in error["message"]


@pytest.mark.parametrize("format", [OPENAI, ANTHROPIC])
def test_a_nul_in_a_model_path_is_model_not_found(live, alice_key, format):
    headers = {"authorization": f"Bearer {alice_key}"}
    if format == ANTHROPIC:
        headers["anthropic-version"] = "2023-06-01"
    response = httpx.get(f"{live}/v1/models/gpt%00", headers=headers, timeout=10)
    vendor_error(response, 404, format)


ROLES = [["user"], {"name": "user"}, 1, None]


@pytest.mark.parametrize("model", ["gpt-3.5-turbo", "claude-3-sonnet"])
@pytest.mark.parametrize("role", ROLES, ids=["list", "object", "number", "null"])
@pytest.mark.parametrize(
    "path,format", [("/v1/chat/completions", OPENAI), ("/v1/messages", ANTHROPIC)], ids=[OPENAI, ANTHROPIC]
)
def test_a_role_that_is_not_a_string_is_a_400(post, fake_openai, fake_anthropic, path, format, model, role):
    body = {"model": model, "max_tokens": 5, "messages": [{"role": role, "content": "hi"}]}
    error = vendor_error(post(path, body, format=format), 400, format)
    assert "role" in error["message"]
    assert not fake_openai.requests and not fake_anthropic.requests
