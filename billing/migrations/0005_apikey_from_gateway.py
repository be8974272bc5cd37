"""API keys move from the `gateway` app to billing, beside the spend ledger they are part of.

The rows stay where they are: billing takes the model over in the migration state (its table
still named gateway_apikey), points the reservations' and usage records' keys at it, then
renames the tables (the key's and its allowed models') to billing's names. The content type
follows, so staff permissions on keys carry over. gateway 0003 then drops the model from
gateway's state only.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def move_content_type(apps, schema_editor):
    content_types = apps.get_model("contenttypes", "ContentType").objects
    if not content_types.filter(app_label="billing", model="apikey").exists():
        content_types.filter(app_label="gateway", model="apikey").update(app_label="billing")


def move_content_type_back(apps, schema_editor):
    content_types = apps.get_model("contenttypes", "ContentType").objects
    if not content_types.filter(app_label="gateway", model="apikey").exists():
        content_types.filter(app_label="billing", model="apikey").update(app_label="gateway")


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0004_reservation_outlives_its_key"),
        ("gateway", "0002_api_key_rate_limits"),
        ("llm_models", "0003_key_variable_names"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="APIKey",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("name", models.CharField(max_length=100)),
                        ("prefix", models.CharField(help_text="The first characters, to recognise the key.", max_length=16)),
                        ("key_hash", models.CharField(max_length=64, unique=True)),
                        ("token_limit", models.BigIntegerField(blank=True, help_text="This key's own total, inside the user's quota.", null=True)),
                        ("usd_limit", models.DecimalField(blank=True, decimal_places=6, max_digits=14, null=True)),
                        ("requests_per_minute", models.PositiveIntegerField(blank=True, help_text="This key's own rate, inside the user's.", null=True)),
                        ("tokens_per_minute", models.PositiveIntegerField(blank=True, help_text="This key's own rate, inside the user's.", null=True)),
                        ("used_tokens", models.BigIntegerField(default=0)),
                        ("reserved_tokens", models.BigIntegerField(default=0)),
                        ("used_usd", models.DecimalField(decimal_places=8, default=0, max_digits=18)),
                        ("reserved_usd", models.DecimalField(decimal_places=8, default=0, max_digits=18)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("last_used_at", models.DateTimeField(blank=True, null=True)),
                        ("expires_at", models.DateTimeField(blank=True, null=True)),
                        ("revoked_at", models.DateTimeField(blank=True, null=True)),
                        ("allowed_models", models.ManyToManyField(blank=True, help_text="Empty = every enabled model.", related_name="+", to="llm_models.llmmodel")),
                        ("user", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="api_keys", to=settings.AUTH_USER_MODEL)),
                    ],
                    options={"verbose_name": "API key", "ordering": ["-created_at", "-id"], "db_table": "gateway_apikey"},
                ),
                migrations.AlterField(
                    model_name="reservation",
                    name="api_key",
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to="billing.apikey"),
                ),
                migrations.AlterField(
                    model_name="usagerecord",
                    name="api_key",
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="usage_records", to="billing.apikey"),
                ),
            ],
        ),
        migrations.AlterModelTable(name="apikey", table=None),
        migrations.RunPython(move_content_type, move_content_type_back),
    ]
