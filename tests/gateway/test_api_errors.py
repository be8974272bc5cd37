"""Across the API: one JSON error shape, the right status, never an HTML page or a 500."""

import httpx2 as httpx
import pytest

pytestmark = pytest.mark.django_db


def assert_json_error(response, status, type=None):
    assert response.status_code == status, response.content
    assert response.headers["Content-Type"].startswith("application/json"), response.headers["Content-Type"]
    error = response.json()["error"]
    assert set(error) >= {"type", "message"}
    assert error["message"]
    if type is not None:
        assert error["type"] == type
    return error


def test_it_answers_malformed_json_with_a_json_400(seeded, alice_client):
    response = alice_client.post("/api/agents/", data='{"name": "oops",', content_type="application/json")
    error = assert_json_error(response, 400, "invalid_request")
    assert "JSON" in error["message"]


def test_it_answers_malformed_json_at_sign_in_with_a_json_400(anon_client):
    response = anon_client.post("/api/auth/token/", data="username=alice", content_type="application/json")
    assert_json_error(response, 400, "invalid_request")


def test_it_answers_wrong_types_naming_the_fields(seeded, staff_client):
    response = staff_client.patch(
        "/api/admin/models/gpt-4-turbo/",
        {"context_window": "wide", "enabled": "perhaps", "input_price_per_1k": [1]},
        format="json",
    )
    error = assert_json_error(response, 400, "validation_error")
    assert set(error["fields"]) == {"context_window", "enabled", "input_price_per_1k"}
    assert "context_window" in error["message"]


def test_it_answers_a_json_array_where_an_object_belongs_with_a_400(seeded, alice_client):
    response = alice_client.post("/api/agents/", data="[1, 2, 3]", content_type="application/json")
    assert_json_error(response, 400, "validation_error")


def test_it_refuses_form_encoded_bodies_with_a_json_415(seeded, alice_client):
    response = alice_client.post(
        "/api/agents/", data="name=x&model=gpt-4-turbo", content_type="application/x-www-form-urlencoded"
    )
    assert_json_error(response, 415, "unsupported_media_type")


# The body limit stands in front of Django's ASGI handler (gateway.asgi), so these go over HTTP.
def test_it_answers_an_oversized_body_with_a_json_413(settings, live, alice_key):
    settings.MAX_REQUEST_BODY_BYTES = 1024
    body = {"name": "Verbose", "model": "gpt-4-turbo", "system_prompt": "x" * 2000}
    headers = {"Authorization": f"Bearer {alice_key}"}
    response = httpx.post(f"{live}/api/agents/", json=body, headers=headers, timeout=10)
    error = assert_json_error(response, 413, "request_too_large")
    assert "1024" in error["message"]

    # Below the limit the same request goes through.
    settings.MAX_REQUEST_BODY_BYTES = 4096
    assert httpx.post(f"{live}/api/agents/", json=body, headers=headers, timeout=10).status_code == 201


def test_it_answers_413_before_authentication(settings, live):
    settings.MAX_REQUEST_BODY_BYTES = 100
    body = {"username": "a" * 200, "password": "b"}
    assert_json_error(httpx.post(f"{live}/api/auth/token/", json=body, timeout=10), 413, "request_too_large")


@pytest.mark.parametrize("path", ["/nope", "/api/nope/", "/api/models/gpt-4-turbo/extra/", "/api/agents/not-a-number/"])
def test_an_unknown_url_is_a_json_404_not_html(alice_client, path):
    error = assert_json_error(alice_client.get(path), 404, "not_found")
    assert "<html" not in error["message"].lower()


def test_an_unknown_url_is_a_json_404_for_anonymous_callers_too(anon_client):
    error = assert_json_error(anon_client.get("/api/does-not-exist/"), 404, "not_found")
    assert "/api/does-not-exist/" in error["message"]


def test_a_wrong_method_is_a_json_405(alice_client):
    assert_json_error(alice_client.delete("/api/me/"), 405, "method_not_allowed")


def test_a_missing_token_is_a_json_401_with_a_challenge(anon_client):
    response = anon_client.get("/api/agents/")
    assert_json_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_wrong_api_key_is_a_json_401(anon_client):
    anon_client.credentials(HTTP_X_API_KEY="sk-gw-not-a-real-key")
    error = assert_json_error(anon_client.get("/api/models/"), 401, "authentication_failed")
    assert error["message"] == "Invalid API key."


@pytest.mark.parametrize("path", ["/api/models/", "/api/admin/models/", "/api/agents/"])
def test_every_list_is_paginated(seeded, staff_client, path):
    body = staff_client.get(path, {"page_size": 1}).json()
    assert set(body) >= {"count", "next", "previous", "results"}
    assert isinstance(body["results"], list)
    assert len(body["results"]) <= 1


def test_a_page_past_the_end_is_a_json_404(seeded, alice_client):
    assert_json_error(alice_client.get("/api/models/", {"page": 99}), 404, "not_found")


def test_a_page_size_is_capped(seeded, alice_client):
    body = alice_client.get("/api/models/", {"page_size": 100000}).json()
    assert body["count"] == 11
    assert len(body["results"]) == 11
