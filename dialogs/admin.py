from django.contrib import admin

from dialogs.models import Dialog, Message


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    can_delete = False
    fields = readonly_fields = ("role", "content", "status", "prompt_tokens", "completion_tokens", "cost", "created_at")
    ordering = ["created_at", "id"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Dialog)
class DialogAdmin(admin.ModelAdmin):
    list_display = ["__str__", "owner", "model", "agent", "created_at", "updated_at"]
    list_filter = ["model"]
    search_fields = ["title", "owner__username"]
    date_hierarchy = "updated_at"
    list_select_related = ["owner", "model", "agent"]
    raw_id_fields = ["owner", "agent"]
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "dialog",
        "role",
        "status",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "cost",
        "created_at",
    ]
    list_filter = ["role", "status", "model"]
    search_fields = ["content", "request_id"]
    date_hierarchy = "created_at"
    list_select_related = ["dialog", "model"]
    raw_id_fields = ["dialog"]

    def has_change_permission(self, request, obj=None):
        return False
