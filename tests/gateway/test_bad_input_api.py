"""The REST API (/api/) under hostile input: JSON nested past Python's stack, NUL characters
(PostgreSQL refuses them in text, so they must be refused before a query), integers past 64 bits.
Each is a 400 (or a 404 for a path) in the one error shape, never a 500."""

import pytest

from tests.factories import make_agent, make_dialog, make_key

pytestmark = pytest.mark.django_db

DEEP = "[" * 5000 + "]" * 5000
TOO_BIG = 2**63  # one past PostgreSQL's bigint


@pytest.fixture
def clients(seeded, alice, anon_client, alice_client, staff_client):
    """Who sends each request; a 500 comes back as a response, as a client would see it."""
    for client in (anon_client, alice_client, staff_client):
        client.raise_request_exception = False
    return {"anon": anon_client, "alice": alice_client, "staff": staff_client}


def assert_error(response, status: int, type: str) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["type"] == type and error["message"]
    return error


@pytest.mark.parametrize(
    "who,method,path",
    [
        ("anon", "post", "/api/auth/token/"),
        ("anon", "post", "/api/auth/token/refresh/"),
        ("alice", "post", "/api/agents/"),
        ("alice", "post", "/api/dialogs/"),
        ("alice", "post", "/api/keys/"),
        ("staff", "post", "/api/admin/models/"),
        ("staff", "patch", "/api/admin/models/gpt-4-turbo/"),
    ],
)
def test_json_nested_past_the_stack_is_a_400(clients, who, method, path):
    response = getattr(clients[who], method)(path, data=DEEP, content_type="application/json")
    assert_error(response, 400, "invalid_request")


@pytest.mark.parametrize(
    "method,path,body,field",
    [
        ("post", "/api/agents/", {"name": "Helper", "model": "gpt-4\x00"}, "model"),
        ("post", "/api/agents/", {"name": "Help\x00er", "model": "gpt-4-turbo"}, "name"),
        ("post", "/api/dialogs/", {"model": "gpt-4\x00"}, "model"),
        ("post", "/api/keys/", {"name": "laptop", "allowed_models": ["gpt-4\x00"]}, "allowed_models"),
        ("post", "/api/keys/", {"name": "lap\x00top"}, "name"),
    ],
)
def test_a_nul_in_a_name_or_model_is_a_400(clients, method, path, body, field):
    error = assert_error(getattr(clients["alice"], method)(path, body, format="json"), 400, "validation_error")
    assert field in error["fields"]


def test_a_nul_in_a_model_when_editing_is_a_400(clients, alice):
    agent = make_agent(alice, model="gpt-4-turbo")
    dialog = make_dialog(alice, model="gpt-4-turbo")
    key, _ = make_key(alice)
    for path, body in [
        (f"/api/agents/{agent.pk}/", {"model": "x\x00"}),
        (f"/api/dialogs/{dialog.pk}/", {"model": "x\x00"}),
        (f"/api/keys/{key.pk}/", {"allowed_models": ["x\x00"]}),
    ]:
        assert_error(clients["alice"].patch(path, body, format="json"), 400, "validation_error")


@pytest.mark.parametrize(
    "who,path", [("alice", "/api/models/x%00/"), ("staff", "/api/admin/models/x%00/"), ("alice", "/api/models/%00/")]
)
def test_a_nul_in_a_model_path_is_a_404(clients, who, path):
    assert_error(clients[who].get(path), 404, "not_found")


@pytest.mark.parametrize(
    "body",
    [
        {"content": "hello\x00"},
        {"content": [{"type": "text", "text": "hello\x00"}]},
        {"content": [{"type": "image_url", "image_url": {"url": "https://example.com/a\x00.png"}}]},
        {"content": [{"type": "text", "text": "hello", "note\x00": 1}]},
    ],
)
def test_a_nul_in_a_dialog_message_is_a_400(clients, alice, body):
    dialog = make_dialog(alice, model="gpt-4-turbo")
    response = clients["alice"].post(f"/api/dialogs/{dialog.pk}/messages/", body, format="json")
    error = assert_error(response, 400, "validation_error")
    assert "content" in error["fields"]


@pytest.mark.parametrize(
    "who,method,path,body,field",
    [
        ("staff", "patch", "quota", {"token_limit": TOO_BIG}, "token_limit"),
        ("staff", "patch", "quota", {"requests_per_minute": TOO_BIG}, "requests_per_minute"),
        ("staff", "patch", "quota", {"usd_limit": 1e23}, "usd_limit"),
        ("alice", "post", "/api/keys/", {"name": "k", "token_limit": TOO_BIG}, "token_limit"),
        ("alice", "post", "/api/keys/", {"name": "k", "tokens_per_minute": TOO_BIG}, "tokens_per_minute"),
        ("alice", "post", "/api/keys/", {"name": "k", "usd_limit": 1e23}, "usd_limit"),
        ("staff", "patch", "/api/admin/models/gpt-4-turbo/", {"input_price_per_1k": 1e23}, "input_price_per_1k"),
        ("staff", "patch", "/api/admin/models/gpt-4-turbo/", {"context_window": 1e23}, "context_window"),
        ("staff", "patch", "/api/admin/models/gpt-4-turbo/", {"context_window": TOO_BIG}, "context_window"),
        ("alice", "post", "/api/agents/", {"name": "a", "model": "gpt-4-turbo", "max_tokens": TOO_BIG}, "max_tokens"),
    ],
)
def test_a_number_past_64_bits_is_a_400(clients, alice, who, method, path, body, field):
    path = f"/api/admin/users/{alice.pk}/quota/" if path == "quota" else path
    error = assert_error(getattr(clients[who], method)(path, body, format="json"), 400, "validation_error")
    assert field in error["fields"]


def test_the_largest_64_bit_token_limit_is_taken(clients, alice):
    response = clients["staff"].patch(
        f"/api/admin/users/{alice.pk}/quota/", {"token_limit": TOO_BIG - 1}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["token_limit"] == TOO_BIG - 1
