from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import Quota
from billing.quotas import quota_get
from tests.dialogs.conftest import send
from tests.factories import make_dialog, set_quota

pytestmark = pytest.mark.django_db


@pytest.fixture
def chatted(alice, seeded, fake_openai, fake_anthropic, alice_client):
    """Alice has sent one message to gpt-4-turbo (100+50 tokens) and one to claude-3-sonnet (10+5)."""
    fake_openai.configure(usage=(100, 50))
    fake_anthropic.configure(usage=(10, 5))
    for name in ("gpt-4-turbo", "claude-3-sonnet"):
        dialog = make_dialog(alice, model=name)
        assert send(alice_client, dialog).status_code == 201


def test_a_user_sees_their_quota_and_usage_by_model_and_day(chatted, alice_client):
    body = alice_client.get("/api/me/usage/").json()
    quota = body["quota"]
    assert quota["used_tokens"] == 165 and quota["reserved_tokens"] == 0
    assert quota["remaining_tokens"] == quota["token_limit"] - 165
    assert quota["period"] == "monthly" and quota["period_start"] and quota["resets_at"]
    usage = body["date_range"]
    today = timezone.now().date()
    assert (usage["start"], usage["end"]) == ((today - timedelta(days=30)).isoformat(), today.isoformat())
    by_model = {row["model_name"]: row for row in usage["by_model"]}
    assert by_model["gpt-4-turbo"]["total_tokens"] == 150 and by_model["gpt-4-turbo"]["requests"] == 1
    assert by_model["claude-3-sonnet"]["prompt_tokens"] == 10
    assert len(usage["by_day"]) == 1 and usage["by_day"][0]["total_tokens"] == 165
    assert usage["total"]["requests"] == 2


def test_every_cost_is_a_string_with_eight_decimal_places(chatted, alice, alice_client, staff_client):
    set_quota(alice, usd_limit=Decimal("1.5"))
    mine = alice_client.get("/api/me/usage/").json()
    quota, usage = mine["quota"], mine["date_range"]
    # $0.01 + $0.03 per 1k on gpt-4-turbo, $0.003 + $0.015 on claude-3-sonnet.
    assert (quota["used_usd"], quota["reserved_usd"]) == ("0.00260500", "0.00000000")
    assert (quota["usd_limit"], quota["remaining_usd"]) == ("1.50000000", "1.49739500")
    assert usage["total"]["cost"] == usage["by_day"][0]["cost"] == "0.00260500"
    assert {row["model_name"]: row["cost"] for row in usage["by_model"]} == {
        "claude-3-sonnet": "0.00010500",
        "gpt-4-turbo": "0.00250000",
    }
    empty = alice_client.get("/api/me/usage/?start=2020-01-01&end=2020-01-31").json()["date_range"]
    assert empty["total"]["cost"] == "0.00000000"
    staff = staff_client.get("/api/admin/usage/").json()
    assert (staff["total"]["cost"], staff["by_user"][0]["cost"]) == ("0.00260500", "0.00260500")
    assert staff_client.get(f"/api/admin/users/{alice.pk}/quota/").json()["used_usd"] == "0.00260500"
    dialog = make_dialog(alice, model="gpt-4-turbo")
    sent = send(alice_client, dialog).json()
    assert sent["usage"]["cost"] == sent["assistant_message"]["cost"] == "0.00250000"
    history = alice_client.get(f"/api/dialogs/{dialog.pk}/messages/").json()
    assert [message["cost"] for message in history["results"]] == ["0.00000000", "0.00250000"]
    key = alice_client.post("/api/keys/", {"name": "ci", "usd_limit": "0.25"}, format="json").json()
    assert (key["usd_limit"], key["used_usd"]) == ("0.25000000", "0.00000000")


def test_an_unlimited_quota_shows_no_limits(alice, alice_client, staff_client):
    set_quota(alice, unlimited=True, token_limit=1_000_000, usd_limit=Decimal(5))
    for quota in (
        alice_client.get("/api/me/usage/").json()["quota"],
        staff_client.get(f"/api/admin/users/{alice.pk}/quota/").json(),
    ):
        assert quota["unlimited"] is True
        assert (quota["token_limit"], quota["usd_limit"]) == (None, None)
        assert (quota["remaining_tokens"], quota["remaining_usd"]) == (None, None)


def test_usage_outside_the_date_range_is_left_out(chatted, alice_client):
    body = alice_client.get("/api/me/usage/?start=2020-01-01&end=2020-01-31").json()["date_range"]
    assert (body["start"], body["end"]) == ("2020-01-01", "2020-01-31")
    assert body["by_model"] == [] and body["total"]["requests"] == 0
    response = alice_client.get("/api/me/usage/?start=2020-02-01&end=2020-01-01")
    assert response.status_code == 400 and "start" in response.json()["error"]["fields"]
    assert alice_client.get("/api/me/usage/?start=yesterday").status_code == 400


def test_a_user_sees_only_their_own_usage(chatted, bob_client):
    body = bob_client.get("/api/me/usage/").json()
    assert body["date_range"]["total"]["requests"] == 0 and body["quota"]["used_tokens"] == 0


def test_staff_see_usage_by_user(chatted, staff_client, alice, bob_client):
    body = staff_client.get("/api/admin/usage/").json()
    assert [(row["user_id"], row["username"], row["total_tokens"]) for row in body["by_user"]] == [
        (alice.pk, "alice", 165)
    ]
    assert (
        staff_client.get(f"/api/admin/usage/?user={alice.pk}&model=gpt-4-turbo").json()["total"]["total_tokens"] == 150
    )
    assert bob_client.get("/api/admin/usage/").status_code == 403


def test_staff_edit_a_quota_and_the_next_request_obeys(alice, alice_client, staff_client, gpt35, fake_openai):
    dialog = make_dialog(alice, model=gpt35)
    url = f"/api/admin/users/{alice.pk}/quota/"
    assert staff_client.get(url).json()["user"] == "alice"

    response = staff_client.patch(url, {"token_limit": 50, "period": "daily"}, format="json")
    assert response.status_code == 200 and response.json()["token_limit"] == 50

    refused = send(alice_client, dialog, max_tokens=100)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["type"] == "quota_exceeded" and error["limit"] == 50 and error["remaining"] == 50
    assert refused["Retry-After"]

    staff_client.patch(url, {"unlimited": True}, format="json")
    assert send(alice_client, dialog, max_tokens=100).status_code == 201


def test_staff_reset_a_quota_now(alice, staff_client, bob_client):
    set_quota(alice, used_tokens=900)
    response = staff_client.post(f"/api/admin/users/{alice.pk}/quota/reset/")
    assert response.status_code == 200 and response.json()["used_tokens"] == 0
    assert bob_client.post(f"/api/admin/users/{alice.pk}/quota/reset/").status_code == 403
    assert bob_client.get(f"/api/admin/users/{alice.pk}/quota/").status_code == 403
    assert staff_client.get("/api/admin/users/999999/quota/").status_code == 404


def test_quota_validation_names_the_field(alice, staff_client):
    response = staff_client.patch(
        f"/api/admin/users/{alice.pk}/quota/", {"token_limit": -1, "period": "hourly"}, format="json"
    )
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"token_limit", "period"}


def test_staff_edit_a_quota_in_the_admin(alice, admin_client):
    quota = quota_get(user=alice)
    page = admin_client.get(f"/admin/billing/quota/{quota.pk}/change/")
    assert page.status_code == 200
    response = admin_client.post(
        f"/admin/billing/quota/{quota.pk}/change/",
        {
            "user": alice.pk,
            "token_limit": 1234,
            "usd_limit": "",
            "period": "weekly",
            "requests_per_minute": 5,
            "tokens_per_minute": "",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    quota.refresh_from_db()
    assert (quota.token_limit, quota.period, quota.requests_per_minute) == (1234, "weekly", 5)
    assert quota.period_start.weekday() == 0  # the new period started this week


def test_the_admin_resets_quotas_and_lists_usage_records(chatted, alice, admin_client):
    quota = Quota.objects.get(user=alice)
    response = admin_client.post("/admin/billing/quota/", {"action": "reset_now", "_selected_action": [quota.pk]})
    assert response.status_code == 302
    quota.refresh_from_db()
    assert quota.used_tokens == 0
    assert admin_client.get("/admin/billing/usagerecord/").status_code == 200
    assert admin_client.get("/admin/billing/usagerecord/?status__exact=ok").status_code == 200
    assert admin_client.get(f"/admin/auth/user/{alice.pk}/change/").status_code == 200
