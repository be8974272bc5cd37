"""A database made by the release before API keys moved into billing migrates forward with its
rows: keys, their allowed models, the usage records and reservations that point at them, and
staff permissions on keys."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from billing.models import APIKey, Reservation, UsageRecord

# The apps' migrations as the previous release shipped them.
PREVIOUS_RELEASE = [
    ("gateway", "0002_api_key_rate_limits"),
    ("billing", "0004_reservation_outlives_its_key"),
    ("llm_models", "0003_key_variable_names"),
]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def latest():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_api_keys_keep_their_rows_when_they_move_into_billing():
    old = migrate(PREVIOUS_RELEASE)
    try:
        user = old.get_model("auth", "User").objects.create(username="alice")
        model = old.get_model("llm_models", "LLMModel").objects.create(
            name="gpt-old",
            provider="openai",
            provider_model="gpt-4o",
            context_window=1000,
            max_output_tokens=100,
            input_price_per_1k=Decimal("0.001"),
            output_price_per_1k=Decimal("0.002"),
        )
        key = old.get_model("gateway", "APIKey").objects.create(
            user=user, name="laptop", prefix="sk-gw-abcdef", key_hash="f" * 64, token_limit=500, used_tokens=42
        )
        key.allowed_models.add(model)
        old.get_model("billing", "UsageRecord").objects.create(
            user=user,
            api_key=key,
            model=model,
            model_name="gpt-old",
            prompt_tokens=30,
            completion_tokens=12,
            status="ok",
        )
        now = timezone.now()
        old.get_model("billing", "Reservation").objects.create(
            user=user, api_key=key, tokens=100, cost=Decimal("0.1"), expires_at=now
        )
        # Content types and permissions are not part of these apps' migrations: today's models.
        key_type = ContentType.objects.filter(model="apikey").first() or ContentType(model="apikey")
        key_type.app_label = "gateway"
        key_type.save()
        Permission.objects.create(content_type=key_type, codename="revoke_apikey_old", name="old permission")
    finally:
        migrate(latest())

    moved = APIKey.objects.get(pk=key.pk)
    assert (moved.name, moved.key_hash, moved.token_limit, moved.used_tokens) == ("laptop", "f" * 64, 500, 42)
    assert list(moved.allowed_models.values_list("name", flat=True)) == ["gpt-old"]
    assert UsageRecord.objects.get(user_id=user.pk).api_key == moved
    assert Reservation.objects.get(user_id=user.pk).api_key == moved
    assert Permission.objects.get(codename="revoke_apikey_old").content_type.app_label == "billing"
    assert APIKey._meta.db_table in connection.introspection.table_names()
    assert "gateway_apikey" not in connection.introspection.table_names()
