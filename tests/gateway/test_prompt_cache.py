"""Prompt caching: the tokens a vendor read from or wrote to its cache are billed, at the
catalog's prices for cache reads and writes, and reported to the client in its own format."""

from decimal import Decimal

import anthropic
import openai
import pytest

from billing.models import UsageRecord
from llm_models.models import LLMModel

pytestmark = pytest.mark.django_db(transaction=True)

CACHED_SYSTEM = [{"type": "text", "text": "A long manual. " * 50, "cache_control": {"type": "ephemeral"}}]
HELLO = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def priced(seeded):
    """claude-3-sonnet at Anthropic's cache prices: reads 0.1x its input price, writes 1.25x."""
    LLMModel.objects.filter(name="claude-3-sonnet").update(
        cached_input_price_per_1k=Decimal("0.0003"), cache_write_price_per_1k=Decimal("0.00375")
    )
    LLMModel.objects.filter(name="gpt-3.5-turbo").update(cached_input_price_per_1k=Decimal("0.00025"))


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_cache_reads_and_writes_are_billed_at_their_prices(live, alice_key, priced, fake_anthropic, stream):
    fake_anthropic.configure(usage=(10, 5), cache=(1_000, 200))
    sdk = anthropic.Anthropic(base_url=live, api_key=alice_key, max_retries=0)

    if stream:
        with sdk.messages.stream(model="claude-3-sonnet", max_tokens=20, system=CACHED_SYSTEM, messages=HELLO) as s:
            message = s.get_final_message()
    else:
        message = sdk.messages.create(model="claude-3-sonnet", max_tokens=20, system=CACHED_SYSTEM, messages=HELLO)

    assert fake_anthropic.last.json["system"] == CACHED_SYSTEM  # cache_control reached Anthropic
    assert (message.usage.cache_read_input_tokens, message.usage.cache_creation_input_tokens) == (1_000, 200)
    record = UsageRecord.objects.get()
    assert (record.prompt_tokens, record.cached_tokens, record.cache_write_tokens) == (1_210, 1_000, 200)
    # 10 fresh at 0.003, 1,000 read at 0.0003, 200 written at 0.00375, 5 out at 0.015 (per 1k)
    assert record.cost == Decimal("0.00003") + Decimal("0.0003") + Decimal("0.00075") + Decimal("0.000075")


def test_openai_cached_tokens_are_billed_at_the_cached_price_and_told_across_formats(
    live, alice_key, priced, fake_openai, fake_anthropic
):
    fake_openai.configure(usage=(800, 10), cache=(500, 0))
    sdk = openai.OpenAI(base_url=f"{live}/v1", api_key=alice_key, max_retries=0)

    sdk.chat.completions.create(model="gpt-3.5-turbo", messages=HELLO, max_tokens=20)

    record = UsageRecord.objects.get()
    assert (record.prompt_tokens, record.cached_tokens) == (800, 500)
    # 300 fresh at 0.0005, 500 cached at 0.00025, 10 out at 0.0015 (per 1k)
    assert record.cost == Decimal("0.00015") + Decimal("0.000125") + Decimal("0.000015")

    fake_anthropic.configure(usage=(10, 5), cache=(1_000, 0))
    completion = sdk.chat.completions.create(model="claude-3-sonnet", messages=HELLO, max_tokens=20)
    assert completion.usage.prompt_tokens == 1_010
    assert completion.usage.prompt_tokens_details.cached_tokens == 1_000
