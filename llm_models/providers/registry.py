"""Which Provider serves an LLMModel row, and the CompletionRequest for it."""

from typing import TYPE_CHECKING

from llm_models.providers.anthropic import AnthropicProvider
from llm_models.providers.base import CompletionRequest, Provider, ProviderError
from llm_models.providers.openai import OpenAICompatibleProvider, OpenAIProvider

if TYPE_CHECKING:
    from llm_models.models import LLMModel

PROVIDER_CLASSES: dict[str, type[Provider]] = {
    "openai": OpenAIProvider,
    "anthropic": AnthropicProvider,
    "openai_compatible": OpenAICompatibleProvider,
}

# One provider (so one SDK client, one connection pool) per endpoint per process: a client per
# request cost 2.5x the CPU and 2.7x the memory (docs/DESIGN "facts measured").
_providers: dict[tuple[str, str, str], Provider] = {}


def get_provider(model: "LLMModel") -> Provider:
    key = (model.provider, model.base_url or "", model.api_key_env or "")
    provider = _providers.get(key)
    if provider is None:
        cls = PROVIDER_CLASSES.get(model.provider)
        if cls is None:
            raise ProviderError(f"unknown provider {model.provider!r} for model {model.name!r}", kind="unavailable")
        provider = _providers.setdefault(key, cls())
    return provider


def build_request(
    model: "LLMModel",
    *,
    messages: list[dict],
    max_tokens: int,
    temperature: float | None = None,
    top_p: float | None = None,
    stop: list[str] | None = None,
    extra: dict | None = None,
) -> CompletionRequest:
    """The request for `model`; `max_tokens` is capped at the model's own output limit."""
    return CompletionRequest(
        provider_model=model.provider_model,
        messages=messages,
        max_tokens=min(max_tokens, model.max_output_tokens),
        temperature=temperature,
        top_p=top_p,
        stop=stop,
        base_url=model.base_url or "",
        api_key_env=model.api_key_env or "",
        extra=dict(extra or {}),
    )


def clear_cache() -> None:
    """Forget the providers (tests; a reload after the catalog changed endpoints)."""
    _providers.clear()
