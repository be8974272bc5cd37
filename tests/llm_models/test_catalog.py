"""The hot path's per-process copy of the catalog never outlives a change by more than a few
seconds, whichever way the change was made."""

import pytest

from llm_models import catalog
from llm_models.models import LLMModel
from tests.factories import make_model

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(catalog.time, "monotonic", lambda: now[0])
    return now


def test_a_model_disabled_from_the_shell_is_served_stale_for_a_few_seconds_at_most(seeded, clock):
    assert catalog.model_get("gpt-4-turbo").enabled
    LLMModel.objects.filter(name="gpt-4-turbo").update(enabled=False)  # no service, no signal

    clock[0] += catalog.LOCAL_TTL_SECONDS - 1
    assert catalog.model_get("gpt-4-turbo").enabled  # still the cached row
    clock[0] += 1
    assert not catalog.model_get("gpt-4-turbo").enabled


def test_a_model_created_later_is_found_once_the_unknown_name_expires(seeded, clock):
    assert catalog.model_get("brand-new") is None
    make_model(name="brand-new")  # as the shell would: no cached copy is dropped
    clock[0] += catalog.LOCAL_TTL_SECONDS
    assert catalog.model_get("brand-new").name == "brand-new"


def test_invented_names_do_not_grow_the_cache_without_bound(db, monkeypatch):
    monkeypatch.setattr(catalog, "MAX_ENTRIES", 10)
    for number in range(25):
        assert catalog.model_get(f"no-such-model-{number}") is None
    assert len(catalog._cache) <= 10
    assert catalog.model_get("x" * 10_000) is None
    assert "x" * 10_000 not in catalog._cache
