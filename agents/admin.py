from django.contrib import admin

from agents.models import Agent


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ["name", "model", "owner", "temperature", "max_tokens", "updated_at"]
    list_filter = ["model", ("owner", admin.EmptyFieldListFilter)]
    search_fields = ["name", "description", "owner__username"]
    autocomplete_fields = ["owner"]
    list_select_related = ["model", "owner"]
