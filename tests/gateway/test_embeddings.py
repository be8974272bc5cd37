"""POST /v1/embeddings through the official SDK: the catalog's embedding models, held and billed
per input token like any call; a chat model cannot embed, nor an embedding model chat."""

import openai
import pytest

from billing.models import Quota, Reservation, UsageRecord
from dialogs.models import Dialog
from tests.factories import set_quota

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sdk(live, alice_key) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live}/v1", api_key=alice_key, max_retries=0)


def test_texts_are_embedded_and_billed_per_input_token(sdk, alice, fake_openai):
    fake_openai.configure(usage=(1_000, 0))

    answer = sdk.embeddings.create(model="text-embedding-3-small", input=["a cat", "a dog on a mat"], dimensions=4)

    assert [item.index for item in answer.data] == [0, 1]
    assert all(len(item.embedding) == 4 for item in answer.data)  # the SDK decoded the base64 vectors
    assert answer.model == "text-embedding-3-small" and answer.usage.prompt_tokens == 1_000
    sent = fake_openai.last.json
    assert (sent["model"], sent["input"], sent["dimensions"]) == (
        "text-embedding-3-small",
        ["a cat", "a dog on a mat"],
        4,
    )
    record = UsageRecord.objects.get()
    assert (record.prompt_tokens, record.completion_tokens, record.model_name) == (1_000, 0, "text-embedding-3-small")
    assert str(record.cost) == "0.00002000"  # $0.02 per million input tokens
    assert Quota.objects.get(user=alice).used_tokens == 1_000
    assert not Reservation.objects.exists()


def test_an_embedding_over_the_quota_is_refused_before_the_vendor(sdk, alice, fake_openai):
    set_quota(alice, token_limit=3)
    with pytest.raises(openai.RateLimitError):
        sdk.embeddings.create(model="text-embedding-3-small", input="many words that will not fit the quota")
    assert fake_openai.requests == []


def test_a_chat_model_cannot_embed_nor_an_embedding_model_chat(sdk, fake_openai, alice_client):
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.embeddings.create(model="gpt-3.5-turbo", input="hi")
    assert "cannot embed" in caught.value.message
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="text-embedding-3-small", messages=[{"role": "user", "content": "hi"}])
    assert "/v1/embeddings" in caught.value.message
    response = alice_client.post("/api/dialogs/", {"model": "text-embedding-3-small"}, format="json")
    assert response.status_code == 400 and not Dialog.objects.exists()
    assert fake_openai.requests == []


@pytest.mark.parametrize("given", [5, [], [1.5], ["text", ""], None])
def test_input_of_the_wrong_shape_is_a_bad_request_naming_it(sdk, fake_openai, given):
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.embeddings.create(model="text-embedding-3-small", input=given)
    assert (caught.value.code, caught.value.param) == ("invalid_request", "input")
    assert fake_openai.requests == [] and not UsageRecord.objects.exists()
