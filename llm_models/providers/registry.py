"""Which Provider serves an LLMModel row, and the CompletionRequest for it.

Provider classes are named by dotted path and imported on first use, as Django picks its
backends: the vendor SDKs take seconds to import (anthropic ~1-4.5 s, openai ~0.4-2 s), which
every `manage.py` command would otherwise pay. A server worker calls `load_all()` at start-up
instead, so that no request waits for an import.
"""

from django.utils.module_loading import import_string

from llm_models.models import LLMModel, ProviderKind
from llm_models.providers.base import CompletionRequest, ErrorKind, Provider, ProviderError

PROVIDER_CLASSES: dict[str, str] = {
    ProviderKind.OPENAI: "llm_models.providers.openai.OpenAIProvider",
    ProviderKind.ANTHROPIC: "llm_models.providers.anthropic.AnthropicProvider",
    ProviderKind.OPENAI_COMPATIBLE: "llm_models.providers.openai.OpenAICompatibleProvider",
}

# One provider (so one SDK client, one connection pool) per endpoint per process: in a trial
# with 500-1,000 simultaneous streams, a new client per request cost 2.5x the CPU and 2.7x the
# memory.
_providers: dict[tuple[str, str, str], Provider] = {}


def get_provider(model: LLMModel) -> Provider:
    key = (model.provider, model.base_url or "", model.api_key_env or "")
    provider = _providers.get(key)
    if provider is None:
        path = PROVIDER_CLASSES.get(model.provider)
        if path is None:
            raise ProviderError(
                f"unknown provider {model.provider!r} for model {model.name!r}", kind=ErrorKind.UNAVAILABLE
            )
        provider = _providers.setdefault(key, import_string(path)())
    return provider


def load_all() -> None:
    """Import every provider module now (a worker's start-up), not during its first requests."""
    for path in PROVIDER_CLASSES.values():
        import_string(path)


def build_request(
    model: LLMModel,
    *,
    messages: list[dict],
    max_tokens: int,
    max_tokens_param: str | None = "max_tokens",
    temperature: float | None = None,
    top_p: float | None = None,
    stop: list[str] | None = None,
    options: dict | None = None,
    extra: dict | None = None,
) -> CompletionRequest:
    """The request for `model`; `max_tokens` is capped at the model's own output limit."""
    return CompletionRequest(
        provider_model=model.provider_model,
        messages=messages,
        max_tokens=min(max_tokens, model.max_output_tokens),
        max_tokens_param=max_tokens_param,
        temperature=temperature,
        top_p=top_p,
        stop=stop,
        base_url=model.base_url or "",
        api_key_env=model.api_key_env or "",
        options=dict(options or {}),
        extra=dict(extra or {}),
    )


def clear_cache() -> None:
    """Forget the providers (tests; a reload after the catalog changed endpoints)."""
    _providers.clear()
