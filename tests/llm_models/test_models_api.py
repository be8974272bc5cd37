from decimal import Decimal

import pytest

pytestmark = pytest.mark.django_db


def test_it_lists_the_four_seeded_models_with_their_prices(seeded, alice_client):
    response = alice_client.get("/api/models/")
    assert response.status_code == 200
    by_name = {row["name"]: row for row in response.json()["results"]}
    assert set(by_name) == {"gpt-4-turbo", "gpt-3.5-turbo", "claude-3-opus", "claude-3-sonnet"}
    assert Decimal(by_name["gpt-4-turbo"]["input_price_per_1k"]) == Decimal("0.01")
    assert Decimal(by_name["claude-3-opus"]["output_price_per_1k"]) == Decimal("0.075")
    assert by_name["claude-3-sonnet"]["provider"] == "anthropic"
    assert "api_key_env" not in by_name["gpt-4-turbo"]


def test_it_refuses_anonymous_callers(seeded, anon_client):
    response = anon_client.get("/api/models/")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "not_authenticated"
