"""Sign-in with the gateway's own JWTs: obtain, refresh (rotating), verify, /api/me/."""

from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from rest_framework_simplejwt.tokens import AccessToken

pytestmark = pytest.mark.django_db


def sign_in(client, username="alice", password="alice-password"):
    return client.post("/api/auth/token/", {"username": username, "password": password}, format="json")


def bearer(client, token):
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def assert_error(response, status, type=None):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    if type is not None:
        assert error["type"] == type
    return error


def test_it_signs_alice_in_with_her_password(alice, anon_client):
    response = sign_in(anon_client)
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= {"access", "refresh"}

    me = bearer(anon_client, body["access"]).get("/api/me/")
    assert me.status_code == 200
    assert me.json()["username"] == "alice"
    assert me.json()["email"] == "alice@example.com"
    assert me.json()["is_staff"] is False


def test_it_rejects_a_wrong_password_with_a_json_401(alice, anon_client):
    response = sign_in(anon_client, password="not-her-password")
    error = assert_error(response, 401, "authentication_failed")
    assert "credentials" in error["message"].lower()
    assert "access" not in response.json()


def test_it_rejects_an_unknown_user_like_a_wrong_password(anon_client):
    response = sign_in(anon_client, username="mallory", password="whatever-password")
    assert_error(response, 401, "authentication_failed")


def test_it_rejects_a_sign_in_without_a_password_naming_the_field(alice, anon_client):
    response = anon_client.post("/api/auth/token/", {"username": "alice"}, format="json")
    error = assert_error(response, 400, "validation_error")
    assert "password" in error["fields"]


def test_it_rejects_an_inactive_user(alice, anon_client):
    alice.is_active = False
    alice.save()
    assert_error(sign_in(anon_client), 401)


def test_it_rotates_the_refresh_token_and_refuses_the_used_one(alice, anon_client):
    first = sign_in(anon_client).json()

    refreshed = anon_client.post("/api/auth/token/refresh/", {"refresh": first["refresh"]}, format="json")
    assert refreshed.status_code == 200
    second = refreshed.json()
    assert second["refresh"] != first["refresh"]
    assert bearer(anon_client, second["access"]).get("/api/me/").status_code == 200

    anon_client.credentials()
    replay = anon_client.post("/api/auth/token/refresh/", {"refresh": first["refresh"]}, format="json")
    error = assert_error(replay, 401)
    assert "blacklisted" in error["message"].lower()

    # The new refresh token still works.
    again = anon_client.post("/api/auth/token/refresh/", {"refresh": second["refresh"]}, format="json")
    assert again.status_code == 200


def test_it_refuses_an_access_token_as_a_refresh_token(alice, anon_client):
    tokens = sign_in(anon_client).json()
    response = anon_client.post("/api/auth/token/refresh/", {"refresh": tokens["access"]}, format="json")
    error = assert_error(response, 401)
    assert "type" in error["message"].lower()


def test_it_verifies_a_good_token_and_refuses_a_bad_one(alice, anon_client):
    tokens = sign_in(anon_client).json()
    good = anon_client.post("/api/auth/token/verify/", {"token": tokens["access"]}, format="json")
    assert good.status_code == 200

    bad = anon_client.post("/api/auth/token/verify/", {"token": tokens["access"][:-4] + "AAAA"}, format="json")
    assert_error(bad, 401)


def test_me_refuses_anonymous_callers(anon_client):
    error = assert_error(anon_client.get("/api/me/"), 401, "not_authenticated")
    assert "credentials" in error["message"].lower()


def test_me_shows_staff_as_staff(staff_client):
    response = staff_client.get("/api/me/")
    assert response.status_code == 200
    assert response.json()["is_staff"] is True


# --- bad tokens -----------------------------------------------------------------------------


def gateway_token(user, **changes) -> str:
    token = AccessToken.for_user(user)
    for key, value in changes.items():
        token[key] = value
    return str(token)


def test_it_rejects_an_expired_token_saying_so(alice, anon_client):
    token = AccessToken.for_user(alice)
    token.set_exp(lifetime=-timedelta(minutes=1))
    error = assert_error(bearer(anon_client, str(token)).get("/api/me/"), 401, "authentication_failed")
    assert error["message"] == "Token has expired."


def test_it_rejects_a_token_whose_signature_was_changed(alice, anon_client):
    header, payload, signature = gateway_token(alice).split(".")
    tampered_sig = ("A" if signature[0] != "A" else "B") + signature[1:]
    error = assert_error(
        bearer(anon_client, f"{header}.{payload}.{tampered_sig}").get("/api/me/"), 401, "authentication_failed"
    )
    assert error["message"] == "Token signature is invalid."


def test_it_rejects_a_token_whose_claims_were_changed(alice, bob, anon_client):
    """Swap in bob's user id but keep alice's signature: the signature no longer matches."""
    header, _, signature = gateway_token(alice).split(".")
    _, bob_payload, _ = gateway_token(bob).split(".")
    error = assert_error(bearer(anon_client, f"{header}.{bob_payload}.{signature}").get("/api/me/"), 401)
    assert error["message"] == "Token signature is invalid."


def test_it_rejects_a_token_signed_with_another_key(alice, anon_client):
    claims = AccessToken.for_user(alice).payload
    forged = jwt.encode(claims, "not-the-gateway-secret-key-0123456789abcdef", algorithm="HS256")
    error = assert_error(bearer(anon_client, forged).get("/api/me/"), 401)
    assert error["message"] == "Token signature is invalid."


def test_it_rejects_an_unsigned_alg_none_token(alice, anon_client):
    claims = AccessToken.for_user(alice).payload
    unsigned = jwt.encode(claims, None, algorithm="none")
    error = assert_error(bearer(anon_client, unsigned).get("/api/me/"), 401, "authentication_failed")
    assert error["message"] == "Unsigned tokens (alg 'none') are not accepted."


def test_it_rejects_a_gateway_signed_token_with_an_issuer_it_does_not_know(alice, anon_client):
    claims = {**AccessToken.for_user(alice).payload, "iss": "https://evil.example.com"}
    token = jwt.encode(claims, settings.SIMPLE_JWT["SIGNING_KEY"], algorithm="HS256")
    error = assert_error(bearer(anon_client, token).get("/api/me/"), 401)
    assert "issuer" in error["message"].lower()
    assert "evil.example.com" in error["message"]


def test_it_rejects_garbage_in_the_authorization_header(anon_client):
    error = assert_error(bearer(anon_client, "not-a-jwt").get("/api/me/"), 401)
    assert error["message"] == "Token is malformed."


def test_it_rejects_a_token_of_a_deleted_user(alice, anon_client):
    token = gateway_token(alice)
    alice.delete()
    assert_error(bearer(anon_client, token).get("/api/me/"), 401)
