"""A model name no model could have (longer than the catalog allows, or with control characters)
is refused at once on every endpoint that takes one, in that endpoint's error shape, echoing no
more than a name's length of it; nothing is looked up, cached or counted for it."""

import pytest
from rest_framework.test import APIClient

from billing.models import Reservation
from llm_models import catalog
from tests.factories import make_dialog, make_key

pytestmark = pytest.mark.django_db

ABSURD = {"a megabyte": "m" * 1_000_000, "201 characters": "m" * 201, "a NUL": "gpt-4o\x00", "a newline": "gpt\n4o"}


@pytest.fixture
def client(alice) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key(alice)[1]}")
    return client


@pytest.fixture
def tokenized(monkeypatch) -> list:
    import completions.core

    counted: list = []
    monkeypatch.setattr(completions.core, "count_messages", lambda *args: counted.append(args) or 1)
    monkeypatch.setattr(completions.core, "count_text", lambda *args: counted.append(args) or 1)
    return counted


def v1_requests(client: APIClient, name: str) -> dict:
    messages = [{"role": "user", "content": "Hello"}]
    return {
        "chat": client.post("/v1/chat/completions", {"model": name, "messages": messages}, format="json"),
        "messages": client.post("/v1/messages", {"model": name, "max_tokens": 5, "messages": messages}, format="json"),
        "count_tokens": client.post("/v1/messages/count_tokens", {"model": name, "messages": messages}, format="json"),
        "embeddings": client.post("/v1/embeddings", {"model": name, "input": "Hello"}, format="json"),
    }


@pytest.mark.parametrize("name", ABSURD.values(), ids=ABSURD.keys())
def test_the_v1_endpoints_refuse_an_absurd_model_name_first(seeded, client, tokenized, name):
    for endpoint, response in v1_requests(client, name).items():
        assert response.status_code == 400, endpoint
        assert len(response.content) < 1000, endpoint  # the name is not echoed back
        assert "at most 100 printable characters" in response.json()["error"]["message"], endpoint
    assert tokenized == []
    assert name not in catalog._cache
    assert not Reservation.objects.exists()


def test_v1_models_finds_no_model_of_an_absurd_name_and_does_not_echo_it(seeded, client):
    for name in ["m" * 201, "m" * 100_000, "gpt\x01"]:
        response = client.get(f"/v1/models/{name}")
        assert response.status_code == 404 and len(response.content) < 1000


@pytest.mark.parametrize("name", ABSURD.values(), ids=ABSURD.keys())
def test_the_rest_api_refuses_an_absurd_model_name(seeded, alice, alice_client, name):
    dialog = make_dialog(alice, model="gpt-3.5-turbo")
    answers = {
        "agent": alice_client.post("/api/agents/", {"name": "a", "system_prompt": "x", "model": name}, format="json"),
        "dialog": alice_client.post("/api/dialogs/", {"model": name}, format="json"),
        "dialog edit": alice_client.patch(f"/api/dialogs/{dialog.pk}/", {"model": name}, format="json"),
        "key": alice_client.post("/api/keys/", {"name": "k", "allowed_models": [name]}, format="json"),
        "usage": alice_client.get("/api/me/usage/", {"model": name}),
    }
    for what, response in answers.items():
        assert response.status_code == 400, what
        assert response.json()["error"]["type"] == "validation_error", what
        assert len(response.content) < 2000, what


def test_a_model_url_with_an_absurd_name_is_a_404(seeded, alice_client, staff_client):
    for name in ["m" * 201, "gpt\x01"]:
        assert alice_client.get(f"/api/models/{name}/").status_code == 404
        assert staff_client.get(f"/api/admin/models/{name}/").status_code == 404


def test_the_catalog_stays_bounded_however_many_names_are_invented(seeded, client, monkeypatch):
    monkeypatch.setattr(catalog, "MAX_ENTRIES", 50)
    for number in range(300):
        name = f"invented-{number}-" + "x" * 80
        response = client.post(
            "/v1/chat/completions", {"model": name, "messages": [{"role": "user", "content": "hi"}]}, format="json"
        )
        assert response.status_code == 404
    assert len(catalog._cache) <= 50
    assert all(len(name) <= 100 for name in catalog._cache)
