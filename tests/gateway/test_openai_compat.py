"""The OpenAI-compatible endpoints, driven by the official `openai` SDK (sync and async) against a
real gateway server: what a program written for OpenAI sees when only its base URL and key change."""

import asyncio
import time

import httpx2 as httpx
import openai
import pytest

from billing.models import APIKey, Quota, UsageRecord
from llm_models import catalog
from llm_models.models import LLMModel
from tests.factories import make_key, seeded_model, set_quota

pytestmark = pytest.mark.django_db(transaction=True)

MODELS = [("gpt-3.5-turbo", "fake_openai"), ("claude-3-sonnet", "fake_anthropic")]
HELLO = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def sdk(live, alice_key) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live}/v1", api_key=alice_key, max_retries=0)


@pytest.fixture
def async_sdk(live, alice_key):
    def make() -> openai.AsyncOpenAI:  # inside the test's event loop
        return openai.AsyncOpenAI(base_url=f"{live}/v1", api_key=alice_key, max_retries=0)

    return make


@pytest.mark.parametrize("model,fake_name", MODELS)
def test_a_completion_answers_in_openais_format_with_the_vendors_usage(request, sdk, model, fake_name):
    fake = request.getfixturevalue(fake_name)
    fake.configure(text="Hello there, friend.", usage=(12, 5))

    completion = sdk.chat.completions.create(model=model, messages=HELLO, max_tokens=50)

    assert completion.object == "chat.completion" and completion.id.startswith("chatcmpl-")
    assert completion.model == model
    choice = completion.choices[0]
    assert choice.message.role == "assistant" and choice.message.content == "Hello there, friend."
    assert choice.finish_reason == "stop"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.total_tokens) == (
        12,
        5,
        17,
    )


@pytest.mark.parametrize("model,fake_name", MODELS)
def test_a_streamed_completion_ends_with_a_usage_chunk(request, sdk, model, fake_name):
    fake = request.getfixturevalue(fake_name)
    fake.configure(text="one two three four", usage=(12, 5))

    stream = sdk.chat.completions.create(
        model=model, messages=HELLO, max_tokens=50, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)

    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1 and {c.model for c in chunks} == {model}
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two three four"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == []
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens, chunks[-1].usage.total_tokens) == (
        12,
        5,
        17,
    )
    assert all(c.usage is None for c in chunks[:-1])


def test_a_stream_without_include_usage_has_no_usage_chunk(sdk, fake_openai):
    chunks = list(sdk.chat.completions.create(model="gpt-3.5-turbo", messages=HELLO, stream=True))

    assert all(c.usage is None and c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert UsageRecord.objects.get().status == "ok"  # billed all the same


def test_the_stream_helper_of_the_sdk_accumulates_the_reply(sdk, fake_anthropic):
    fake_anthropic.configure(text="a b c", usage=(7, 3))
    with sdk.chat.completions.stream(
        model="claude-3-sonnet", messages=HELLO, max_tokens=20, stream_options={"include_usage": True}
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "a b c"
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (7, 3)


@pytest.mark.parametrize("model,fake_name", MODELS)
def test_the_async_client_completes_and_streams(request, async_sdk, model, fake_name):
    fake = request.getfixturevalue(fake_name)
    fake.configure(text="async works", usage=(9, 2))

    async def run():
        async with async_sdk() as client:
            completion = await client.chat.completions.create(model=model, messages=HELLO, max_tokens=20)
            stream = await client.chat.completions.create(
                model=model, messages=HELLO, max_tokens=20, stream=True, stream_options={"include_usage": True}
            )
            chunks = [chunk async for chunk in stream]
            return completion, chunks

    completion, chunks = asyncio.run(run())

    assert completion.choices[0].message.content == "async works"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (9, 2)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "async works"
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (9, 2)


def test_the_async_client_gets_the_usual_exceptions(async_sdk, alice):
    set_quota(alice, token_limit=10)

    async def run():
        async with async_sdk() as client:
            with pytest.raises(openai.RateLimitError):
                await client.chat.completions.create(model="gpt-3.5-turbo", messages=HELLO)
            with pytest.raises(openai.NotFoundError):
                await client.chat.completions.create(model="gpt-17", messages=HELLO)

    asyncio.run(run())


def test_every_call_is_recorded_with_its_key_and_endpoint(sdk, alice, fake_openai, fake_anthropic):
    fake_openai.configure(usage=(12, 5))
    fake_anthropic.configure(usage=(30, 7))
    sdk.chat.completions.create(model="gpt-3.5-turbo", messages=HELLO)
    list(sdk.chat.completions.create(model="claude-3-sonnet", messages=HELLO, stream=True))

    key = APIKey.objects.get()
    records = list(UsageRecord.objects.order_by("id"))
    assert [
        (r.model_name, r.prompt_tokens, r.completion_tokens, r.status, r.endpoint, r.api_key_id, r.user_id)
        for r in records
    ] == [
        ("gpt-3.5-turbo", 12, 5, "ok", "openai", key.pk, alice.pk),
        ("claude-3-sonnet", 30, 7, "ok", "openai", key.pk, alice.pk),
    ]
    assert records[0].request_id == fake_openai.requests[0].request_id
    assert all(r.cost > 0 for r in records)
    quota = Quota.objects.get(user=alice)
    assert (quota.used_tokens, quota.reserved_tokens) == (54, 0)
    key.refresh_from_db()
    assert (key.used_tokens, key.reserved_tokens) == (54, 0)
    assert key.last_used_at is not None


def test_the_request_parameters_reach_the_vendor(sdk, fake_openai):
    sdk.chat.completions.create(
        model="gpt-3.5-turbo",
        max_completion_tokens=33,
        temperature=0.4,
        top_p=0.9,
        stop=["END"],
        user="u-1",
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
        ],
    )
    sent = fake_openai.last.json
    assert sent["model"] == "gpt-3.5-turbo"
    assert sent["max_completion_tokens"] == 33 and "max_tokens" not in sent
    assert (sent["temperature"], sent["top_p"], sent["stop"], sent["user"]) == (0.4, 0.9, ["END"], "u-1")
    # An OpenAI vendor gets the messages as the client sent them: roles and content parts.
    assert sent["messages"] == [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
    ]


def test_models_lists_the_enabled_models(sdk):
    LLMModel.objects.filter(name="claude-3-opus").update(enabled=False)

    listed = list(sdk.models.list())

    assert sorted(m.id for m in listed) == [
        "claude-3-sonnet",
        "claude-opus-5-5",
        "claude-sonnet-4",
        "claude-sonnet-5-5",
        "gpt-3.5-turbo",
        "gpt-4-turbo",
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-6-luna",
        "text-embedding-3-small",
    ]
    assert {m.object for m in listed} == {"model"}
    assert {m.id: m.owned_by for m in listed}["claude-3-sonnet"] == "anthropic"


def test_a_model_is_retrieved_by_its_name_and_a_disabled_one_is_not_found(sdk):
    LLMModel.objects.filter(name="claude-3-opus").update(enabled=False)

    model = sdk.models.retrieve("gpt-4-turbo")

    assert (model.id, model.object, model.owned_by) == ("gpt-4-turbo", "model", "openai")
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.models.retrieve("claude-3-opus")
    assert caught.value.code == "model_not_found"


@pytest.mark.parametrize("method", ["TRACE", "POST", "PUT", "DELETE"])
@pytest.mark.parametrize("path", ["/v1/models", "/v1/models/gpt-4-turbo"])
def test_the_models_answer_any_method_but_get_with_a_405_in_the_callers_format(live, alice_key, path, method):
    auth = {"Authorization": f"Bearer {alice_key}"}

    openai_style = httpx.request(method, f"{live}{path}", headers=auth, timeout=10)
    anthropic_style = httpx.request(method, f"{live}{path}", headers=auth | {"anthropic-version": "2023-06-01"})

    assert (openai_style.status_code, anthropic_style.status_code) == (405, 405)
    assert openai_style.headers["Allow"] == anthropic_style.headers["Allow"] == "GET"
    assert openai_style.json()["error"]["code"] == "method_not_allowed"
    assert anthropic_style.json()["type"] == "error"


def test_an_unknown_model_is_not_found(sdk, fake_openai):
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.chat.completions.create(model="gpt-17", messages=HELLO)
    assert caught.value.code == "model_not_found" and "gpt-17" in caught.value.message
    assert fake_openai.requests == [] and not UsageRecord.objects.exists()


def test_a_disabled_model_is_not_found(sdk, fake_openai):
    LLMModel.objects.filter(name="gpt-3.5-turbo").update(enabled=False)
    catalog.forget()

    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="gpt-3.5-turbo", messages=HELLO)
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="gpt-3.5-turbo", messages=HELLO, stream=True)
    assert fake_openai.requests == []


@pytest.mark.parametrize("stream", [False, True])
def test_an_exhausted_quota_raises_rate_limit_error(sdk, alice, fake_openai, stream):
    set_quota(alice, token_limit=100, used_tokens=95)

    with pytest.raises(openai.RateLimitError) as caught:
        sdk.chat.completions.create(model="gpt-3.5-turbo", messages=HELLO, max_tokens=20, stream=stream)

    assert caught.value.code == "quota_exceeded"
    assert caught.value.body["remaining"] == 5
    assert caught.value.response.headers["Retry-After"]
    assert fake_openai.requests == [] and not UsageRecord.objects.exists()
    assert Quota.objects.get(user=alice).reserved_tokens == 0


def test_a_keys_own_limit_raises_rate_limit_error(live, alice, fake_openai):
    _, secret = make_key(alice, name="tiny", token_limit=10)
    client = openai.OpenAI(base_url=f"{live}/v1", api_key=secret, max_retries=0)
    with pytest.raises(openai.RateLimitError, match="this API key"):
        client.chat.completions.create(model="gpt-3.5-turbo", messages=HELLO, max_tokens=20)


def test_the_requests_per_minute_limit_raises_rate_limit_error(sdk, alice, fake_openai):
    set_quota(alice, requests_per_minute=1)
    sdk.chat.completions.create(model="gpt-3.5-turbo", messages=HELLO)
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.chat.completions.create(model="gpt-3.5-turbo", messages=HELLO)
    assert caught.value.code == "rate_limited"


def test_a_revoked_key_raises_authentication_error(live, alice_client, sdk, fake_openai):
    sdk.chat.completions.create(model="gpt-3.5-turbo", messages=HELLO)
    key = APIKey.objects.get()
    assert alice_client.delete(f"/api/keys/{key.pk}/").status_code == 204

    with pytest.raises(openai.AuthenticationError, match="revoked"):
        sdk.chat.completions.create(model="gpt-3.5-turbo", messages=HELLO)
    with pytest.raises(openai.AuthenticationError):
        list(sdk.chat.completions.create(model="gpt-3.5-turbo", messages=HELLO, stream=True))
    with pytest.raises(openai.AuthenticationError):
        sdk.models.list()
    assert len(fake_openai.requests) == 1


@pytest.mark.parametrize("api_key", ["sk-gw-not-a-real-key", "not-even-a-gateway-key"])
def test_a_wrong_key_raises_authentication_error(live, api_key):
    client = openai.OpenAI(base_url=f"{live}/v1", api_key=api_key, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="gpt-3.5-turbo", messages=HELLO)
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


@pytest.mark.parametrize(
    "fields,param",
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages"),
        ({"temperature": 7}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 10**6}, "max_tokens"),
        ({"stop": 5}, "stop"),
    ],
)
def test_a_bad_request_raises_bad_request_error(sdk, fake_openai, fields, param):
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(**{"model": "gpt-3.5-turbo", "messages": HELLO, **fields})
    assert caught.value.param == param
    assert fake_openai.requests == []


def test_a_prompt_longer_than_the_context_window_is_a_bad_request(sdk, fake_openai):
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="gpt-3.5-turbo", messages=[{"role": "user", "content": "word " * 20000}])
    assert caught.value.code == "context_length_exceeded"


def test_a_model_outside_the_keys_list_raises_permission_denied(live, alice, fake_anthropic):
    _, secret = make_key(alice, name="gpt only", allowed_models=[seeded_model("gpt-3.5-turbo")])
    client = openai.OpenAI(base_url=f"{live}/v1", api_key=secret, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="claude-3-sonnet", messages=HELLO)
    assert fake_anthropic.requests == []


def test_a_vendor_failure_is_an_sdk_error_and_costs_nothing(sdk, alice, fake_openai):
    fake_openai.fail(500, times=5)
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.chat.completions.create(model="gpt-3.5-turbo", messages=HELLO)
    assert caught.value.status_code >= 500
    assert UsageRecord.objects.get().status == "error"
    quota = Quota.objects.get(user=alice)
    assert (quota.used_tokens, quota.reserved_tokens) == (0, 0)


def test_a_stream_the_vendor_cuts_ends_in_an_error_and_bills_what_arrived(sdk, alice, fake_openai):
    fake_openai.configure(text="one two three four five", cut_after=2)
    received = []
    with pytest.raises(openai.APIError):
        for chunk in sdk.chat.completions.create(model="gpt-3.5-turbo", messages=HELLO, stream=True):
            received.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
    assert "".join(received).startswith("one")
    record = UsageRecord.objects.get()
    assert record.status == "incomplete" and record.completion_tokens > 0
    assert Quota.objects.get(user=alice).reserved_tokens == 0


def test_a_stream_over_the_longest_call_allowed_ends_in_an_error_and_bills_what_arrived(
    sdk, alice, fake_openai, settings
):
    # Each chunk comes well within the per-read timeout; the call as a whole does not end in time.
    settings.PROVIDER_MAX_CALL_SECONDS = 1
    fake_openai.configure(text="one two three four five six seven eight nine ten", chunk_delay=0.3)
    received = []
    with pytest.raises(openai.APIError, match="longer than the gateway allows"):
        for chunk in sdk.chat.completions.create(model="gpt-3.5-turbo", messages=HELLO, stream=True):
            received.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
    assert "".join(received).startswith("one") and "ten" not in "".join(received)
    record = UsageRecord.objects.get()
    assert record.status == "incomplete" and record.completion_tokens > 0
    assert Quota.objects.get(user=alice).reserved_tokens == 0


def test_a_call_over_the_longest_allowed_is_a_gateway_timeout(sdk, alice, fake_openai, settings):
    settings.PROVIDER_MAX_CALL_SECONDS = 0.5
    fake_openai.configure(first_byte_delay=1.5)
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.chat.completions.create(model="gpt-3.5-turbo", messages=HELLO)
    assert caught.value.status_code == 504
    assert UsageRecord.objects.get().status == "error"
    assert Quota.objects.get(user=alice).reserved_tokens == 0


@pytest.mark.parametrize("status,error", [(429, openai.RateLimitError), (503, openai.InternalServerError)])
def test_a_vendor_refusal_before_a_stream_starts_is_an_http_status(sdk, fake_openai, status, error):
    # A status (not an error event inside a 200 stream) lets the SDK act as usual, e.g. retry a 429.
    fake_openai.fail(status, times=5)
    with pytest.raises(error):
        sdk.chat.completions.create(model="gpt-3.5-turbo", messages=HELLO, stream=True)
    assert UsageRecord.objects.get().status == "error"


def test_a_client_that_hangs_up_mid_stream_pays_for_what_was_sent(live, alice_key, alice, fake_openai):
    fake_openai.configure(text=" ".join(["word"] * 50), chunk_delay=0.05)
    with httpx.stream(
        "POST",
        f"{live}/v1/chat/completions",
        headers={"Authorization": f"Bearer {alice_key}"},
        json={"model": "gpt-3.5-turbo", "messages": HELLO, "stream": True},
    ) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        assert any("word" in line for line in lines)

    record = wait_for(lambda: UsageRecord.objects.first())
    assert record.status == "incomplete" and 0 < record.completion_tokens < 50
    assert Quota.objects.get(user=alice).reserved_tokens == 0


def wait_for(get, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = get()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")
