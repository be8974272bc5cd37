"""Fixtures for API keys and the vendor-compatible endpoints."""

import pytest

from billing.keys import api_key_create
from billing.models import Quota
from billing.quotas import quota_get


@pytest.fixture
def alice_key(alice) -> str:
    """The secret of a fresh API key of alice's, with no limits of its own."""
    return api_key_create(user=alice, name="alice's laptop")[1]


@pytest.fixture
def live(gateway_url, seeded, fake_openai, fake_anthropic, fast_provider_settings) -> str:
    """The threaded gateway with the seeded catalog and both fake vendors: its base URL."""
    return gateway_url


def set_quota(user, **fields) -> Quota:
    quota = quota_get(user=user)
    Quota.objects.filter(pk=quota.pk).update(**fields)
    quota.refresh_from_db()
    return quota
