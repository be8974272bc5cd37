import pytest

from agents.models import Agent
from dialogs.models import Dialog

pytestmark = pytest.mark.django_db


def test_a_user_creates_a_dialog_with_a_model(alice_client, seeded):
    response = alice_client.post("/api/dialogs/", {"title": "Trip", "model": "gpt-4-turbo"}, format="json")
    assert response.status_code == 201
    assert response.json()["model"] == "gpt-4-turbo"


def test_the_model_defaults_from_the_agent(alice, alice_client, seeded):
    from llm_models.models import LLMModel

    agent = Agent.objects.create(name="A", model=LLMModel.objects.get(name="claude-3-opus"), owner=alice)
    response = alice_client.post("/api/dialogs/", {"agent": agent.pk}, format="json")
    assert response.status_code == 201 and response.json()["model"] == "claude-3-opus"


def test_it_needs_a_model_or_an_agent(alice_client, seeded):
    response = alice_client.post("/api/dialogs/", {"title": "x"}, format="json")
    assert response.status_code == 400 and "model" in response.json()["error"]["fields"]


def test_it_refuses_an_unknown_model_and_another_users_agent(alice_client, bob, seeded):
    from llm_models.models import LLMModel

    bobs = Agent.objects.create(name="B", model=LLMModel.objects.get(name="gpt-4-turbo"), owner=bob)
    response = alice_client.post("/api/dialogs/", {"model": "nope"}, format="json")
    assert response.status_code == 400 and "model" in response.json()["error"]["fields"]
    response = alice_client.post("/api/dialogs/", {"agent": bobs.pk}, format="json")
    assert response.status_code == 400 and "agent" in response.json()["error"]["fields"]


def test_the_list_is_the_users_own_newest_activity_first_and_searchable(alice, bob, alice_client, seeded):
    from llm_models.models import LLMModel

    model = LLMModel.objects.get(name="gpt-4-turbo")
    old = Dialog.objects.create(owner=alice, model=model, title="Old trip")
    Dialog.objects.create(owner=alice, model=model, title="Recipes")
    Dialog.objects.create(owner=bob, model=model, title="Bob's trip")
    old.save()  # activity moves it to the top

    titles = [d["title"] for d in alice_client.get("/api/dialogs/").json()["results"]]
    assert titles == ["Old trip", "Recipes"]
    titles = [d["title"] for d in alice_client.get("/api/dialogs/?search=trip").json()["results"]]
    assert titles == ["Old trip"]


def test_a_user_renames_and_deletes_their_dialog_but_not_anothers(alice, alice_client, bob_client, seeded):
    from llm_models.models import LLMModel

    dialog = Dialog.objects.create(owner=alice, model=LLMModel.objects.get(name="gpt-4-turbo"), title="a")
    url = f"/api/dialogs/{dialog.pk}/"
    assert bob_client.get(url).status_code == 404
    assert bob_client.patch(url, {"title": "mine"}, format="json").status_code == 404
    assert bob_client.delete(url).status_code == 404
    assert alice_client.patch(url, {"title": "renamed"}, format="json").json()["title"] == "renamed"
    assert alice_client.delete(url).status_code == 204
    assert not Dialog.objects.exists()
