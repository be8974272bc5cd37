import json
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from django.db import transaction

from llm_models import catalog
from llm_models.models import LLMModel

SEED_FILE = Path(__file__).with_name("seed_models.json")


@dataclass
class SeedResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def _normalise(row: dict) -> dict:
    return {key: Decimal(value) if key.endswith("_per_1k") else value for key, value in row.items()}


@transaction.atomic
def models_seed(*, update: bool = False, path: Path = SEED_FILE) -> SeedResult:
    result = SeedResult()
    for row in json.loads(path.read_text()):
        data = _normalise(row)
        name = data.pop("name")
        existing = LLMModel.objects.filter(name=name).first()
        if existing is None:
            LLMModel.objects.create(name=name, **data)
            result.created.append(name)
        elif update and any(getattr(existing, key) != value for key, value in data.items()):
            for key, value in data.items():
                setattr(existing, key, value)
            existing.save()
            result.updated.append(name)
        else:
            result.unchanged.append(name)
    if result.created or result.updated:
        transaction.on_commit(catalog.invalidate)
    return result
