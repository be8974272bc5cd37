"""API keys: made, listed and revoked at /api/keys/; the secret is shown once and only its hash
is stored; a key authenticates as its user, within its own limits; staff revoke keys in the admin."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from billing.models import APIKey, Quota, Reservation, UsageRecord, hash_key
from tests.factories import make_dialog, make_key, seeded_model, set_quota

pytestmark = pytest.mark.django_db


def key_client(secret: str, header: str = "bearer") -> APIClient:
    client = APIClient()
    if header == "bearer":
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    else:
        client.credentials(HTTP_X_API_KEY=secret)
    return client


def chat(client, model="gpt-3.5-turbo", max_tokens=20, content="Hello"):
    return client.post(
        "/v1/chat/completions",
        {"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": content}]},
        format="json",
    )


def test_a_new_key_is_shown_once_and_only_its_hash_is_stored(alice_client):
    response = alice_client.post("/api/keys/", {"name": "ci"}, format="json")

    assert response.status_code == 201
    body = response.json()
    secret = body["key"]
    assert secret.startswith("sk-gw-") and len(secret) > 40
    assert body["prefix"] == secret[:12]
    assert body["name"] == "ci" and body["active"] is True and body["revoked_at"] is None
    key = APIKey.objects.get(pk=body["id"])
    assert key.key_hash == hash_key(secret) and key.prefix == secret[:12]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {APIKey._meta.db_table}")
        rows = cursor.fetchall()
    assert rows and not any(secret in str(value) for row in rows for value in row)

    assert "key" not in alice_client.get(f"/api/keys/{key.pk}/").json()
    listed = alice_client.get("/api/keys/").json()["results"]
    assert [k["prefix"] for k in listed] == [secret[:12]] and "key" not in listed[0]


def test_a_key_gets_a_name_expiry_models_and_limits(alice_client, seeded):
    expires = (timezone.now() + timedelta(days=30)).isoformat()
    response = alice_client.post(
        "/api/keys/",
        {
            "name": "batch job",
            "expires_at": expires,
            "allowed_models": ["gpt-3.5-turbo"],
            "token_limit": 5000,
            "usd_limit": "2.50",
        },
        format="json",
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["allowed_models"] == ["gpt-3.5-turbo"]
    assert body["token_limit"] == 5000 and body["usd_limit"] == "2.50000000"
    assert body["expires_at"] is not None


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"name": "x", "expires_at": "2001-01-01T00:00:00Z"},
        {"name": "x", "allowed_models": ["no-such-model"]},
        {"name": "x", "token_limit": -1},
    ],
)
def test_a_key_with_bad_fields_is_refused(alice_client, seeded, fields):
    response = alice_client.post("/api/keys/", fields, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "validation_error"
    assert not APIKey.objects.exists()


def test_users_see_only_their_own_keys(alice_client, alice, bob):
    make_key(alice, name="alice's")
    bobs, _ = make_key(bob, name="bob's")

    assert [k["name"] for k in alice_client.get("/api/keys/").json()["results"]] == ["alice's"]
    assert alice_client.get(f"/api/keys/{bobs.pk}/").status_code == 404
    assert alice_client.delete(f"/api/keys/{bobs.pk}/").status_code == 404
    assert alice_client.patch(f"/api/keys/{bobs.pk}/", {"name": "mine"}, format="json").status_code == 404
    bobs.refresh_from_db()
    assert bobs.revoked_at is None and bobs.name == "bob's"


def test_keys_need_a_signed_in_user(anon_client):
    assert anon_client.get("/api/keys/").status_code == 401


@pytest.mark.parametrize("header", ["bearer", "x-api-key"])
def test_a_key_authenticates_as_its_user(alice, alice_key, header):
    response = key_client(alice_key, header).get("/api/me/")

    assert response.status_code == 200
    assert response.json()["username"] == "alice"
    assert APIKey.objects.get().last_used_at is not None


def test_a_key_works_on_the_rest_api_too(alice_key, seeded):
    assert key_client(alice_key).get("/api/models/").status_code == 200
    assert key_client(alice_key, "x-api-key").get("/api/me/usage/").json()["quota"]["user"] == "alice"


@pytest.mark.parametrize("header", ["bearer", "x-api-key"])
def test_a_key_cannot_manage_keys(alice, seeded, header):
    narrow, secret = make_key(
        alice, name="narrow", token_limit=50, requests_per_minute=2, allowed_models=[seeded_model("gpt-3.5-turbo")]
    )
    sibling, _ = make_key(alice, name="sibling")
    client = key_client(secret, header)

    attempts = [
        client.patch(
            f"/api/keys/{narrow.pk}/",
            {"token_limit": None, "requests_per_minute": None, "allowed_models": []},
            format="json",
        ),
        client.post("/api/keys/", {"name": "unrestricted"}, format="json"),
        client.delete(f"/api/keys/{sibling.pk}/"),
        client.get("/api/keys/"),
        client.get(f"/api/keys/{sibling.pk}/"),
    ]

    for response in attempts:
        assert response.status_code == 403
        error = response.json()["error"]
        assert error["type"] == "permission_denied" and "signed-in user" in error["message"]
    narrow.refresh_from_db()
    sibling.refresh_from_db()
    assert (narrow.token_limit, narrow.requests_per_minute) == (50, 2)
    assert [m.name for m in narrow.allowed_models.all()] == ["gpt-3.5-turbo"]
    assert sibling.revoked_at is None
    assert APIKey.objects.count() == 2


def test_a_staff_key_cannot_change_quotas(staff, alice):
    _, secret = make_key(staff, name="staff script")
    client = key_client(secret)

    assert client.patch(f"/api/admin/users/{alice.pk}/quota/", {"unlimited": True}, format="json").status_code == 403
    assert client.post(f"/api/admin/users/{alice.pk}/quota/reset/").status_code == 403
    assert not Quota.objects.filter(user=alice, unlimited=True).exists()


def test_an_unknown_key_gets_401(alice):
    response = key_client("sk-gw-this-key-does-not-exist").get("/api/me/")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Invalid API key."


def test_a_revoked_key_gets_401_at_once(alice_client, alice_key):
    key = APIKey.objects.get()
    client = key_client(alice_key)
    assert client.get("/api/me/").status_code == 200

    assert alice_client.delete(f"/api/keys/{key.pk}/").status_code == 204

    response = client.get("/api/me/")
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]
    assert key_client(alice_key, "x-api-key").get("/api/me/").status_code == 401
    # Still listed, marked revoked; a second DELETE changes nothing.
    listed = alice_client.get(f"/api/keys/{key.pk}/").json()
    assert listed["active"] is False and listed["revoked_at"] is not None
    assert alice_client.delete(f"/api/keys/{key.pk}/").status_code == 204
    assert alice_client.get(f"/api/keys/{key.pk}/").json()["revoked_at"] == listed["revoked_at"]


def test_an_expired_key_gets_401(alice, alice_key):
    APIKey.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    response = key_client(alice_key).get("/api/me/")

    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


def test_a_key_of_an_inactive_user_gets_401(alice, alice_key):
    alice.is_active = False
    alice.save()
    assert key_client(alice_key).get("/api/me/").status_code == 401


def test_a_revoked_key_cannot_be_brought_back_by_its_user(alice_client, alice_key):
    key = APIKey.objects.get()
    alice_client.delete(f"/api/keys/{key.pk}/")
    alice_client.patch(f"/api/keys/{key.pk}/", {"revoked_at": None, "name": "again"}, format="json")
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert key_client(alice_key).get("/api/me/").status_code == 401


def test_allowed_models_restrict_a_key(alice, seeded, fake_openai, fake_anthropic):
    _, secret = make_key(alice, name="gpt only", allowed_models=[seeded_model("gpt-3.5-turbo")])
    client = key_client(secret)

    assert chat(client, "gpt-3.5-turbo").status_code == 200
    response = chat(client, "claude-3-sonnet")
    assert response.status_code == 403
    assert "may not use the model 'claude-3-sonnet'" in response.json()["error"]["message"]
    assert fake_anthropic.requests == []
    assert not Reservation.objects.exists()


def test_a_key_narrowed_to_other_models_is_refused_at_once_though_it_was_in_use(
    alice, alice_client, seeded, fake_openai
):
    key, secret = make_key(alice, name="ci")
    client = key_client(secret)
    assert chat(client, "gpt-3.5-turbo").status_code == 200  # the key is now in the process's cache

    response = alice_client.patch(
        f"/api/keys/{key.pk}/", {"allowed_models": ["gpt-4-turbo"], "requests_per_minute": 5}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["allowed_models"] == ["gpt-4-turbo"] and response.json()["requests_per_minute"] == 5
    assert chat(client, "gpt-3.5-turbo").status_code == 403
    assert chat(client, "gpt-4-turbo").status_code == 200


def test_allowed_models_also_hold_for_dialog_messages(alice, seeded, fake_anthropic):
    _, secret = make_key(alice, name="gpt only", allowed_models=[seeded_model("gpt-3.5-turbo")])
    dialog = make_dialog(alice, model="claude-3-sonnet")

    response = key_client(secret).post(f"/api/dialogs/{dialog.pk}/messages/", {"content": "hi"}, format="json")

    assert response.status_code == 403
    assert fake_anthropic.requests == []


def test_a_keys_own_token_limit_holds_inside_the_users_quota(alice, seeded, fake_openai):
    set_quota(alice, token_limit=1_000_000)
    key, secret = make_key(alice, name="small", token_limit=100)
    client = key_client(secret)
    fake_openai.configure(usage=(10, 20))

    assert chat(client, max_tokens=50).status_code == 200  # worst case ~60 of 100
    key.refresh_from_db()
    assert (key.used_tokens, key.reserved_tokens) == (30, 0)
    assert Quota.objects.get(user=alice).used_tokens == 30  # counted in the user's quota too

    response = chat(client, max_tokens=80)  # 30 used + ~88 > 100
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "quota_exceeded" and "this API key" in error["message"]
    assert error["limit"] == 100 and error["used"] == 30
    quota = Quota.objects.get(user=alice)
    assert (quota.used_tokens, quota.reserved_tokens) == (30, 0)  # the refusal left nothing held
    assert UsageRecord.objects.count() == 1

    # Alice's other credentials are not bound by this key's limit.
    _, other = make_key(alice, name="big")
    assert chat(key_client(other), max_tokens=80).status_code == 200


def test_the_users_quota_still_binds_a_key_with_a_bigger_limit(alice, seeded, fake_openai):
    set_quota(alice, token_limit=50)
    _, secret = make_key(alice, name="big", token_limit=10_000)

    response = chat(key_client(secret), max_tokens=100)

    assert response.status_code == 429
    assert "your quota" in response.json()["error"]["message"]
    assert APIKey.objects.get().reserved_tokens == 0


def test_a_key_has_its_own_requests_per_minute_inside_the_users(alice, alice_client, seeded, fake_openai):
    response = alice_client.post("/api/keys/", {"name": "slow", "requests_per_minute": 1}, format="json")
    assert response.status_code == 201 and response.json()["requests_per_minute"] == 1
    slow = key_client(response.json()["key"])

    assert chat(slow).status_code == 200
    refused = chat(slow)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited" and refused["Retry-After"]
    # The user's other credentials go on; the refused request reserved nothing.
    _, other = make_key(alice, name="fast")
    assert chat(key_client(other)).status_code == 200
    assert Quota.objects.get(user=alice).reserved_tokens == 0


def test_a_key_has_its_own_tokens_per_minute(alice, seeded, fake_openai, django_capture_on_commit_callbacks):
    _, secret = make_key(alice, name="few tokens", tokens_per_minute=100)
    fake_openai.configure(usage=(10, 200))
    client = key_client(secret)

    with django_capture_on_commit_callbacks(execute=True):  # the reply's tokens count after COMMIT
        assert chat(client).status_code == 200  # the window now holds 210 tokens of 100
    assert chat(client).json()["error"]["code"] == "rate_limited"


# --- the admin console ---


@pytest.fixture
def key_admin(staff):
    staff.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="billing", codename__in=["view_apikey", "change_apikey"])
    )
    browser = Client()
    assert browser.login(username="sam", password="sam-password")
    return browser


def test_staff_see_every_key_in_the_admin_but_never_a_secret(key_admin, alice, bob):
    _, alices = make_key(alice, name="alice's laptop")
    _, bobs = make_key(bob, name="bob's server")

    content = key_admin.get("/admin/billing/apikey/").content.decode()

    assert "alice&#x27;s laptop" in content and "bob&#x27;s server" in content
    assert alices[:12] in content and bobs[:12] in content
    assert alices not in content and bobs not in content
    key = APIKey.objects.get(user=alice)
    assert alices not in key_admin.get(f"/admin/billing/apikey/{key.pk}/change/").content.decode()
    assert key_admin.get("/admin/billing/apikey/add/").status_code == 403  # keys are made by users


def test_staff_revoke_keys_with_the_admin_action(key_admin, alice, bob):
    alices_key, alices = make_key(alice, name="a")
    bobs_key, bobs = make_key(bob, name="b")

    response = key_admin.post(
        "/admin/billing/apikey/", {"action": "revoke", "_selected_action": [alices_key.pk]}, follow=True
    )

    assert "1 key(s) revoked." in response.content.decode()
    assert key_client(alices).get("/api/me/").status_code == 401
    assert key_client(bobs).get("/api/me/").status_code == 200
    alices_key.refresh_from_db()
    assert alices_key.revoked_at is not None


def test_staff_who_may_only_view_keys_cannot_revoke_them(staff, alice):
    staff.user_permissions.add(Permission.objects.get(content_type__app_label="billing", codename="view_apikey"))
    browser = Client()
    browser.login(username="sam", password="sam-password")
    key, _ = make_key(alice, name="a")

    assert browser.get("/admin/billing/apikey/").status_code == 200
    browser.post("/admin/billing/apikey/", {"action": "revoke", "_selected_action": [key.pk]})

    key.refresh_from_db()
    assert key.revoked_at is None


# --- revocation, and request rates, come first ---


@pytest.mark.parametrize("change", ["revoke the key", "deactivate the user"])
def test_a_key_revoked_elsewhere_is_refused_before_anything_else_answers(alice, seeded, fake_openai, change):
    key, secret = make_key(alice, name="ci")
    client = key_client(secret)
    dialog = make_dialog(alice, model="gpt-3.5-turbo")
    assert chat(client).status_code == 200  # the key is in use
    # As another server process (or the shell) would: no service of this process is told.
    if change == "revoke the key":
        APIKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())
    else:
        type(alice).objects.filter(pk=alice.pk).update(is_active=False)

    answers = [
        client.post("/api/dialogs/999999/messages/", {"content": "hi"}, format="json"),  # no such dialog
        client.post(f"/api/dialogs/{dialog.pk}/messages/", {"content": ""}, format="json"),  # invalid
        chat(client, model="no-such-model"),
        chat(client, max_tokens=10**9),
        client.post("/v1/embeddings", {"model": "no-such-model", "input": "hi"}, format="json"),
        client.post("/v1/messages/count_tokens", {"model": "no-such-model", "messages": []}, format="json"),
        client.post("/v1/chat/completions", b"{not json", content_type="application/json"),
    ]

    assert [response.status_code for response in answers] == [401] * len(answers)
    assert len(fake_openai.requests) == 1


@pytest.fixture
def one_minute(monkeypatch):
    """Every request of the test falls in one fixed one-minute window."""
    monkeypatch.setattr("billing.ratelimit.clock", lambda: 1_800_000_010.0)


@pytest.fixture
def tokenized(monkeypatch) -> list:
    """The prompts the completion flow counted."""
    import completions.core

    counted: list = []
    real = completions.core.count_messages

    def count_messages(*args):
        counted.append(args)
        return real(*args)

    monkeypatch.setattr(completions.core, "count_messages", count_messages)
    return counted


def test_a_key_over_its_request_rate_is_refused_before_its_request_is_read(
    alice, seeded, fake_openai, one_minute, tokenized
):
    _, secret = make_key(alice, name="slow", requests_per_minute=2)
    client = key_client(secret)
    dialog = make_dialog(alice, model="gpt-3.5-turbo")

    assert chat(client, model="no-such-model").status_code == 404  # a refused request counts too
    assert chat(client).status_code == 200
    assert len(tokenized) == 1

    over = [
        chat(client, content="word " * 200_000),
        client.post("/v1/chat/completions", b"{not json", content_type="application/json"),
        client.post("/v1/messages", {"model": "claude-3-sonnet", "max_tokens": 5, "messages": []}, format="json"),
        client.post("/v1/messages/count_tokens", {"model": "no-such-model", "messages": []}, format="json"),
        client.post("/v1/embeddings", {"input": "hi"}, format="json"),
        client.post(f"/api/dialogs/{dialog.pk}/messages/", {"content": "hi"}, format="json"),
        client.post("/api/dialogs/999999/messages/", {"content": ""}, format="json"),
    ]

    for response in over:
        assert response.status_code == 429
        assert "Rate limit of 2 requests per minute" in response.json()["error"]["message"]
        assert response["Retry-After"] == "50"
    assert len(tokenized) == 1  # none of them was tokenized
    assert len(fake_openai.requests) == 1
    assert not Reservation.objects.exists()


def test_a_users_request_rate_binds_every_key_of_theirs_before_the_body_is_read(alice, seeded, one_minute, tokenized):
    set_quota(alice, requests_per_minute=1)
    first, second = key_client(make_key(alice, name="a")[1]), key_client(make_key(alice, name="b")[1])

    assert chat(first, model="no-such-model").status_code == 404
    response = chat(second, content="word " * 200_000)

    assert response.status_code == 429 and "1 requests per minute" in response.json()["error"]["message"]
    assert tokenized == []
