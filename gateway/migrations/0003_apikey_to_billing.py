"""The API key model now belongs to billing (billing 0005 took its rows over); forget it here.

This app keeps its migrations so that databases made before the move migrate forward."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("gateway", "0002_api_key_rate_limits"),
        ("billing", "0005_apikey_from_gateway"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="APIKey")]),
    ]
