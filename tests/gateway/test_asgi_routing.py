"""The ASGI app sends /api/ and /v1/ through the API's lean middleware and everything else (the
admin) through the full MIDDLEWARE: the API keeps its security headers, the admin its sessions
and CSRF protection."""

import json
import urllib.error
import urllib.request

import pytest


def fetch(url: str, *, data: bytes | None = None, headers: dict | None = None):
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def test_api_responses_carry_the_security_headers_and_no_session(live, alice_key):
    status, headers, body = fetch(f"{live}/v1/models", headers={"Authorization": f"Bearer {alice_key}"})
    assert status == 200
    assert json.loads(body)["object"] == "list"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert "Set-Cookie" not in headers


def test_api_refuses_oversized_bodies_before_reading_them(live, alice_key, settings):
    settings.MAX_REQUEST_BODY_BYTES = 100
    status, _, body = fetch(
        f"{live}/v1/chat/completions",
        data=b"x" * 500,
        headers={"Authorization": f"Bearer {alice_key}", "Content-Type": "application/json"},
    )
    assert status == 413
    assert json.loads(body)["error"]["type"] == "request_too_large"


def test_admin_pages_keep_sessions_csrf_and_frame_protection(live):
    status, headers, _ = fetch(f"{live}/admin/login/")
    assert status == 200
    assert "csrftoken=" in headers["Set-Cookie"]
    assert headers["X-Frame-Options"] == "DENY"
    status, _, _ = fetch(
        f"{live}/admin/login/",
        data=b"username=a&password=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 403  # no CSRF token


@pytest.mark.parametrize("path", ["/v1/models", "/api/me/", "/api/docs/", "/admin/login/", "/healthz"])
def test_a_host_outside_allowed_hosts_is_a_json_400_on_both_chains(live, alice_key, path):
    headers = {"Host": "gateway.attacker.example", "Authorization": f"Bearer {alice_key}"}
    status, _, body = fetch(f"{live}{path}", headers=headers)
    assert status == 400
    assert json.loads(body)["error"]["type"] == "invalid_request"
