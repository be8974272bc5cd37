"""The Django admin console: staff sign in at /admin/, manage users, models, agents, keys."""

import re

import pytest
from django.test import Client

from llm_models.models import LLMModel
from tests.factories import make_agent, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_browser(staff):
    browser = Client()
    assert browser.login(username="sam", password="sam-password")
    return browser


@pytest.fixture
def superuser(db):
    return make_user("root", superuser=True)


@pytest.fixture
def admin_browser(superuser):
    browser = Client()
    assert browser.login(username="root", password="root-password")
    return browser


def test_staff_sign_in_through_the_login_form(staff):
    browser = Client()
    response = browser.post(
        "/admin/login/?next=/admin/", {"username": "sam", "password": "sam-password", "next": "/admin/"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert browser.get("/admin/").status_code == 200


def test_a_wrong_password_does_not_sign_staff_in(staff):
    browser = Client()
    response = browser.post("/admin/login/?next=/admin/", {"username": "sam", "password": "wrong", "next": "/admin/"})
    assert response.status_code == 200  # the form again, with an error
    assert b"correct username and password" in response.content
    assert browser.get("/admin/").status_code == 302


@pytest.mark.parametrize(
    "path",
    [
        "/admin/",
        "/admin/llm_models/llmmodel/",
        "/admin/llm_models/llmmodel/add/",
        "/admin/agents/agent/",
        "/admin/agents/agent/add/",
        "/admin/auth/user/",
        "/admin/billing/apikey/",
    ],
)
def test_a_superuser_opens_every_admin_page(seeded, admin_browser, alice, path):
    response = admin_browser.get(path)
    assert response.status_code == 200, path


def test_the_model_list_shows_provider_window_prices_and_state(seeded, admin_browser):
    content = admin_browser.get("/admin/llm_models/llmmodel/").content.decode()
    for text in ["gpt-4-turbo", "claude-3-opus", "anthropic", "128000", "0.075000"]:
        assert text in content, text


def test_the_model_list_searches_and_filters(seeded, admin_browser):
    content = admin_browser.get("/admin/llm_models/llmmodel/", {"q": "claude"}).content.decode()
    assert "claude-3-opus" in content and "gpt-4-turbo" not in content
    content = admin_browser.get("/admin/llm_models/llmmodel/", {"provider__exact": "openai"}).content.decode()
    assert "gpt-3.5-turbo" in content and "claude-3-sonnet" not in content


def test_a_model_with_a_dot_in_its_name_can_be_edited_in_the_admin(seeded, admin_browser):
    model = LLMModel.objects.get(name="gpt-3.5-turbo")
    page = admin_browser.get(f"/admin/llm_models/llmmodel/{model.pk}/change/")
    assert page.status_code == 200
    form = {
        "name": "gpt-3.5-turbo",
        "kind": "chat",
        "provider": "openai",
        "provider_model": "gpt-3.5-turbo-0125",
        "context_window": 16385,
        "max_output_tokens": 4096,
        "input_price_per_1k": "0.0005",
        "output_price_per_1k": "0.0015",
        "enabled": "on",
        "base_url": "",
        "api_key_env": "",
    }
    response = admin_browser.post(f"/admin/llm_models/llmmodel/{model.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[-2000:]
    model.refresh_from_db()
    assert model.provider_model == "gpt-3.5-turbo-0125"


def test_the_admin_refuses_to_send_a_vendor_key_to_another_host(seeded, admin_browser):
    model = LLMModel.objects.get(name="gpt-3.5-turbo")
    form = {
        "name": "gpt-3.5-turbo",
        "kind": "chat",
        "provider": "openai",
        "provider_model": "gpt-3.5-turbo",
        "context_window": 16385,
        "max_output_tokens": 4096,
        "input_price_per_1k": "0.0005",
        "output_price_per_1k": "0.0015",
        "enabled": "on",
        "base_url": "https://collector.example.net/v1",
        "api_key_env": "",
    }

    response = admin_browser.post(f"/admin/llm_models/llmmodel/{model.pk}/change/", form)

    assert response.status_code == 200  # the form again, with the error
    assert "OPENAI_API_KEY is sent only to api.openai.com" in response.content.decode()
    model.refresh_from_db()
    assert model.base_url == ""


def run_action(browser, action, names):
    ids = list(LLMModel.objects.filter(name__in=names).values_list("pk", flat=True))
    return browser.post("/admin/llm_models/llmmodel/", {"action": action, "_selected_action": ids}, follow=True)


def test_the_disable_and_enable_actions_work(seeded, admin_browser):
    response = run_action(admin_browser, "disable", ["claude-3-opus", "gpt-4-turbo"])
    assert response.status_code == 200
    assert "2 model(s) disabled." in response.content.decode()
    assert set(LLMModel.objects.filter(enabled=False).values_list("name", flat=True)) == {
        "claude-3-opus",
        "gpt-4-turbo",
    }

    response = run_action(admin_browser, "enable", ["claude-3-opus"])
    assert "1 model(s) enabled." in response.content.decode()
    assert list(LLMModel.objects.filter(enabled=False).values_list("name", flat=True)) == ["gpt-4-turbo"]


def test_staff_with_model_permissions_use_the_console(seeded, staff, staff_browser):
    from django.contrib.auth.models import Permission

    staff.user_permissions.add(*Permission.objects.filter(content_type__app_label__in=["llm_models", "agents"]))
    assert staff_browser.get("/admin/").status_code == 200
    assert staff_browser.get("/admin/llm_models/llmmodel/").status_code == 200
    assert staff_browser.get("/admin/agents/agent/").status_code == 200
    response = run_action(staff_browser, "disable", ["gpt-3.5-turbo"])
    assert "1 model(s) disabled." in response.content.decode()


def test_the_agent_list_shows_owners_and_shared_agents(gpt4_turbo, admin_browser, alice):
    make_agent(alice, model=gpt4_turbo, name="Alice's helper")
    make_agent(None, model=gpt4_turbo, name="House style")
    content = admin_browser.get("/admin/agents/agent/").content.decode()
    assert "Alice&#x27;s helper" in content and "House style" in content
    assert "alice" in content


@pytest.mark.parametrize("path", ["/admin/", "/admin/llm_models/llmmodel/", "/admin/auth/user/"])
def test_non_staff_are_sent_to_the_login_page(alice, path):
    browser = Client()
    assert browser.login(username="alice", password="alice-password")
    response = browser.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_anonymous_visitors_are_sent_to_the_login_page():
    response = Client().get("/admin/llm_models/llmmodel/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_the_dashboard_shows_counts(seeded, admin_browser, alice, bob):
    LLMModel.objects.filter(name="claude-3-opus").update(enabled=False)
    content = admin_browser.get("/admin/").content.decode()
    assert "Gateway at a glance" in content
    assert '<th scope="row">Models enabled</th><td>10</td>' in content
    assert '<th scope="row">Models in the catalog</th><td>11</td>' in content
    assert '<th scope="row">Users</th><td>3</td>' in content  # alice, bob, root


def test_the_dashboard_works_with_an_empty_database(admin_browser):
    response = admin_browser.get("/admin/")
    assert response.status_code == 200
    assert '<th scope="row">Models enabled</th><td>0</td>' in response.content.decode()


def test_the_console_is_the_gateways_and_shows_no_sign_in_bookkeeping(admin_browser):
    content = admin_browser.get("/admin/").content.decode()
    assert "<title>Administration | LLM Gateway admin</title>" in content
    assert '<a href="/admin/">LLM Gateway</a>' in content and "Django administration" not in content
    assert "Outstanding tokens" not in content and "Blacklisted tokens" not in content
    assert admin_browser.get("/admin/token_blacklist/outstandingtoken/").status_code == 404
    view_site = re.search(r'<a href="([^"]+)">View site</a>', content).group(1)
    assert admin_browser.get(view_site).status_code == 200
