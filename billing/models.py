from django.conf import settings
from django.db import models
from django.db.models import Q


class Period(models.TextChoices):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    NONE = "none", "none (a total)"


class Quota(models.Model):
    """What a user may spend per period, and what they have spent and have reserved.

    `reserved_*` holds the worst case of requests in flight. Admission is one conditional
    UPDATE (used + reserved + request <= limit), so the limit holds across processes
    without holding a lock while the vendor answers. See docs/quotas.md.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="quota")
    unlimited = models.BooleanField(default=False)
    token_limit = models.BigIntegerField(null=True, blank=True, help_text="Empty = no token limit.")
    usd_limit = models.DecimalField(
        max_digits=14, decimal_places=6, null=True, blank=True, help_text="Empty = no spending limit."
    )
    period = models.CharField(max_length=16, choices=Period.choices, default=Period.MONTHLY)
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_minute = models.PositiveIntegerField(null=True, blank=True)
    used_tokens = models.BigIntegerField(default=0)
    reserved_tokens = models.BigIntegerField(default=0)
    used_usd = models.DecimalField(max_digits=18, decimal_places=8, default=0)
    reserved_usd = models.DecimalField(max_digits=18, decimal_places=8, default=0)
    period_start = models.DateTimeField(help_text="Start of the current period.")
    last_reset_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(token_limit__isnull=True) | Q(token_limit__gte=0), name="quota_token_limit_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(usd_limit__isnull=True) | Q(usd_limit__gte=0), name="quota_usd_limit_non_negative"
            ),
            models.CheckConstraint(condition=Q(reserved_tokens__gte=0), name="quota_reserved_non_negative"),
        ]

    def __str__(self):
        return f"Quota of {self.user}"


class Reservation(models.Model):
    """The worst case of one request in flight, held on the quota until it settles."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    # A key deleted while its request is in flight leaves the reservation (and so the quota's
    # share of it) to be settled or released as usual.
    api_key = models.ForeignKey("gateway.APIKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    tokens = models.BigIntegerField()
    cost = models.DecimalField(max_digits=18, decimal_places=8)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["user", "expires_at"], name="reservation_user_expiry"),
            models.Index(fields=["expires_at"], name="reservation_expiry"),
        ]


class UsageStatus(models.TextChoices):
    OK = "ok"
    ERROR = "error"
    INCOMPLETE = "incomplete"


class Endpoint(models.TextChoices):
    DIALOGS = "dialogs"
    OPENAI = "openai", "OpenAI-compatible"
    ANTHROPIC = "anthropic", "Anthropic-compatible"


class UsageRecord(models.Model):
    """One vendor call, as billed. Never deleted by quota resets."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_records")
    api_key = models.ForeignKey(
        "gateway.APIKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="usage_records"
    )
    dialog = models.ForeignKey("dialogs.Dialog", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    message = models.ForeignKey("dialogs.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    model = models.ForeignKey("llm_models.LLMModel", null=True, on_delete=models.SET_NULL, related_name="+")
    model_name = models.CharField(max_length=100)
    endpoint = models.CharField(max_length=32, choices=Endpoint.choices, default=Endpoint.DIALOGS)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    status = models.CharField(max_length=16, choices=UsageStatus.choices)
    request_id = models.CharField(max_length=200, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "-created_at"], name="usage_user_recent")]

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class DailyUsage(models.Model):
    """Usage summed per user, model and day, kept up to date by settlement.

    The usage endpoints read these, so they stay fast at millions of usage records.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    model_name = models.CharField(max_length=100)
    day = models.DateField()
    requests = models.PositiveIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=18, decimal_places=8, default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "day", "model_name"], name="daily_usage_key")]
        indexes = [models.Index(fields=["day"], name="daily_usage_day")]
