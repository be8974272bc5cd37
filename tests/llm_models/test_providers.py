"""The OpenAI and Anthropic providers, driven through the real SDKs against the fake vendors."""

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from llm_models.models import LLMModel
from llm_models.providers import registry
from llm_models.providers.anthropic import AnthropicProvider, to_anthropic
from llm_models.providers.base import (
    Chunk,
    CompletionRequest,
    ErrorKind,
    FinishReason,
    ProviderError,
    complete_with_retries,
    retry_after_seconds,
    stream_with_retries,
)
from llm_models.providers.openai import OpenAICompatibleProvider, OpenAIProvider
from tests.fakes.fixtures import ANTHROPIC_TEST_KEY, OPENAI_TEST_KEY
from tests.fakes.server import hang

HISTORY = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hi, I am Alice."},
    {"role": "assistant", "content": "Hello Alice."},
    {"role": "user", "content": "What is my name?"},
]


@pytest.fixture(autouse=True)
def _fast(fast_provider_settings):
    """Tiny backoff and a 2 s timeout: every failure path stays quick."""


def run(coro):
    return asyncio.run(coro)


async def collect(chunks: AsyncIterator[Chunk]) -> tuple[list[Chunk], ProviderError | None]:
    """Everything a stream yielded, and the error that ended it (if any)."""
    received: list[Chunk] = []
    try:
        async for chunk in chunks:
            received.append(chunk)
    except ProviderError as error:
        return received, error
    return received, None


async def attempt(provider, req: CompletionRequest, mode: str):
    """One call, either way; returns what complete() returned or what the stream yielded."""
    if mode == "complete":
        return await provider.complete(req)
    chunks, error = await collect(provider.stream(req))
    if error:
        raise error
    return chunks


def request(
    model: str = "gpt-4o", messages: list[dict] | None = None, max_tokens: int = 100, **fields
) -> CompletionRequest:
    return CompletionRequest(provider_model=model, messages=messages or HISTORY, max_tokens=max_tokens, **fields)


def claude(**fields) -> CompletionRequest:
    return request("claude-3-opus-20240229", **fields)


def text_of(chunks: list[Chunk]) -> str:
    return "".join(chunk.text for chunk in chunks)


# --- OpenAI: the happy paths ----------------------------------------------------------------


def test_openai_completes_and_reports_usage_and_request_id(fake_openai):
    fake_openai.configure(text="Your name is Alice.", usage=(21, 5))

    completion = run(OpenAIProvider().complete(request()))

    assert completion.text == "Your name is Alice."
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (21, 5)
    assert completion.finish_reason == "stop"
    assert completion.request_id == fake_openai.last.request_id
    sent = fake_openai.last
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {OPENAI_TEST_KEY}"
    assert sent.json["model"] == "gpt-4o"
    assert sent.json["messages"] == HISTORY  # history in order, system prompt first
    assert sent.json["max_tokens"] == 100
    assert "temperature" not in sent.json and "stream" not in sent.json


def test_openai_streams_text_then_usage(fake_openai):
    fake_openai.configure(chunks=["Your", " name", " is", " Alice."], usage=(21, 4))

    chunks, error = run(collect(OpenAIProvider().stream(request())))

    assert error is None
    assert [c.text for c in chunks[:-1] if c.text] == ["Your", " name", " is", " Alice."]
    assert all(c.raw["object"] == "chat.completion.chunk" for c in chunks[:-1])  # each event, to relay
    final = chunks[-1]
    assert final.text == "" and final.finish_reason == "stop"
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (21, 4)
    assert {c.request_id for c in chunks} == {fake_openai.last.request_id}
    assert fake_openai.last.json["stream"] is True
    assert fake_openai.last.json["stream_options"] == {"include_usage": True}


def test_openai_stream_without_usage_ends_with_none(fake_openai):
    fake_openai.configure(usage=None)

    chunks, error = run(collect(OpenAIProvider().stream(request())))

    assert error is None
    assert text_of(chunks) == "Hello from the fake vendor."
    assert chunks[-1].usage is None and chunks[-1].finish_reason == "stop"


def test_openai_complete_without_usage(fake_openai):
    fake_openai.configure(usage=None)
    assert run(OpenAIProvider().complete(request())).usage is None


def test_openai_sends_sampling_parameters_only_when_given(fake_openai):
    run(OpenAIProvider().complete(request(temperature=0.2, top_p=0.9, stop=["\n"], extra={"seed": 7, "top_k": 40})))

    sent = fake_openai.last.json
    assert (sent["temperature"], sent["top_p"], sent["stop"]) == (0.2, 0.9, ["\n"])
    assert (sent["seed"], sent["top_k"]) == (7, 40)  # extra passes through, even unknown fields


def test_openai_reports_a_length_cut(fake_openai):
    fake_openai.configure(chunks=["a"] * 10)
    completion = run(OpenAIProvider().complete(request(max_tokens=3)))
    assert (completion.text, completion.finish_reason) == ("aaa", "length")


# --- Anthropic: the happy paths -------------------------------------------------------------


def test_anthropic_completes_with_the_system_prompt_apart(fake_anthropic):
    fake_anthropic.configure(text="Your name is Alice.", usage=(30, 6))

    completion = run(AnthropicProvider().complete(claude()))

    assert completion.text == "Your name is Alice."
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (30, 6)
    assert completion.finish_reason == "stop"  # end_turn, in OpenAI's words
    assert completion.request_id == fake_anthropic.last.request_id
    sent = fake_anthropic.last
    assert sent.path == "/v1/messages"
    assert sent.headers["authorization"] == f"Bearer {ANTHROPIC_TEST_KEY}"
    assert sent.headers["anthropic-version"]
    assert sent.json["system"] == "You are terse."
    assert sent.json["messages"] == HISTORY[1:]
    assert sent.json["max_tokens"] == 100


def test_anthropic_streams_text_then_usage_from_start_and_delta(fake_anthropic):
    fake_anthropic.configure(chunks=["Your", " name", " is", " Alice."], usage=(30, 4))

    chunks, error = run(collect(AnthropicProvider().stream(claude())))

    assert error is None
    assert [c.text for c in chunks[:-1] if c.text] == ["Your", " name", " is", " Alice."]
    final = chunks[-1]
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (30, 4)
    assert final.finish_reason == "stop"
    assert final.request_id == fake_anthropic.last.request_id
    assert fake_anthropic.last.json["stream"] is True


def test_anthropic_stream_without_usage_ends_with_none(fake_anthropic):
    fake_anthropic.configure(usage=None)

    chunks, error = run(collect(AnthropicProvider().stream(claude())))

    assert error is None
    assert text_of(chunks) == "Hello from the fake vendor."
    assert chunks[-1].usage is None


def test_anthropic_complete_without_usage(fake_anthropic):
    fake_anthropic.configure(usage=None)
    assert run(AnthropicProvider().complete(claude())).usage is None


def test_anthropic_gets_alternating_turns_and_stop_sequences(fake_anthropic):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "assistant", "content": "Welcome!"},
        {"role": "user", "content": "One."},
        {"role": "user", "content": "Two."},
        {"role": "system", "content": "Answer in French."},
        {"role": "assistant", "content": "Un."},
    ]
    run(
        AnthropicProvider().complete(
            claude(
                messages=messages, stop=["END"], temperature=0.5, top_p=0.9, extra={"metadata": {"user_id": "alice"}}
            )
        )
    )

    sent = fake_anthropic.last.json
    assert sent["system"] == [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Answer in French."}]
    assert sent["messages"] == [
        {"role": "user", "content": "..."},
        {"role": "assistant", "content": "Welcome!"},
        {"role": "user", "content": [{"type": "text", "text": "One."}, {"type": "text", "text": "Two."}]},
        {"role": "assistant", "content": "Un."},
    ]
    assert sent["stop_sequences"] == ["END"] and sent["metadata"] == {"user_id": "alice"}
    assert "temperature" not in sent and "top_p" not in sent  # the API refuses them now


def test_to_anthropic_without_system_sends_no_system():
    system, turns = to_anthropic([{"role": "user", "content": "Hi"}])
    assert system == [] and turns == [{"role": "user", "content": "Hi"}]


def test_to_anthropic_leaves_out_empty_turns_which_claude_refuses():
    system, turns = to_anthropic(
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": ""},
            {"role": "user", "content": "Still there?"},
        ]
    )
    assert turns == [
        {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "Still there?"}]}
    ]


def test_anthropic_maps_max_tokens_to_length(fake_anthropic):
    fake_anthropic.configure(chunks=["a"] * 10)
    chunks, _ = run(collect(AnthropicProvider().stream(claude(max_tokens=2))))
    assert chunks[-1].finish_reason == "length"


@pytest.mark.parametrize("mode", ["complete", "stream"])
@pytest.mark.parametrize(
    "stop_reason,neutral",
    [
        ("stop_sequence", FinishReason.STOP),
        ("tool_use", FinishReason.TOOL_CALLS),
        ("refusal", FinishReason.CONTENT_FILTER),
        ("max_tokens", FinishReason.LENGTH),
        ("pause_turn", None),  # no word for it in OpenAI's vocabulary: unknown, not passed on raw
    ],
)
def test_anthropic_stop_reasons_come_out_neutral(stop_reason, neutral, mode, fake_anthropic):
    fake_anthropic.configure(finish_reason=stop_reason)

    reply = run(attempt(AnthropicProvider(), claude(), mode))

    finish_reason = reply.finish_reason if mode == "complete" else reply[-1].finish_reason
    assert finish_reason is neutral


def test_openai_passes_other_finish_reasons_through(fake_openai):
    fake_openai.configure(finish_reason="eos")  # what some OpenAI-compatible servers say
    chunks, _ = run(collect(OpenAICompatibleProvider().stream(request("llama3", base_url=fake_openai.base_url))))
    assert chunks[-1].finish_reason == "eos"


# --- errors, for both vendors ---------------------------------------------------------------


@pytest.mark.parametrize(
    "kind,status,retryable,api_type",
    [
        (ErrorKind.UNAVAILABLE, 503, False, "provider_unavailable"),
        (ErrorKind.AUTH, 502, False, "provider_auth_error"),
        (ErrorKind.RATE_LIMITED, 429, True, "provider_rate_limited"),
        (ErrorKind.SERVER, 502, True, "provider_error"),
        (ErrorKind.CONNECTION, 502, True, "provider_error"),
        (ErrorKind.TIMEOUT, 504, False, "provider_timeout"),
        (ErrorKind.BAD_REQUEST, 400, False, "provider_bad_request"),
        (ErrorKind.NOT_FOUND, 502, False, "provider_error"),
    ],
)
def test_an_error_kind_carries_its_status_retryability_and_api_type(kind, status, retryable, api_type):
    assert (kind.status, kind.retryable, kind.api_type) == (status, retryable, api_type)
    error = ProviderError("failed", kind=kind)
    assert (error.status, error.retryable) == (status, retryable)


def test_an_error_kind_is_still_its_old_string():
    # Message.error_type stores these strings; rows written before the enum must read back the same.
    assert [str(kind) for kind in ErrorKind] == [
        "unavailable", "auth", "rate_limited", "server", "connection", "timeout", "bad_request", "not_found"
    ]  # fmt: skip
    error = ProviderError("slow", kind="timeout")
    assert error.kind is ErrorKind.TIMEOUT and error.kind == "timeout" and error.status == 504


VENDORS = {
    "openai": (OpenAIProvider, request, "fake_openai"),
    "anthropic": (AnthropicProvider, claude, "fake_anthropic"),
}
ERRORS = [
    (401, "auth"),
    (403, "auth"),
    (404, "not_found"),
    (400, "bad_request"),
    (500, "server"),
    (503, "server"),
    (429, "rate_limited"),
]


@pytest.mark.parametrize("mode", ["complete", "stream"])
@pytest.mark.parametrize("status,kind", ERRORS + [(529, "server")])
@pytest.mark.parametrize("vendor", VENDORS)
def test_vendor_errors_become_provider_errors(vendor, status, kind, mode, request):
    provider_class, make_request, fake_name = VENDORS[vendor]
    fake = request.getfixturevalue(fake_name)
    fake.fail(status)

    with pytest.raises(ProviderError) as caught:
        run(attempt(provider_class(), make_request(), mode))

    error = caught.value
    assert (error.kind, error.vendor_status) == (kind, status)
    assert error.request_id == fake.last.request_id
    assert "key" not in error.message.lower() or kind == "unavailable"


def test_openai_bad_request_keeps_the_vendors_message(fake_openai):
    fake_openai.fail(400)
    with pytest.raises(ProviderError) as caught:
        run(OpenAIProvider().complete(request()))
    assert "maximum context length is 128000 tokens" in caught.value.message
    assert caught.value.status == 400


def test_anthropic_bad_request_keeps_the_vendors_message(fake_anthropic):
    fake_anthropic.fail(400)
    with pytest.raises(ProviderError) as caught:
        run(AnthropicProvider().complete(claude()))
    assert caught.value.message == "prompt is too long: 210000 tokens > 200000 maximum"


def test_auth_failures_never_echo_the_key(fake_openai):
    fake_openai.fail(401)
    with pytest.raises(ProviderError) as caught:
        run(OpenAIProvider().complete(request()))
    assert caught.value.message == "the provider rejected the gateway's credentials"
    assert caught.value.status == 502


def test_rate_limit_carries_retry_after(fake_openai):
    fake_openai.fail(429, headers={"retry-after": "7"})
    with pytest.raises(ProviderError) as caught:
        run(OpenAIProvider().complete(request()))
    assert caught.value.retry_after == 7.0


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("mode", ["complete", "stream"])
def test_a_hung_vendor_times_out(vendor, mode, request, settings):
    provider_class, make_request, fake_name = VENDORS[vendor]
    fake = request.getfixturevalue(fake_name)
    settings.PROVIDER_TIMEOUT_SECONDS = 0.3
    fake.script(hang(10))

    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        run(attempt(provider_class(), make_request(), mode))

    assert caught.value.kind == "timeout" and caught.value.status == 504
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_stream_that_stalls_midway_times_out(vendor, request, settings):
    provider_class, make_request, fake_name = VENDORS[vendor]
    fake = request.getfixturevalue(fake_name)
    settings.PROVIDER_TIMEOUT_SECONDS = 0.3
    fake.configure(chunk_delay=10)

    chunks, error = run(collect(provider_class().stream(make_request())))

    assert not any(c.text for c in chunks) and error.kind == "timeout"


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_stream_cut_midway_yields_its_chunks_then_fails(vendor, request):
    provider_class, make_request, fake_name = VENDORS[vendor]
    fake = request.getfixturevalue(fake_name)
    fake.configure(chunks=["one", " two", " three", " four"], cut_after=2)

    chunks, error = run(collect(stream_with_retries(provider_class(), make_request())))

    assert [c.text for c in chunks if c.text] == ["one", " two"]
    assert error.kind == "connection" and error.status == 502
    assert len(fake.requests) == 1  # text had reached the client: no retry


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_stream_cut_after_its_last_chunk_still_fails(vendor, request):
    provider_class, make_request, fake_name = VENDORS[vendor]
    fake = request.getfixturevalue(fake_name)
    fake.configure(chunks=["one", " two"], cut_after=2)  # all text, but no closing events

    chunks, error = run(collect(provider_class().stream(make_request())))

    assert text_of(chunks) == "one two" and error.kind == "connection"


@pytest.mark.parametrize("vendor", VENDORS)
def test_an_unreachable_vendor_is_a_connection_error(vendor, request, monkeypatch):
    provider_class, make_request, fake_name = VENDORS[vendor]
    request.getfixturevalue(fake_name)
    env = "OPENAI_BASE_URL" if vendor == "openai" else "ANTHROPIC_BASE_URL"
    monkeypatch.setenv(env, "http://127.0.0.1:9/v1")  # the discard port: refused

    with pytest.raises(ProviderError) as caught:
        run(provider_class().complete(make_request()))
    assert caught.value.kind == "connection"


# --- retries ------------------------------------------------------------------------------


@pytest.mark.parametrize("vendor", VENDORS)
def test_two_server_errors_then_success_is_one_result(vendor, request):
    provider_class, make_request, fake_name = VENDORS[vendor]
    fake = request.getfixturevalue(fake_name)
    fake.fail(500, times=2)

    completion = run(complete_with_retries(provider_class(), make_request()))

    assert completion.text == "Hello from the fake vendor."
    assert len(fake.requests) == 3


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_stream_is_retried_until_it_starts(vendor, request):
    provider_class, make_request, fake_name = VENDORS[vendor]
    fake = request.getfixturevalue(fake_name)
    fake.fail(500, times=2)

    chunks, error = run(collect(stream_with_retries(provider_class(), make_request())))

    assert error is None and text_of(chunks) == "Hello from the fake vendor."
    assert len(fake.requests) == 3


def test_rate_limits_are_retried_after_the_time_asked_then_given_up(fake_openai):
    fake_openai.fail(429, times=3, headers={"retry-after": "0.2"})

    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        run(complete_with_retries(OpenAIProvider(), request()))

    assert time.monotonic() - started >= 0.4  # two waits of 0.2 s
    assert (caught.value.kind, caught.value.retry_after) == ("rate_limited", 0.2)
    assert len(fake_openai.requests) == 3


def test_bad_requests_are_not_retried(fake_anthropic):
    fake_anthropic.fail(400, times=3)
    with pytest.raises(ProviderError):
        run(complete_with_retries(AnthropicProvider(), claude()))
    assert len(fake_anthropic.requests) == 1


def test_the_sdk_itself_never_retries(fake_openai, settings):
    settings.PROVIDER_MAX_RETRIES = 0
    fake_openai.fail(500, times=3)
    with pytest.raises(ProviderError):
        run(complete_with_retries(OpenAIProvider(), request()))
    assert len(fake_openai.requests) == 1


@pytest.mark.parametrize(
    "headers,expected",
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "250", "retry-after": "1"}, 0.25),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # a date in the past
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_parsing(headers, expected):
    assert retry_after_seconds(headers) == expected


# --- credentials --------------------------------------------------------------------------


@pytest.mark.parametrize("vendor,env", [("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY")])
@pytest.mark.parametrize("mode", ["complete", "stream"])
def test_a_missing_key_is_unavailable_and_nothing_is_sent(vendor, env, mode, request, monkeypatch):
    provider_class, make_request, fake_name = VENDORS[vendor]
    fake = request.getfixturevalue(fake_name)
    monkeypatch.delenv(env)

    with pytest.raises(ProviderError) as caught:
        run(attempt(provider_class(), make_request(), mode))

    assert caught.value.kind == "unavailable" and caught.value.status == 503
    assert env in caught.value.message
    assert fake.requests == []


def test_a_compatible_server_gets_its_own_key_not_openais(fake_openai, monkeypatch):
    monkeypatch.setenv("LOCAL_LLM_API_KEY", "local-secret")
    provider = OpenAICompatibleProvider()

    run(provider.complete(request("llama3", base_url=fake_openai.base_url, api_key_env="LOCAL_LLM_API_KEY")))
    assert fake_openai.last.headers["authorization"] == "Bearer local-secret"

    run(provider.complete(request("llama3", base_url=fake_openai.base_url)))
    assert OPENAI_TEST_KEY not in fake_openai.last.headers["authorization"]


@pytest.mark.parametrize(
    "provider, fields",
    [
        (OpenAIProvider, {"base_url": "FAKE_ANTHROPIC"}),  # OpenAI's key to another host
        (OpenAIProvider, {"api_key_env": "ANTHROPIC_API_KEY"}),  # Anthropic's key to OpenAI's host
        (AnthropicProvider, {"base_url": "FAKE_OPENAI"}),
        (OpenAICompatibleProvider, {"base_url": "FAKE_ANTHROPIC", "api_key_env": "OPENAI_API_KEY"}),
        (OpenAICompatibleProvider, {"base_url": "FAKE_ANTHROPIC", "api_key_env": "ANTHROPIC_API_KEY"}),
    ],
)
def test_a_vendor_key_is_never_sent_to_another_host(fake_openai, fake_anthropic, provider, fields):
    """Rows saved before the rule, or edited in the database: the call is refused, nothing sent."""
    urls = {"FAKE_ANTHROPIC": fake_anthropic.base_url, "FAKE_OPENAI": fake_openai.base_url}
    fields = {name: urls.get(value, value) for name, value in fields.items()}

    with pytest.raises(ProviderError) as caught:
        run(provider().complete(request(**fields)))

    assert caught.value.kind == "unavailable" and caught.value.status == 503
    assert "127.0.0.1" not in caught.value.message  # the caller learns no host
    assert fake_openai.requests == [] and fake_anthropic.requests == []


def test_a_vendor_key_goes_to_a_host_the_operator_allows(fake_openai, settings, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "https://api.openai.com/v1")  # the row names another endpoint
    row = request(base_url=fake_openai.base_url)
    with pytest.raises(ProviderError):
        run(OpenAIProvider().complete(row))

    settings.PROVIDER_ALLOWED_KEY_HOSTS = [fake_openai.base_url.split("//")[1].split("/")[0]]  # its host:port
    run(OpenAIProvider().complete(row))
    assert fake_openai.last.headers["authorization"] == f"Bearer {OPENAI_TEST_KEY}"


def test_a_key_variable_must_be_an_api_key(fake_openai, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "the-gateways-own-secret")
    with pytest.raises(ProviderError) as caught:
        run(OpenAICompatibleProvider().complete(request(api_key_env="SECRET_KEY")))
    assert caught.value.kind == "unavailable"
    assert fake_openai.requests == []


def test_a_provider_keeps_one_client_per_event_loop(fake_openai):
    provider = OpenAIProvider()

    async def two_calls():
        await provider.complete(request())
        first = provider._client
        await provider.complete(request())
        return first, provider._client

    first, second = run(two_calls())
    assert first is second
    third, _ = run(two_calls())  # a new loop: its own client (pools belong to a loop)
    assert third is not first


# --- registry -------------------------------------------------------------------------------


def model(**fields) -> LLMModel:
    defaults = {
        "name": "gpt-4o",
        "provider": "openai",
        "provider_model": "gpt-4o",
        "context_window": 128000,
        "max_output_tokens": 4096,
        "input_price_per_1k": "0.005",
        "output_price_per_1k": "0.015",
    }
    return LLMModel(**(defaults | fields))


def test_registry_keeps_one_provider_per_endpoint():
    registry.clear_cache()
    gpt, claude_model = model(), model(name="claude", provider="anthropic")
    local = model(name="llama", provider="openai_compatible", base_url="http://gpu:8000/v1")

    assert registry.get_provider(gpt) is registry.get_provider(model(name="gpt-4o-mini"))
    assert isinstance(registry.get_provider(claude_model), AnthropicProvider)
    assert isinstance(registry.get_provider(local), OpenAICompatibleProvider)
    assert registry.get_provider(local) is not registry.get_provider(
        model(name="other", provider="openai_compatible", base_url="http://gpu2:8000/v1")
    )


def test_registry_refuses_an_unknown_provider():
    with pytest.raises(ProviderError) as caught:
        registry.get_provider(model(provider="mistral"))
    assert caught.value.kind == "unavailable"


def test_build_request_caps_max_tokens_at_the_models_limit():
    local = model(
        provider="openai_compatible",
        provider_model="llama3",
        max_output_tokens=512,
        base_url="http://gpu:8000/v1",
        api_key_env="GPU_API_KEY",
    )

    built = registry.build_request(local, messages=HISTORY, max_tokens=10_000, temperature=0.1, extra={"seed": 1})

    assert (built.provider_model, built.max_tokens, built.temperature) == ("llama3", 512, 0.1)
    assert (built.base_url, built.api_key_env, built.extra) == ("http://gpu:8000/v1", "GPU_API_KEY", {"seed": 1})
    assert built.top_p is None and built.stop is None


def test_a_registry_provider_talks_to_the_fake(fake_anthropic):
    registry.clear_cache()
    row = model(name="claude-3-opus", provider="anthropic", provider_model="claude-3-opus-20240229")
    provider = registry.get_provider(row)
    completion = run(provider.complete(registry.build_request(row, messages=HISTORY, max_tokens=50)))
    assert completion.text == "Hello from the fake vendor."
    assert fake_anthropic.last.json["model"] == "claude-3-opus-20240229"


# What a fresh process imports: the vendor SDKs take seconds, which every manage.py command paid.
LAZY_IMPORTS = """
import sys
import django

django.setup()
import llm_models.providers.base, llm_models.providers.tokens
from llm_models.models import LLMModel
from llm_models.providers import registry

sdks = lambda: {"openai", "anthropic"} & set(sys.modules)
assert not sdks(), f"imported with the registry: {sdks()}"
registry.get_provider(LLMModel(name="claude", provider="anthropic", provider_model="claude"))
assert sdks() == {"anthropic"}, f"imported on first use: {sdks()}"
registry.load_all()
assert sdks() == {"openai", "anthropic"}, f"imported by load_all: {sdks()}"
"""


def test_the_registry_imports_a_vendor_sdk_only_when_it_is_used():
    env = os.environ | {"DJANGO_SETTINGS_MODULE": "gateway.settings", "SECRET_KEY": "x"}
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", LAZY_IMPORTS], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
