"""Looking models up by name on the hot path.

Each process keeps the rows it looked up for a few seconds, then reads them again: a model
changed by any path (the admin, the API, a command, the shell, a data migration) is served
stale by no process for longer than LOCAL_TTL_SECONDS. The services that change models also
drop this process's copies at once (`forget`), so a change is immediate where it was made.
Re-reading one row per model name every few seconds costs nothing next to a completion.
"""

import time

from llm_models.models import LLMModel

LOCAL_TTL_SECONDS = 5.0
# Unknown names are remembered too (a client retrying a typo); bounded, so a flood of invented
# names cannot grow a worker without end.
MAX_ENTRIES = 1_000

_cache: dict[str, tuple[float, LLMModel | None]] = {}
_NAME_LENGTH = LLMModel._meta.get_field("name").max_length or 100


def model_get(name: str) -> LLMModel | None:
    """The model named `name`, enabled or not, or None. Sync: may touch the DB."""
    if len(name) > _NAME_LENGTH or "\x00" in name:
        # No model has such a name: not worth a query or a cache entry (and PostgreSQL refuses
        # NUL in text outright).
        return None
    now = time.monotonic()
    entry = _cache.get(name)
    if entry is not None and entry[0] > now:
        return entry[1]
    model = LLMModel.objects.filter(name=name).first()
    if len(_cache) >= MAX_ENTRIES:
        _cache.clear()
    _cache[name] = (now + LOCAL_TTL_SECONDS, model)
    return model


def forget() -> None:
    """Drop this process's copies (after a change, or between tests)."""
    _cache.clear()
