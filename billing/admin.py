from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils import timezone

from billing.keys import api_key_revoke
from billing.models import APIKey, DailyUsage, Quota, UsageRecord
from billing.quotas import QUOTA_EDITABLE, quota_reset, quota_save
from llm_models.models import LLMModel

User = get_user_model()

QUOTA_COUNTERS = ["used_tokens", "reserved_tokens", "used_usd", "reserved_usd", "period_start", "last_reset_at"]


class QuotaInline(admin.StackedInline):
    """A user's quota on the user's page (accounts.admin)."""

    model = Quota
    can_delete = False
    fields = (*QUOTA_EDITABLE, *QUOTA_COUNTERS)
    readonly_fields = QUOTA_COUNTERS


@admin.register(Quota)
class QuotaAdmin(admin.ModelAdmin):
    list_display = [
        "user",
        "period",
        "token_limit",
        "used_tokens",
        "reserved_tokens",
        "remaining_tokens",
        "usd_limit",
        "used_usd",
        "unlimited",
        "last_reset_at",
    ]
    list_filter = ["period", "unlimited"]
    search_fields = ["user__username", "user__email"]
    list_select_related = ["user"]
    fields = ["user", *QUOTA_EDITABLE, *QUOTA_COUNTERS]
    readonly_fields = QUOTA_COUNTERS
    raw_id_fields = ["user"]
    actions = ["reset_now"]

    @admin.display(description="remaining tokens")
    def remaining_tokens(self, quota):
        return "∞" if quota.remaining_tokens is None else quota.remaining_tokens

    def save_model(self, request, obj, form, change):
        quota_save(quota=obj, changed=form.changed_data)

    @admin.action(description="Reset now (usage records are kept)")
    def reset_now(self, request, queryset):
        now = timezone.now()
        for quota in queryset:
            quota_reset(quota=quota, now=now)
        self.message_user(request, f"{queryset.count()} quota(s) reset.", messages.SUCCESS)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ModelNameFilter(admin.SimpleListFilter):
    """Choices from the catalog: a DISTINCT over millions of usage records would be slow."""

    title = "model"
    parameter_name = "model_name"

    def lookups(self, request, model_admin):
        return [(name, name) for name in LLMModel.objects.values_list("name", flat=True)]

    def queryset(self, request, queryset):
        return queryset.filter(model_name=self.value()) if self.value() else queryset


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "user",
        "model_name",
        "endpoint",
        "status",
        "prompt_tokens",
        "completion_tokens",
        "cost",
        "api_key",
    ]
    list_filter = ["status", "endpoint", ModelNameFilter]
    search_fields = ["user__username", "request_id", "gateway_request_id"]  # exact matches; see get_search_results
    search_help_text = "An exact username, gateway request id (x-request-id) or vendor request id."
    date_hierarchy = "created_at"
    list_select_related = ["user", "api_key"]
    show_full_result_count = False  # counting millions of rows on every page is slow

    def get_search_results(self, request, queryset, search_term):
        # Exact matches on indexed columns: a substring search would scan every record.
        term = search_term.strip()
        if not term:
            return queryset, False
        user_ids = list(User.objects.filter(username=term).values_list("id", flat=True))
        matches = Q(user_id__in=user_ids) | Q(request_id=term) | Q(gateway_request_id=term)
        return queryset.filter(matches), False


@admin.register(DailyUsage)
class DailyUsageAdmin(ReadOnlyAdmin):
    list_display = ["day", "user", "model_name", "requests", "prompt_tokens", "completion_tokens", "cost"]
    list_filter = [ModelNameFilter]
    search_fields = ["=user__username"]
    date_hierarchy = "day"
    list_select_related = ["user"]


@admin.register(APIKey)
class APIKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "user", "created_at", "last_used_at", "expires_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["name", "prefix", "user__username"]
    readonly_fields = [
        "prefix",
        "key_hash",
        "created_at",
        "last_used_at",
        "used_tokens",
        "reserved_tokens",
        "used_usd",
        "reserved_usd",
    ]
    list_select_related = ["user"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # keys are made through the API, which shows the secret once

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke(self, request, queryset):
        count = sum(api_key_revoke(key=key) for key in queryset)
        self.message_user(request, f"{count} key(s) revoked.")
