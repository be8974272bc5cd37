"""The model catalog: the read API for everyone signed in, the admin API for staff."""

from decimal import Decimal

import pytest

from llm_models import catalog
from llm_models.models import LLMModel

pytestmark = pytest.mark.django_db

NEW_MODEL = {
    "name": "llama-3-70b",
    "provider": "openai_compatible",
    "provider_model": "meta-llama/Meta-Llama-3-70B-Instruct",
    "context_window": 8192,
    "max_output_tokens": 2048,
    "input_price_per_1k": "0.0009",
    "output_price_per_1k": "0.0009",
    "base_url": "http://127.0.0.1:8001/v1",
    "api_key_env": "VLLM_API_KEY",
}


def test_it_lists_the_seeded_models_with_their_prices_and_kinds(seeded, alice_client):
    response = alice_client.get("/api/models/")
    assert response.status_code == 200
    by_name = {row["name"]: row for row in response.json()["results"]}
    assert set(by_name) == {
        "gpt-4-turbo",
        "gpt-3.5-turbo",
        "claude-3-opus",
        "claude-3-sonnet",
        "gpt-4o",
        "gpt-4o-mini",
        "claude-sonnet-4",
        "claude-sonnet-5-5",
        "claude-opus-5-5",
        "gpt-6-luna",
        "text-embedding-3-small",
    }
    assert (by_name["gpt-4o"]["supports_json_schema"], by_name["gpt-3.5-turbo"]["supports_vision"]) == (True, False)
    assert (by_name["gpt-4-turbo"]["kind"], by_name["text-embedding-3-small"]["kind"]) == ("chat", "embedding")
    assert Decimal(by_name["gpt-4-turbo"]["input_price_per_1k"]) == Decimal("0.01")
    assert Decimal(by_name["claude-3-opus"]["output_price_per_1k"]) == Decimal("0.075")
    assert by_name["claude-3-sonnet"]["provider"] == "anthropic"
    assert "api_key_env" not in by_name["gpt-4-turbo"]


def test_it_refuses_anonymous_callers(seeded, anon_client):
    response = anon_client.get("/api/models/")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "not_authenticated"


def test_the_list_is_paginated(seeded, alice_client):
    body = alice_client.get("/api/models/", {"page_size": 3}).json()
    assert body["count"] == 11
    assert len(body["results"]) == 3
    assert body["next"] and body["previous"] is None
    sizes = [len(body["results"])]
    while body["next"]:
        body = alice_client.get(body["next"]).json()
        sizes.append(len(body["results"]))
    assert sizes == [3, 3, 3, 2]


def test_it_shows_one_model_by_its_name_even_with_a_dot(seeded, alice_client):
    response = alice_client.get("/api/models/gpt-3.5-turbo/")
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "gpt-3.5-turbo"
    assert body["provider"] == "openai"
    assert body["context_window"] == 16385
    assert Decimal(body["output_price_per_1k"]) == Decimal("0.0015")
    assert "api_key_env" not in body
    assert "id" not in body


def test_it_hides_disabled_models_from_users(seeded, alice_client):
    LLMModel.objects.filter(name="claude-3-opus").update(enabled=False)
    names = [row["name"] for row in alice_client.get("/api/models/").json()["results"]]
    assert "claude-3-opus" not in names
    assert len(names) == 10

    response = alice_client.get("/api/models/claude-3-opus/")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"


def test_it_answers_404_for_an_unknown_model(seeded, alice_client):
    response = alice_client.get("/api/models/gpt-5-ultra/")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"


def test_users_cannot_write_through_the_read_api(seeded, staff_client):
    response = staff_client.post("/api/models/", NEW_MODEL, format="json")
    assert response.status_code == 405
    assert response.json()["error"]["type"] == "method_not_allowed"


def test_it_never_shows_the_api_key_variable_publicly(seeded, staff_client, alice_client):
    assert staff_client.post("/api/admin/models/", NEW_MODEL, format="json").status_code == 201
    body = alice_client.get("/api/models/llama-3-70b/").json()
    assert "api_key_env" not in body
    assert "VLLM_API_KEY" not in str(body)


# --- the admin API -----------------------------------------------------------------------------


def test_staff_create_a_model(seeded, staff_client, alice_client):
    response = staff_client.post("/api/admin/models/", NEW_MODEL, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["name"] == "llama-3-70b"
    assert response.json()["api_key_env"] == "VLLM_API_KEY"

    model = LLMModel.objects.get(name="llama-3-70b")
    assert model.provider == "openai_compatible"
    assert model.input_price_per_1k == Decimal("0.0009")
    assert model.enabled is True
    # Users see it at once.
    assert alice_client.get("/api/models/llama-3-70b/").status_code == 200


def test_staff_see_disabled_models_and_the_api_key_variable(seeded, staff_client):
    LLMModel.objects.filter(name="claude-3-opus").update(enabled=False)
    body = staff_client.get("/api/admin/models/").json()
    assert body["count"] == 11
    by_name = {row["name"]: row for row in body["results"]}
    assert by_name["claude-3-opus"]["enabled"] is False
    assert "api_key_env" in by_name["claude-3-opus"]

    response = staff_client.get("/api/admin/models/claude-3-opus/")
    assert response.status_code == 200


def test_staff_patch_any_metadata(seeded, staff_client):
    changes = {
        "provider_model": "gpt-4-turbo-2024-04-09",
        "context_window": 120000,
        "max_output_tokens": 8000,
        "input_price_per_1k": "0.02",
        "output_price_per_1k": "0.04",
        # Its own key first: OPENAI_API_KEY is never sent to the proxy (llm_models.vendor_keys).
        "api_key_env": "PROXY_API_KEY",
        "base_url": "https://proxy.example.com/v1",
    }
    for field, value in changes.items():
        response = staff_client.patch("/api/admin/models/gpt-4-turbo/", {field: value}, format="json")
        assert response.status_code == 200, (field, response.content)
    model = LLMModel.objects.get(name="gpt-4-turbo")
    assert model.provider_model == "gpt-4-turbo-2024-04-09"
    assert model.context_window == 120000
    assert model.max_output_tokens == 8000
    assert model.input_price_per_1k == Decimal("0.02")
    assert model.output_price_per_1k == Decimal("0.04")
    assert model.base_url == "https://proxy.example.com/v1"
    assert model.api_key_env == "PROXY_API_KEY"


def test_staff_edit_a_model_whose_name_has_a_dot(seeded, staff_client):
    response = staff_client.patch("/api/admin/models/gpt-3.5-turbo/", {"input_price_per_1k": "0.001"}, format="json")
    assert response.status_code == 200, response.content
    assert LLMModel.objects.get(name="gpt-3.5-turbo").input_price_per_1k == Decimal("0.001")


def test_staff_can_create_a_model_whose_name_has_a_dot(seeded, staff_client):
    response = staff_client.post("/api/admin/models/", {**NEW_MODEL, "name": "llama-3.1-8b"}, format="json")
    assert response.status_code == 201, response.content


def test_staff_disable_a_model_and_users_lose_it(seeded, staff_client, alice_client):
    catalog.model_get("claude-3-opus")  # warm the hot-path cache
    response = staff_client.patch("/api/admin/models/claude-3-opus/", {"enabled": False}, format="json")
    assert response.status_code == 200
    assert response.json()["enabled"] is False
    assert alice_client.get("/api/models/claude-3-opus/").status_code == 404
    assert catalog.model_get("claude-3-opus").enabled is False

    staff_client.patch("/api/admin/models/claude-3-opus/", {"enabled": True}, format="json")
    assert alice_client.get("/api/models/claude-3-opus/").status_code == 200


def test_models_are_disabled_not_deleted(seeded, staff_client):
    response = staff_client.delete("/api/admin/models/claude-3-opus/")
    assert response.status_code == 405
    assert LLMModel.objects.filter(name="claude-3-opus").exists()


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/api/admin/models/"),
        ("post", "/api/admin/models/"),
        ("get", "/api/admin/models/gpt-4-turbo/"),
        ("patch", "/api/admin/models/gpt-4-turbo/"),
    ],
)
def test_non_staff_get_403_from_the_admin_api(seeded, alice_client, method, path):
    response = getattr(alice_client, method)(path, {"enabled": False} if method != "get" else None, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "permission_denied"
    assert LLMModel.objects.get(name="gpt-4-turbo").enabled is True
    assert not LLMModel.objects.filter(name="llama-3-70b").exists()


def test_anonymous_callers_get_401_from_the_admin_api(seeded, anon_client):
    assert anon_client.get("/api/admin/models/").status_code == 401


def validation_fields(response):
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["type"] == "validation_error"
    return error["fields"]


@pytest.mark.parametrize("field", ["input_price_per_1k", "output_price_per_1k"])
def test_it_rejects_a_negative_price_naming_the_field(seeded, staff_client, field):
    fields = validation_fields(staff_client.post("/api/admin/models/", {**NEW_MODEL, field: "-0.01"}, format="json"))
    assert field in fields
    fields = validation_fields(staff_client.patch("/api/admin/models/gpt-4-turbo/", {field: "-1"}, format="json"))
    assert field in fields
    assert LLMModel.objects.get(name="gpt-4-turbo").input_price_per_1k == Decimal("0.01")


@pytest.mark.parametrize("field", ["context_window", "max_output_tokens"])
def test_it_rejects_a_zero_token_window_naming_the_field(seeded, staff_client, field):
    fields = validation_fields(staff_client.post("/api/admin/models/", {**NEW_MODEL, field: 0}, format="json"))
    assert field in fields
    fields = validation_fields(staff_client.patch("/api/admin/models/gpt-4-turbo/", {field: 0}, format="json"))
    assert field in fields


def test_it_rejects_more_output_than_context(seeded, staff_client):
    fields = validation_fields(
        staff_client.post(
            "/api/admin/models/",
            {**NEW_MODEL, "context_window": 1000, "max_output_tokens": 2000},
            format="json",
        )
    )
    assert "max_output_tokens" in fields
    # Against the stored context window too (gpt-4-turbo has 128k).
    fields = validation_fields(
        staff_client.patch("/api/admin/models/gpt-4-turbo/", {"max_output_tokens": 200000}, format="json")
    )
    assert "max_output_tokens" in fields
    fields = validation_fields(
        staff_client.patch("/api/admin/models/gpt-4-turbo/", {"context_window": 1000}, format="json")
    )
    assert "max_output_tokens" in fields or "context_window" in fields


def test_it_rejects_a_duplicate_name(seeded, staff_client):
    fields = validation_fields(
        staff_client.post("/api/admin/models/", {**NEW_MODEL, "name": "gpt-4-turbo"}, format="json")
    )
    assert "name" in fields
    assert LLMModel.objects.filter(name="gpt-4-turbo").count() == 1


def test_it_rejects_an_unknown_provider(seeded, staff_client):
    fields = validation_fields(
        staff_client.post("/api/admin/models/", {**NEW_MODEL, "provider": "acme"}, format="json")
    )
    assert "provider" in fields


def test_it_rejects_missing_fields_naming_each(seeded, staff_client):
    fields = validation_fields(staff_client.post("/api/admin/models/", {"name": "half-a-model"}, format="json"))
    assert {
        "provider",
        "provider_model",
        "context_window",
        "max_output_tokens",
        "input_price_per_1k",
        "output_price_per_1k",
    } <= set(fields)


def test_it_rejects_a_price_that_is_not_a_number(seeded, staff_client):
    fields = validation_fields(
        staff_client.patch("/api/admin/models/gpt-4-turbo/", {"input_price_per_1k": "cheap"}, format="json")
    )
    assert "input_price_per_1k" in fields


@pytest.mark.parametrize("name", ["has space", "with/slash", ".hidden", ""])
def test_it_rejects_a_name_that_cannot_live_in_a_url(seeded, staff_client, name):
    fields = validation_fields(staff_client.post("/api/admin/models/", {**NEW_MODEL, "name": name}, format="json"))
    assert "name" in fields


def test_a_models_key_variable_must_be_an_api_key_name(seeded, staff_client):
    response = staff_client.patch("/api/admin/models/gpt-4-turbo/", {"api_key_env": "SECRET_KEY"}, format="json")
    assert response.status_code == 400
    assert "api_key_env" in response.json()["error"]["fields"]
    response = staff_client.patch("/api/admin/models/gpt-4-turbo/", {"api_key_env": "VLLM_API_KEY"}, format="json")
    assert response.status_code == 200


# --- where a vendor's own key may go ---------------------------------------------------------


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"base_url": "https://collector.example.net/v1"}, "base_url"),
        ({"base_url": "https://api.openai.com.example.net/v1"}, "base_url"),
        ({"api_key_env": "ANTHROPIC_API_KEY"}, "base_url"),  # Anthropic's key to OpenAI's host
    ],
)
def test_staff_cannot_point_a_vendor_key_at_another_host(seeded, staff_client, changes, field):
    response = staff_client.patch("/api/admin/models/gpt-4-turbo/", changes, format="json")

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    model = LLMModel.objects.get(name="gpt-4-turbo")
    assert (model.base_url, model.api_key_env) == ("", "")


@pytest.mark.parametrize("variable", ["OPENAI_API_KEY", "ANTHROPIC_API_KEY"])
def test_a_compatible_server_cannot_name_a_vendors_key(seeded, staff_client, variable):
    response = staff_client.post("/api/admin/models/", {**NEW_MODEL, "api_key_env": variable}, format="json")

    assert response.status_code == 400
    assert "api_key_env" in response.json()["error"]["fields"]
    assert not LLMModel.objects.filter(name=NEW_MODEL["name"]).exists()


def test_a_vendor_key_goes_to_its_vendor_or_the_operators_hosts(seeded, staff_client, settings, monkeypatch):
    def point(url):
        return staff_client.patch("/api/admin/models/gpt-4-turbo/", {"base_url": url}, format="json").status_code

    assert point("https://api.openai.com/v1") == 200
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9911/v1")
    assert point("http://127.0.0.1:9911/v2") == 200  # the operator's own endpoint
    assert point("http://127.0.0.1:9912/v1") == 400  # another service on that machine
    assert point("https://gateway.example.org/openai") == 400
    settings.PROVIDER_ALLOWED_KEY_HOSTS = ["gateway.example.org"]
    assert point("https://gateway.example.org/openai") == 200


def test_only_staff_see_where_a_model_is_served_from(seeded, staff_client, alice_client):
    assert staff_client.post("/api/admin/models/", NEW_MODEL, format="json").status_code == 201

    for body in [
        *alice_client.get("/api/models/").json()["results"],
        alice_client.get("/api/models/llama-3-70b/").json(),
    ]:
        assert "base_url" not in body and "api_key_env" not in body
        assert "127.0.0.1:8001" not in str(body)
    assert staff_client.get("/api/admin/models/llama-3-70b/").json()["base_url"] == NEW_MODEL["base_url"]


def test_staff_set_a_base_url_or_clear_it_but_not_to_a_non_url(seeded, staff_client):
    path = "/api/admin/models/gpt-4-turbo/"
    response = staff_client.patch(path, {"base_url": "not a url"}, format="json")
    assert response.status_code == 400 and "base_url" in response.json()["error"]["fields"]
    assert staff_client.patch(path, {"base_url": ""}, format="json").json()["base_url"] == ""
