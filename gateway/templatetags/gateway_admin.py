"""Numbers for the admin dashboard. Each is best-effort: a missing table or app shows a dash
rather than breaking the admin's front page."""

from django import template
from django.apps import apps
from django.db import DatabaseError, transaction

register = template.Library()

# (label, app_label.ModelName, filter) — apps written later simply appear once they exist.
STATS = [
    ("Models enabled", "llm_models.LLMModel", {"enabled": True}),
    ("Models in the catalog", "llm_models.LLMModel", {}),
    ("Users", "auth.User", {"is_active": True}),
    ("Agents", "agents.Agent", {}),
    ("Dialogs", "dialogs.Dialog", {}),
]


def _count(model_path: str, filters: dict):
    try:
        model = apps.get_model(model_path)
        with transaction.atomic():  # a savepoint: a failed count must not spoil the request
            return model._default_manager.filter(**filters).count()
    except (LookupError, DatabaseError, ValueError, TypeError):
        return None


@register.simple_tag
def gateway_stats() -> list[tuple[str, int | None]]:
    stats = []
    for label, model_path, filters in STATS:
        value = _count(model_path, filters)
        if value is not None or not model_path.startswith("dialogs."):
            stats.append((label, value))
    return stats
