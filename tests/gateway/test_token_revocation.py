"""What ends the gateway's own tokens: a password change, signing out, a session's maximum age;
and a refresh token is spent once, however many ask at the same moment."""

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from threading import Barrier

import pytest
from django.test import Client

from accounts.tokens import SessionRefreshToken
from tests import factories
from tests.live_server import gateway_processes

pytestmark = pytest.mark.django_db


def sign_in(client, username="alice", password="alice-password"):
    response = client.post("/api/auth/token/", {"username": username, "password": password}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def me(client, access):
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    response = client.get("/api/me/")
    client.credentials()
    return response


def refresh(client, token):
    return client.post("/api/auth/token/refresh/", {"refresh": token}, format="json")


def assert_revoked(response):
    assert response.status_code == 401, response.content
    assert response.json()["error"]["message"] == "Token was revoked (password change or sign-out): sign in again."


def test_a_password_change_ends_the_tokens_signed_in_with_the_old_one(alice, anon_client):
    tokens = sign_in(anon_client)
    assert me(anon_client, tokens["access"]).status_code == 200

    alice.set_password("a-new-password-of-alices")
    alice.save()

    assert_revoked(me(anon_client, tokens["access"]))
    assert_revoked(refresh(anon_client, tokens["refresh"]))
    verify = anon_client.post("/api/auth/token/verify/", {"token": tokens["access"]}, format="json")
    assert verify.status_code == 401
    fresh = sign_in(anon_client, password="a-new-password-of-alices")
    assert me(anon_client, fresh["access"]).status_code == 200


def test_a_password_set_by_staff_in_the_admin_ends_the_users_tokens(alice, anon_client):
    tokens = sign_in(anon_client)
    admin = Client()
    admin.force_login(factories.make_user("root", superuser=True))
    new_password = "set-by-staff-0123"
    response = admin.post(
        f"/admin/auth/user/{alice.pk}/password/",
        {"password1": new_password, "password2": new_password, "usable_password": "true"},
    )
    assert response.status_code == 302, response.content

    assert_revoked(me(anon_client, tokens["access"]))
    assert_revoked(refresh(anon_client, tokens["refresh"]))


def test_signing_out_ends_every_token_of_the_user(alice, bob, anon_client):
    laptop, phone = sign_in(anon_client), sign_in(anon_client)
    bobs = sign_in(anon_client, "bob", "bob-password")

    response = anon_client.post("/api/auth/logout/", {"refresh": laptop["refresh"]}, format="json")
    assert response.status_code == 200, response.content

    for session in (laptop, phone):
        assert_revoked(me(anon_client, session["access"]))
        assert_revoked(refresh(anon_client, session["refresh"]))
    # Bob's sessions are his own; alice signs in again as before.
    assert me(anon_client, bobs["access"]).status_code == 200
    assert me(anon_client, sign_in(anon_client)["access"]).status_code == 200


def test_signing_out_needs_a_refresh_token_of_the_gateways(alice, anon_client):
    tokens = sign_in(anon_client)
    response = anon_client.post("/api/auth/logout/", {"refresh": tokens["access"]}, format="json")
    assert response.status_code == 401
    assert me(anon_client, tokens["access"]).status_code == 200


def test_refreshing_keeps_the_time_of_sign_in_and_never_passes_the_sessions_maximum(alice, anon_client, settings):
    settings.JWT_SESSION_MAX = timedelta(days=2)  # shorter than a refresh token's 7 days
    first = SessionRefreshToken(sign_in(anon_client)["refresh"])

    response = refresh(anon_client, str(first))
    assert response.status_code == 200, response.content
    second = SessionRefreshToken(response.json()["refresh"])
    assert second["signed_in"] == first["signed_in"]
    assert second["exp"] == first["signed_in"] + 2 * 24 * 3600


def test_it_refuses_to_refresh_a_session_older_than_its_maximum(alice, anon_client):
    token = SessionRefreshToken.for_user(alice)
    token["signed_in"] -= 31 * 24 * 3600  # signed in 31 days ago, refreshed ever since

    response = refresh(anon_client, str(token))
    assert response.status_code == 401, response.content
    assert response.json()["error"]["message"] == "This session is over: sign in again."


def test_checking_a_token_costs_one_query(alice, anon_client, django_assert_num_queries):
    """The user and their token generation come together; the stamp is computed, not looked up."""
    access = str(SessionRefreshToken.for_user(alice).access_token)
    with django_assert_num_queries(1):
        assert me(anon_client, access).status_code == 200


def test_tokens_made_without_the_gateways_stamp_are_refused(alice, anon_client):
    """Tokens of an earlier release (or forged with the key) carry no stamp: sign in again."""
    token = SessionRefreshToken.for_user(alice)
    del token["stamp"]
    assert_revoked(me(anon_client, str(token.access_token)))
    assert_revoked(refresh(anon_client, str(token)))


# --- one refresh token, many refreshes at once ----------------------------------------------


def post(url: str, body: dict) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        error.read()
        return error.code


@pytest.mark.django_db(transaction=True)
def test_fifteen_refreshes_of_one_token_at_once_through_three_processes_let_one_through(alice):
    token = str(SessionRefreshToken.for_user(alice))
    start = Barrier(15)

    def refresh_at_once(url: str) -> int:
        start.wait()
        return post(f"{url}/api/auth/token/refresh/", {"refresh": token})

    with gateway_processes(3, redis=False) as urls:
        with ThreadPoolExecutor(15) as pool:
            statuses = list(pool.map(refresh_at_once, [urls[i % 3] for i in range(15)]))

    assert sorted(statuses) == [200] + [401] * 14, statuses
