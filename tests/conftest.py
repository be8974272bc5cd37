"""Shared fixtures: named users (alice, bob, staff), API clients signed in as them, and the seeded
catalog's models. Each is a thin wrapper around tests/factories.py, which makes every row."""

import pytest
from django.core.cache import cache
from django.test import override_settings
from rest_framework.test import APIClient

from billing.heartbeat import heartbeats_stop
from common import counters
from llm_models import catalog
from tests import factories

pytest_plugins = ["tests.fakes.fixtures", "tests.live_server", "tests.faults.redis", "tests.faults.postgres"]


def pytest_configure(config):
    # PBKDF2 spends most of a second per password on purpose, and the suite makes hundreds of
    # users. override_settings (not a plain assignment) also empties Django's cache of hashers.
    # Only this process and its threads (the `gateway_url` server) use it; the servers that
    # `gateway_processes` starts keep gateway.settings and never see a password: tests sign in
    # there with tokens and API keys.
    override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]).enable()


@pytest.fixture(scope="session", autouse=True)
def _heartbeats_end_before_the_test_database(django_db_setup):
    """The event loops that served requests in this process (the threaded gateway, schemathesis's
    ASGI portal) beat until their heartbeat is stopped: before the test database is dropped."""
    yield
    heartbeats_stop()


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    # The catalog's per-process copy of the models would outlive the test's rows (and their ids).
    catalog.forget()
    counters.counters_forget()
    yield
    cache.clear()


@pytest.fixture
def alice(db):
    return factories.make_user("alice")


@pytest.fixture
def bob(db):
    return factories.make_user("bob")


@pytest.fixture
def staff(db):
    """Sam, a staff member without any permission of his own (a test grants what it needs)."""
    return factories.make_user("sam", staff=True)


@pytest.fixture
def anon_client():
    return APIClient()


@pytest.fixture
def alice_client(alice):
    return factories.client_for(alice)


@pytest.fixture
def bob_client(bob):
    return factories.client_for(bob)


@pytest.fixture
def staff_client(staff):
    return factories.client_for(staff)


@pytest.fixture
def seeded(db):
    """The four models of the seed file, by name."""
    return factories.seed_models()


@pytest.fixture
def gpt4_turbo(seeded):
    """$0.01 in, $0.03 out per 1k tokens; 128k window."""
    return seeded["gpt-4-turbo"]


@pytest.fixture
def gpt35(seeded):
    """$0.0005 in, $0.0015 out per 1k tokens; 16k window."""
    return seeded["gpt-3.5-turbo"]


@pytest.fixture
def claude_sonnet(seeded):
    """$0.003 in, $0.015 out per 1k tokens; 200k window."""
    return seeded["claude-3-sonnet"]
