"""Agents: saved system prompts with a model and parameters, at /api/agents/."""

import pytest

from agents.models import Agent
from llm_models.models import LLMModel
from tests.factories import make_agent, make_model

pytestmark = pytest.mark.django_db

WRITER = {
    "name": "Copy editor",
    "description": "Tightens prose.",
    "system_prompt": "You are a careful copy editor.",
    "model": "gpt-4-turbo",
    "temperature": 0.3,
    "max_tokens": 1000,
}


@pytest.fixture
def models(seeded):
    """The seeded catalog, by name."""
    return seeded


@pytest.fixture
def alices_agent(models, alice):
    return make_agent(alice, model=models["gpt-4-turbo"], name="Alice's helper", system_prompt="Be brief.")


@pytest.fixture
def bobs_agent(models, bob):
    return make_agent(bob, model=models["claude-3-opus"], name="Bob's secret", system_prompt="Bob's private prompt.")


@pytest.fixture
def shared_agent(models):
    return make_agent(
        None, model=models["claude-3-sonnet"], name="House style", system_prompt="Write in the house style."
    )


def fields_of(response):
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["type"] == "validation_error"
    return error["fields"]


# --- create, read, update, delete -----------------------------------------------------------


def test_alice_creates_an_agent_giving_the_model_by_name(models, alice, alice_client):
    response = alice_client.post("/api/agents/", WRITER, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["model"] == "gpt-4-turbo"
    assert body["owner"] == "alice"
    assert body["shared"] is False
    assert body["temperature"] == 0.3
    assert body["max_tokens"] == 1000

    agent = Agent.objects.get(pk=body["id"])
    assert agent.owner == alice
    assert agent.model == models["gpt-4-turbo"]
    assert agent.system_prompt == "You are a careful copy editor."


def test_an_agent_needs_only_a_name_and_a_model(models, alice_client):
    response = alice_client.post("/api/agents/", {"name": "Plain", "model": "gpt-3.5-turbo"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["temperature"] is None
    assert response.json()["max_tokens"] is None


def test_alice_cannot_create_an_agent_for_bob(models, alice, bob, alice_client):
    response = alice_client.post("/api/agents/", {**WRITER, "owner": "bob"}, format="json")
    assert response.status_code == 201
    assert Agent.objects.get(pk=response.json()["id"]).owner == alice


def test_alice_sees_her_own_and_the_shared_agents_but_not_bobs(alices_agent, bobs_agent, shared_agent, alice_client):
    response = alice_client.get("/api/agents/")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert {"count", "next", "previous", "results"} <= set(body)
    by_name = {row["name"]: row for row in body["results"]}
    assert set(by_name) == {"Alice's helper", "House style"}
    assert by_name["House style"]["shared"] is True
    assert by_name["House style"]["owner"] is None
    assert "Bob's private prompt." not in response.content.decode()


def test_alice_reads_her_agent_and_a_shared_one(alices_agent, shared_agent, alice_client):
    mine = alice_client.get(f"/api/agents/{alices_agent.pk}/")
    assert mine.status_code == 200
    assert mine.json()["model"] == "gpt-4-turbo"
    assert mine.json()["system_prompt"] == "Be brief."
    assert alice_client.get(f"/api/agents/{shared_agent.pk}/").status_code == 200


@pytest.mark.parametrize("method", ["get", "patch", "put", "delete"])
def test_bobs_agent_is_a_404_for_alice(bobs_agent, alice_client, method):
    response = getattr(alice_client, method)(
        f"/api/agents/{bobs_agent.pk}/", {**WRITER, "name": "Hijacked"}, format="json"
    )
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"
    bobs_agent.refresh_from_db()
    assert bobs_agent.name == "Bob's secret"


def test_alice_edits_her_agent(alices_agent, alice_client):
    response = alice_client.patch(
        f"/api/agents/{alices_agent.pk}/",
        {"model": "claude-3-opus", "temperature": 1.5, "system_prompt": "Be thorough."},
        format="json",
    )
    assert response.status_code == 200, response.content
    alices_agent.refresh_from_db()
    assert alices_agent.model.name == "claude-3-opus"
    assert alices_agent.temperature == 1.5
    assert alices_agent.system_prompt == "Be thorough."
    assert alices_agent.name == "Alice's helper"


def test_alice_replaces_her_agent_with_put(alices_agent, alice_client):
    response = alice_client.put(f"/api/agents/{alices_agent.pk}/", WRITER, format="json")
    assert response.status_code == 200, response.content
    alices_agent.refresh_from_db()
    assert alices_agent.name == "Copy editor"


def test_alice_deletes_her_agent(alices_agent, alice_client):
    response = alice_client.delete(f"/api/agents/{alices_agent.pk}/")
    assert response.status_code == 204
    assert not Agent.objects.filter(pk=alices_agent.pk).exists()


def test_anonymous_callers_get_401(alices_agent, anon_client):
    assert anon_client.get("/api/agents/").status_code == 401
    assert anon_client.post("/api/agents/", WRITER, format="json").status_code == 401


# --- shared agents ----------------------------------------------------------------------------


def test_staff_create_a_shared_agent_everyone_sees(models, staff_client, alice_client, bob_client):
    response = staff_client.post("/api/agents/", {**WRITER, "shared": True}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["shared"] is True
    assert response.json()["owner"] is None
    agent_id = response.json()["id"]

    for client in (alice_client, bob_client):
        assert client.get(f"/api/agents/{agent_id}/").status_code == 200


def test_alice_cannot_create_a_shared_agent(models, alice_client):
    response = alice_client.post("/api/agents/", {**WRITER, "shared": True}, format="json")
    assert "shared" in fields_of(response)
    assert not Agent.objects.exists()


@pytest.mark.parametrize("method", ["patch", "put", "delete"])
def test_alice_cannot_change_a_shared_agent(shared_agent, alice_client, method):
    response = getattr(alice_client, method)(
        f"/api/agents/{shared_agent.pk}/", {**WRITER, "name": "Mine now"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "permission_denied"
    shared_agent.refresh_from_db()
    assert shared_agent.name == "House style"


def test_staff_edit_and_delete_a_shared_agent(shared_agent, staff_client):
    response = staff_client.patch(f"/api/agents/{shared_agent.pk}/", {"name": "House style v2"}, format="json")
    assert response.status_code == 200
    assert response.json()["shared"] is True

    # A full replacement that does not mention `shared` keeps it shared.
    response = staff_client.put(f"/api/agents/{shared_agent.pk}/", WRITER, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["shared"] is True

    assert staff_client.delete(f"/api/agents/{shared_agent.pk}/").status_code == 204


def test_an_agent_cannot_become_shared_or_private_later(alices_agent, shared_agent, alice_client, staff_client):
    response = alice_client.patch(f"/api/agents/{alices_agent.pk}/", {"shared": True}, format="json")
    assert "shared" in fields_of(response)
    response = staff_client.patch(f"/api/agents/{shared_agent.pk}/", {"shared": False}, format="json")
    assert "shared" in fields_of(response)


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize("temperature", [-0.1, 2.01, 5])
def test_it_rejects_a_temperature_outside_0_to_2(models, alice_client, temperature):
    response = alice_client.post("/api/agents/", {**WRITER, "temperature": temperature}, format="json")
    assert "temperature" in fields_of(response)


@pytest.mark.parametrize("temperature", [0, 2])
def test_it_accepts_the_ends_of_the_temperature_range(models, alice_client, temperature):
    response = alice_client.post("/api/agents/", {**WRITER, "temperature": temperature}, format="json")
    assert response.status_code == 201


def test_it_rejects_a_temperature_that_is_not_a_number(models, alice_client):
    response = alice_client.post("/api/agents/", {**WRITER, "temperature": "hot"}, format="json")
    assert "temperature" in fields_of(response)


def test_it_rejects_more_tokens_than_the_model_can_write(models, alice_client):
    limit = models["gpt-4-turbo"].max_output_tokens
    response = alice_client.post("/api/agents/", {**WRITER, "max_tokens": limit + 1}, format="json")
    fields = fields_of(response)
    assert "max_tokens" in fields
    assert str(limit) in str(fields["max_tokens"])

    response = alice_client.post("/api/agents/", {**WRITER, "max_tokens": limit}, format="json")
    assert response.status_code == 201


def test_it_checks_max_tokens_against_a_newly_chosen_model(models, alices_agent, alice_client):
    make_model(name="tiny", provider="openai_compatible", provider_model="tiny", max_output_tokens=256)
    alice_client.patch(f"/api/agents/{alices_agent.pk}/", {"max_tokens": 1000}, format="json")
    response = alice_client.patch(f"/api/agents/{alices_agent.pk}/", {"model": "tiny"}, format="json")
    assert "max_tokens" in fields_of(response)
    alices_agent.refresh_from_db()
    assert alices_agent.model.name == "gpt-4-turbo"


@pytest.mark.parametrize("max_tokens", [0, -5, "lots"])
def test_it_rejects_a_max_tokens_that_is_not_a_positive_number(models, alice_client, max_tokens):
    response = alice_client.post("/api/agents/", {**WRITER, "max_tokens": max_tokens}, format="json")
    assert "max_tokens" in fields_of(response)


def test_it_refuses_a_disabled_model(models, alice_client):
    LLMModel.objects.filter(name="claude-3-opus").update(enabled=False)
    response = alice_client.post("/api/agents/", {**WRITER, "model": "claude-3-opus"}, format="json")
    assert "model" in fields_of(response)


def test_it_refuses_an_unknown_model(models, alice_client):
    response = alice_client.post("/api/agents/", {**WRITER, "model": "gpt-9"}, format="json")
    assert "model" in fields_of(response)


def test_it_rejects_an_agent_without_name_or_model_naming_both(models, alice_client):
    fields = fields_of(alice_client.post("/api/agents/", {"description": "?"}, format="json"))
    assert {"name", "model"} <= set(fields)


def test_an_agent_keeps_working_after_its_model_is_disabled(alices_agent, alice_client):
    """Disabling a model must not make its agents unreadable or uneditable."""
    LLMModel.objects.filter(name="gpt-4-turbo").update(enabled=False)
    response = alice_client.get(f"/api/agents/{alices_agent.pk}/")
    assert response.status_code == 200
    assert response.json()["model"] == "gpt-4-turbo"
    response = alice_client.patch(f"/api/agents/{alices_agent.pk}/", {"name": "Renamed"}, format="json")
    assert response.status_code == 200
