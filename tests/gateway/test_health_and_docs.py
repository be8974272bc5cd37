"""GET /healthz, the OpenAPI schema and the Swagger UI."""

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


def test_the_swagger_ui_loads_only_the_gateways_own_static_files(anon_client, settings):
    """It works without the internet, and no outside server can change what it runs."""
    page = anon_client.get("/api/docs/").content.decode()

    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert len(assets) >= 3  # its scripts and styles
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
