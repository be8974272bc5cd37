"""Looking models up by name on the hot path.

Rows are cached per process for a few seconds, stamped by a version number kept in the
shared cache: when staff edit a model, the version moves and every process reloads.
"""

import secrets
import time

from django.core.cache import cache

from llm_models.models import LLMModel

VERSION_KEY = "llm_models:version"
LOCAL_TTL_SECONDS = 5.0

_local: dict = {"version": None, "checked": 0.0, "models": {}}


def _fresh_version() -> int:
    # Random, not 1: after the shared cache is flushed (a Redis restart), a process still
    # holding the old version must not mistake the new one for it.
    return secrets.randbelow(2**31) + 1


def invalidate() -> None:
    try:
        cache.incr(VERSION_KEY)
    except ValueError:
        cache.set(VERSION_KEY, _fresh_version(), None)
    _local["models"] = {}
    _local["version"] = None


def _refresh_if_stale() -> None:
    now = time.monotonic()
    if now - _local["checked"] < LOCAL_TTL_SECONDS and _local["version"] is not None:
        return
    version = cache.get(VERSION_KEY)
    if version is None:
        cache.add(VERSION_KEY, _fresh_version(), None)
        version = cache.get(VERSION_KEY, 1)
    if version != _local["version"]:
        _local["models"] = {}
        _local["version"] = version
    _local["checked"] = now


def model_get(name: str) -> LLMModel | None:
    """The model named `name`, enabled or not, or None. Sync: may touch the DB."""
    _refresh_if_stale()
    models = _local["models"]
    if name not in models:
        models[name] = LLMModel.objects.filter(name=name).first()
    return models[name]
