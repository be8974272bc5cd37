from django.contrib import admin, messages
from django.db import models

from llm_models.models import LLMModel
from llm_models.services import model_save, models_set_enabled


@admin.register(LLMModel)
class LLMModelAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "provider",
        "provider_model",
        "context_window",
        "max_output_tokens",
        "input_price_per_1k",
        "output_price_per_1k",
        "enabled",
    ]
    list_filter = ["provider", "enabled"]
    search_fields = ["name", "provider_model"]
    list_editable = ["enabled"]
    actions = ["enable", "disable"]
    readonly_fields = ["created_at", "updated_at"]
    # A base URL typed without a scheme is https (Django 6's default; 5.2 warns without it).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def save_model(self, request, obj, form, change):
        model_save(model=obj)

    @admin.action(description="Enable selected models")
    def enable(self, request, queryset):
        count = models_set_enabled(models=queryset, enabled=True)
        self.message_user(request, f"{count} model(s) enabled.", messages.SUCCESS)

    @admin.action(description="Disable selected models")
    def disable(self, request, queryset):
        count = models_set_enabled(models=queryset, enabled=False)
        self.message_user(request, f"{count} model(s) disabled.", messages.SUCCESS)
