import pytest

from dialogs.models import Dialog
from tests.factories import make_agent, make_dialog

pytestmark = pytest.mark.django_db


def test_a_user_creates_a_dialog_with_a_model(alice_client, seeded):
    response = alice_client.post("/api/dialogs/", {"title": "Trip", "model": "gpt-4-turbo"}, format="json")
    assert response.status_code == 201
    assert response.json()["model"] == "gpt-4-turbo"


def test_the_model_defaults_from_the_agent(alice, alice_client, seeded):
    agent = make_agent(alice, model="claude-3-opus", name="A")
    response = alice_client.post("/api/dialogs/", {"agent": agent.pk}, format="json")
    assert response.status_code == 201 and response.json()["model"] == "claude-3-opus"


def test_it_needs_a_model_or_an_agent(alice_client, seeded):
    response = alice_client.post("/api/dialogs/", {"title": "x"}, format="json")
    assert response.status_code == 400 and "model" in response.json()["error"]["fields"]


def test_it_refuses_an_unknown_model_and_another_users_agent(alice_client, bob, seeded):
    bobs = make_agent(bob, model="gpt-4-turbo", name="B")
    response = alice_client.post("/api/dialogs/", {"model": "nope"}, format="json")
    assert response.status_code == 400 and "model" in response.json()["error"]["fields"]
    response = alice_client.post("/api/dialogs/", {"agent": bobs.pk}, format="json")
    assert response.status_code == 400 and "agent" in response.json()["error"]["fields"]


def test_the_list_is_the_users_own_newest_activity_first_and_searchable(alice, bob, alice_client, gpt4_turbo):
    old = make_dialog(alice, model=gpt4_turbo, title="Old trip")
    make_dialog(alice, model=gpt4_turbo, title="Recipes")
    make_dialog(bob, model=gpt4_turbo, title="Bob's trip")
    old.save()  # activity moves it to the top

    titles = [d["title"] for d in alice_client.get("/api/dialogs/").json()["results"]]
    assert titles == ["Old trip", "Recipes"]
    titles = [d["title"] for d in alice_client.get("/api/dialogs/?search=trip").json()["results"]]
    assert titles == ["Old trip"]


def test_a_user_renames_and_deletes_their_dialog_but_not_anothers(alice, alice_client, bob_client, gpt4_turbo):
    dialog = make_dialog(alice, model=gpt4_turbo, title="a")
    url = f"/api/dialogs/{dialog.pk}/"
    assert bob_client.get(url).status_code == 404
    assert bob_client.patch(url, {"title": "mine"}, format="json").status_code == 404
    assert bob_client.delete(url).status_code == 404
    assert alice_client.patch(url, {"title": "renamed"}, format="json").json()["title"] == "renamed"
    assert alice_client.delete(url).status_code == 204
    assert not Dialog.objects.exists()
