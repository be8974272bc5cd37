"""The only writes of the catalog: the admin, the staff API and the seed command all come here,
and each drops this process's cached copies (other processes re-read within seconds)."""

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.models import QuerySet

from llm_models import catalog
from llm_models.models import LLMModel

SEED_FILE = Path(__file__).with_name("seed_models.json")


def _forget_cached() -> None:
    # Now, and again once the change is committed: a request of this process that read the old
    # row in between would otherwise keep it for the cache's few seconds.
    catalog.forget()
    transaction.on_commit(catalog.forget)


def model_save(*, model: LLMModel) -> LLMModel:
    """Create or update `model` (already validated) in the catalog."""
    model.save()
    _forget_cached()
    return model


def models_set_enabled(*, models: QuerySet[LLMModel], enabled: bool) -> int:
    """Enable or disable `models` (a model is never deleted: usage and dialogs refer to it)."""
    count = models.update(enabled=enabled)
    _forget_cached()
    return count


@dataclass
class SeedResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def _normalise(row: dict[str, Any]) -> dict[str, Any]:
    return {key: Decimal(value) if key.endswith("_per_1k") else value for key, value in row.items()}


@transaction.atomic
def models_seed(*, update: bool = False, path: Path = SEED_FILE) -> SeedResult:
    """Create the file's models that are missing; with `update`, overwrite the others' metadata."""
    result = SeedResult()
    rows: Iterable[dict[str, Any]] = json.loads(path.read_text())
    for row in rows:
        data = _normalise(row)
        name = data.pop("name")
        existing = LLMModel.objects.filter(name=name).first()
        if existing is None:
            model_save(model=LLMModel(name=name, **data))
            result.created.append(name)
        elif update and any(getattr(existing, key) != value for key, value in data.items()):
            for key, value in data.items():
                setattr(existing, key, value)
            model_save(model=existing)
            result.updated.append(name)
        else:
            result.unchanged.append(name)
    return result
