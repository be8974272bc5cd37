"""Shared fixtures: named users (alice, bob, staff) and API clients signed in as them."""

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from llm_models import catalog
from llm_models.services import models_seed

pytest_plugins = ["tests.fakes.fixtures", "tests.live_server"]


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    # The catalog's per-process copy of the models would outlive the test's rows (and their ids).
    catalog.forget()
    yield
    cache.clear()


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", "alice@example.com", "alice-password")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", "bob@example.com", "bob-password")


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("sam", "sam@example.com", "sam-password", is_staff=True)


def client_for(user) -> APIClient:
    client = APIClient()
    if user is not None:
        token = RefreshToken.for_user(user).access_token
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def anon_client():
    return APIClient()


@pytest.fixture
def alice_client(alice):
    return client_for(alice)


@pytest.fixture
def bob_client(bob):
    return client_for(bob)


@pytest.fixture
def staff_client(staff):
    return client_for(staff)


@pytest.fixture
def seeded(db):
    """The four models of the seed file."""
    models_seed()
