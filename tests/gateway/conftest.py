"""Fixtures for API keys and the vendor-compatible endpoints."""

import pytest

from tests.factories import make_key


@pytest.fixture
def alice_key(alice) -> str:
    """The secret of a fresh API key of alice's, with no limits of its own."""
    return make_key(alice, name="alice's laptop")[1]


@pytest.fixture
def live(gateway_url, seeded, fake_openai, fake_anthropic, fast_provider_settings) -> str:
    """The threaded gateway with the seeded catalog and both fake vendors: its base URL."""
    return gateway_url
