"""Pytest fixtures for the fake vendors. Load them with `pytest_plugins = ["tests.fakes.fixtures"]`.

- `fake_openai` / `fake_anthropic`: a running fake, reset for this test, with the SDK env
  (OPENAI_BASE_URL + OPENAI_API_KEY / ANTHROPIC_BASE_URL + ANTHROPIC_API_KEY) pointed at it.
  Script it with `.configure(text=..., usage=(12, 5), chunk_delay=...)`, `.script(Reply(...))`,
  `.fail(500, times=2)`; read `.requests` / `.last` (path, headers, json, request_id).
- `fake_openai_server` / `fake_anthropic_server`: the same servers, session-wide, untouched.
- `fast_provider_settings`: tiny retry backoff and a short timeout, so failure tests stay fast.
"""

from collections.abc import Iterator

import pytest

from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI

OPENAI_TEST_KEY = "sk-test-openai-key-not-real"
ANTHROPIC_TEST_KEY = "sk-ant-test-key-not-real"


@pytest.fixture(scope="session")
def fake_openai_server() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_anthropic_server() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic().start()
    yield server
    server.stop()


@pytest.fixture
def fake_openai(fake_openai_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    fake_openai_server.reset()
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_TEST_KEY)
    yield fake_openai_server
    fake_openai_server.reset()


@pytest.fixture
def fake_anthropic(fake_anthropic_server: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAnthropic]:
    fake_anthropic_server.reset()
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_anthropic_server.base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_TEST_KEY)
    yield fake_anthropic_server
    fake_anthropic_server.reset()


@pytest.fixture
def fast_provider_settings(settings):
    settings.PROVIDER_RETRY_BASE_SECONDS = 0.001
    settings.PROVIDER_MAX_RETRIES = 2
    settings.PROVIDER_TIMEOUT_SECONDS = 2.0
    return settings
