"""Password guessing is slow: failed sign-ins are counted per account and per client address, and
past the limit (10 per account, 50 per address in 15 minutes) a sign-in is refused until the
window ends, even with the right password."""

import json
import urllib.error
import urllib.request

import pytest
from django.test import Client

from accounts import throttle
from tests import factories
from tests.live_server import gateway_processes

pytestmark = pytest.mark.django_db

WINDOW = 900


@pytest.fixture
def now(monkeypatch):
    """The throttle's clock, pinned at the start of a window: now[0] += WINDOW moves to the next."""
    moment = [1_000 * WINDOW + 1.0]
    monkeypatch.setattr(throttle, "clock", lambda: moment[0])
    return moment


def sign_in(client, username="alice", password="alice-password", address="127.0.0.1"):
    body = {"username": username, "password": password}
    return client.post("/api/auth/token/", body, format="json", REMOTE_ADDR=address)


def assert_throttled(response):
    assert response.status_code == 429, response.content
    assert response.json()["error"]["type"] == "rate_limited"
    assert response.json()["error"]["message"] == f"Too many failed sign-ins; try again in {WINDOW - 1} s."
    assert response["Retry-After"] == str(WINDOW - 1)
    assert "access" not in response.json()


def test_ten_wrong_passwords_then_even_the_right_one_waits_for_the_window_to_end(alice, anon_client, now):
    for _ in range(10):
        assert sign_in(anon_client, password="a-guess").status_code == 401

    assert_throttled(sign_in(anon_client))

    now[0] += WINDOW  # never a lock for good
    assert sign_in(anon_client).status_code == 200


def test_the_account_limit_holds_whatever_address_the_guesses_come_from(alice, anon_client, now):
    for i in range(10):
        assert sign_in(anon_client, password="a-guess", address=f"10.0.0.{i}").status_code == 401
    assert_throttled(sign_in(anon_client, address="10.0.1.1"))
    # Other accounts are not held back.
    factories.make_user("bob")
    assert sign_in(anon_client, "bob", "bob-password", address="10.0.1.1").status_code == 200


def test_one_address_guessing_many_accounts_is_stopped_at_fifty(alice, anon_client, now):
    for i in range(50):
        assert sign_in(anon_client, username=f"user{i}", password="a-guess").status_code == 401

    assert_throttled(sign_in(anon_client))
    # Alice, from her own address, is not held back by another's guessing.
    assert sign_in(anon_client, address="192.0.2.7").status_code == 200


def test_the_limits_are_settings(alice, anon_client, now, settings):
    settings.SIGN_IN_FAILURES_PER_ACCOUNT = 2
    assert sign_in(anon_client, password="a-guess").status_code == 401
    assert sign_in(anon_client, password="a-guess").status_code == 401
    assert_throttled(sign_in(anon_client))


def test_a_limit_of_zero_turns_its_counter_off(alice, anon_client, now, settings):
    """Behind a proxy that hides the clients' addresses, the per-address limit would be everyone's."""
    settings.SIGN_IN_FAILURES_PER_ADDRESS = 0
    for i in range(60):
        assert sign_in(anon_client, username=f"user{i}", password="a-guess").status_code == 401
    assert sign_in(anon_client).status_code == 200


def test_the_admin_login_page_refuses_too_after_ten_wrong_passwords(now):
    factories.make_user("root", superuser=True)
    browser = Client()
    for _ in range(10):
        response = browser.post("/admin/login/", {"username": "root", "password": "a-guess"})
        assert response.status_code == 200 and "Please enter the correct username" in response.text

    response = browser.post("/admin/login/", {"username": "root", "password": "root-password"})
    assert response.status_code == 200
    assert f"Too many failed sign-ins; try again in {WINDOW - 1} s." in response.text
    assert "_auth_user_id" not in browser.session

    now[0] += WINDOW
    response = browser.post("/admin/login/", {"username": "root", "password": "root-password"})
    assert response.status_code == 302


def post(url: str, body: dict) -> tuple[int, str | None]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, None
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Retry-After")


@pytest.mark.django_db(transaction=True)
def test_server_processes_share_the_count_through_redis(alice):
    with gateway_processes(2, redis=True) as urls:
        for i in range(10):
            status, _ = post(f"{urls[i % 2]}/api/auth/token/", {"username": "alice", "password": "a-guess"})
            assert status == 401
        status, retry_after = post(f"{urls[0]}/api/auth/token/", {"username": "alice", "password": "alice-password"})

    assert status == 429
    assert retry_after is not None and 1 <= int(retry_after) <= WINDOW
