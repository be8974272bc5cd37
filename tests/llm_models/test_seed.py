"""`manage.py seed_models`: the four models of the product's spec, idempotent, --update."""

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from llm_models.models import LLMModel
from tests.factories import make_model

pytestmark = pytest.mark.django_db

SPEC = {
    # name: (provider, context window, input $/1k, output $/1k)
    "gpt-4-turbo": ("openai", 128_000, "0.01", "0.03"),
    "gpt-3.5-turbo": ("openai", 16_385, "0.0005", "0.0015"),
    "claude-3-opus": ("anthropic", 200_000, "0.015", "0.075"),
    "claude-3-sonnet": ("anthropic", 200_000, "0.003", "0.015"),
    "gpt-4o": ("openai", 128_000, "0.0025", "0.01"),
    "gpt-4o-mini": ("openai", 128_000, "0.00015", "0.0006"),
    "claude-sonnet-4": ("anthropic", 200_000, "0.003", "0.015"),
    "claude-sonnet-5-5": ("anthropic", 1_000_000, "0.002", "0.01"),
    "claude-opus-5-5": ("anthropic", 1_000_000, "0.004", "0.02"),
    "gpt-6-luna": ("openai", 1_050_000, "0.0001", "0.0005"),
    # $0.02 per million input tokens; an embedding has no reply to price.
    "text-embedding-3-small": ("openai", 8_191, "0.00002", "0"),
}


def seed(*args) -> str:
    out = StringIO()
    call_command("seed_models", *args, stdout=out)
    return out.getvalue()


def test_it_creates_exactly_the_models_of_the_spec():
    output = seed()
    assert "11 created, 0 updated, 0 unchanged" in output
    for name in SPEC:
        assert f"created {name}" in output

    assert set(LLMModel.objects.values_list("name", flat=True)) == set(SPEC)
    for name, (provider, context, input_price, output_price) in SPEC.items():
        model = LLMModel.objects.get(name=name)
        assert model.provider == provider
        # "16k" in the spec is the vendor's 16,385-token window.
        assert model.context_window == context
        assert model.input_price_per_1k == Decimal(input_price)
        assert model.output_price_per_1k == Decimal(output_price)
        assert model.enabled is True
        assert 0 < model.max_output_tokens <= model.context_window
        assert model.provider_model


def test_running_it_twice_changes_nothing():
    seed()
    before = {m.name: (m.pk, m.updated_at) for m in LLMModel.objects.all()}

    output = seed()
    assert "0 created, 0 updated, 11 unchanged" in output
    after = {m.name: (m.pk, m.updated_at) for m in LLMModel.objects.all()}
    assert after == before


def test_it_keeps_staff_edits_unless_told_to_update():
    seed()
    LLMModel.objects.filter(name="gpt-4-turbo").update(input_price_per_1k=Decimal("0.5"), enabled=False)

    assert "0 created" in seed()
    model = LLMModel.objects.get(name="gpt-4-turbo")
    assert model.input_price_per_1k == Decimal("0.5")
    assert model.enabled is False


def test_update_overwrites_edited_metadata_from_the_file():
    seed()
    LLMModel.objects.filter(name="claude-3-opus").update(
        input_price_per_1k=Decimal("9"),
        context_window=1000,
        max_output_tokens=500,
        provider_model="something-else",
    )

    output = seed("--update")
    assert "updated claude-3-opus" in output
    assert "0 created, 1 updated, 10 unchanged" in output
    model = LLMModel.objects.get(name="claude-3-opus")
    assert model.input_price_per_1k == Decimal("0.015")
    assert model.context_window == 200_000
    assert model.provider_model == "claude-3-opus-20240229"

    assert "0 created, 0 updated, 11 unchanged" in seed("--update")


def test_update_leaves_whether_a_model_is_enabled_to_staff():
    """The file says nothing about `enabled`: a model staff disabled stays disabled."""
    seed()
    LLMModel.objects.filter(name="gpt-3.5-turbo").update(enabled=False)
    seed("--update")
    assert LLMModel.objects.get(name="gpt-3.5-turbo").enabled is False


def test_it_recreates_a_missing_model_and_leaves_others_alone():
    seed()
    LLMModel.objects.filter(name="claude-3-sonnet").delete()
    make_model(name="local-llama", provider="openai_compatible", provider_model="llama3")

    output = seed()
    assert "created claude-3-sonnet" in output
    assert "1 created, 0 updated, 10 unchanged" in output
    assert LLMModel.objects.filter(name="local-llama").exists()
