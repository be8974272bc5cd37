"""GET /healthz, the landing page, the OpenAPI schema, Swagger UI and ReDoc."""

import re

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from drf_spectacular.drainage import GENERATOR_STATS

from common import health as views

pytestmark = pytest.mark.django_db


def test_healthz_says_ok_when_the_database_answers(anon_client, settings):
    response = anon_client.get("/healthz")
    assert response.status_code == 200
    checks = {"database": "ok"} | ({"redis": "ok"} if "redis" in settings.CACHES["default"]["BACKEND"] else {})
    assert response.json() == {"status": "ok", "checks": checks}


def test_healthz_answers_503_when_the_database_fails(anon_client, monkeypatch):
    from django.db import OperationalError

    class Broken:
        def cursor(self):
            raise OperationalError("could not connect to server")

    monkeypatch.setattr(views, "connection", Broken())
    response = anon_client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "down: OperationalError"
    assert "could not connect" not in response.content.decode()  # no internals leak


def test_the_schema_is_openapi_3_and_lists_the_endpoints(anon_client):
    response = anon_client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    for path in [
        "/api/auth/token/",
        "/api/auth/token/refresh/",
        "/api/auth/token/verify/",
        "/api/me/",
        "/api/models/",
        "/api/models/{name}/",
        "/api/admin/models/",
        "/api/admin/models/{name}/",
        "/api/agents/",
        "/api/agents/{id}/",
    ]:
        assert path in schema["paths"], path
    assert {"jwtAuth", "apiKeyAuth"} <= set(schema["components"]["securitySchemes"])
    # Secrets stay out of the public model shape.
    public = schema["components"]["schemas"]["LLMModel"]["properties"]
    assert "api_key_env" not in public


def test_the_schema_is_also_served_as_yaml(anon_client):
    response = anon_client.get("/api/schema/")
    assert response.status_code == 200
    assert response.content.startswith(b"openapi: 3.")


def test_the_swagger_ui_is_an_html_page(anon_client):
    response = anon_client.get("/api/docs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"swagger" in response.content.lower()


def test_redoc_is_an_html_page_reading_the_schema(anon_client):
    response = anon_client.get("/api/redoc/")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    assert b'<redoc spec-url="/api/schema/">' in response.content


@pytest.mark.parametrize(("path", "files"), [("/api/docs/", 3), ("/api/redoc/", 1)])
def test_the_api_docs_load_only_the_gateways_own_static_files(anon_client, settings, path, files):
    """They work without the internet, and no outside server can change what they run."""
    page = anon_client.get(path).content.decode()

    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert len(assets) >= files  # their scripts and styles
    for asset in assets:
        assert asset.startswith(settings.STATIC_URL), asset
        assert finders.find(asset.removeprefix(settings.STATIC_URL)), asset
    assert "://" not in page


def test_the_schema_generates_without_warnings_and_validates(tmp_path, capsys):
    """Every endpoint is described well enough that drf-spectacular need not guess."""
    GENERATOR_STATS.reset()
    try:
        call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(tmp_path / "schema.yaml"))
    except Exception as exc:  # the warnings themselves went to stderr
        pytest.fail(f"{exc}\n{capsys.readouterr().err}")
    finally:
        GENERATOR_STATS.reset()


def test_the_landing_page_links_the_docs_the_admin_and_health(anon_client):
    response = anon_client.get("/")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    links = re.findall(r'href="([^"]+)"', response.content.decode())
    assert {"/api/docs/", "/api/redoc/", "/api/schema/", "/admin/", "/healthz"} <= set(links)
    assert all(anon_client.get(link).status_code in (200, 302) for link in links)
    assert "://" not in response.content.decode()
