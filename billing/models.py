import hashlib
import secrets
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from billing.periods import Period, period_end

KEY_PREFIX = "sk-gw-"


def hash_key(secret: str) -> str:
    # Keys are long random strings, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()


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
        max_digits=16, decimal_places=8, null=True, blank=True, help_text="Empty = no spending limit."
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

    @property
    def remaining_tokens(self) -> int | None:
        """Tokens left in this period, after what is used and held; None: no token limit."""
        if self.unlimited or self.token_limit is None:
            return None
        return max(self.token_limit - self.used_tokens - self.reserved_tokens, 0)

    @property
    def remaining_usd(self) -> Decimal | None:
        if self.unlimited or self.usd_limit is None:
            return None
        return max(self.usd_limit - self.used_usd - self.reserved_usd, Decimal(0))

    @property
    def resets_at(self) -> datetime | None:
        return period_end(self.period, self.period_start)


class APIKeyQuerySet(models.QuerySet):
    def active(self):
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))


class APIKey(models.Model):
    """A secret that authenticates as its user, with its own limits and spend inside the user's
    quota. Only its hash is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="The first characters, to recognise the key.")
    key_hash = models.CharField(max_length=64, unique=True)
    allowed_models = models.ManyToManyField(
        "llm_models.LLMModel", blank=True, related_name="+", help_text="Empty = every enabled model."
    )
    token_limit = models.BigIntegerField(
        null=True, blank=True, help_text="This key's own total, inside the user's quota."
    )
    usd_limit = models.DecimalField(max_digits=16, decimal_places=8, null=True, blank=True)
    requests_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="This key's own rate, inside the user's."
    )
    tokens_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="This key's own rate, inside the user's."
    )
    used_tokens = models.BigIntegerField(default=0)
    reserved_tokens = models.BigIntegerField(default=0)
    used_usd = models.DecimalField(max_digits=18, decimal_places=8, default=0)
    reserved_usd = models.DecimalField(max_digits=18, decimal_places=8, default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = APIKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API key"

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def new_secret() -> str:
        return KEY_PREFIX + secrets.token_urlsafe(32)

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > timezone.now())


class Reservation(models.Model):
    """The worst case of one request in flight, held on the quota until it settles."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    # A key deleted while its request is in flight leaves the reservation (and so the quota's
    # share of it) to be settled or released as usual.
    api_key = models.ForeignKey("billing.APIKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
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
        "billing.APIKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="usage_records"
    )
    dialog = models.ForeignKey("dialogs.Dialog", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    message = models.ForeignKey("dialogs.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    model = models.ForeignKey("llm_models.LLMModel", null=True, on_delete=models.SET_NULL, related_name="+")
    model_name = models.CharField(max_length=100)
    endpoint = models.CharField(max_length=32, choices=Endpoint.choices, default=Endpoint.DIALOGS)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    # Of prompt_tokens, those read from and written to the vendor's prompt cache (priced apart).
    cached_tokens = models.PositiveIntegerField(default=0)
    cache_write_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    status = models.CharField(max_length=16, choices=UsageStatus.choices)
    request_id = models.CharField(max_length=200, blank=True, db_index=True, help_text="The vendor's id of the call.")
    gateway_request_id = models.CharField(
        max_length=40, blank=True, db_index=True, help_text="The gateway's id, returned to the client in x-request-id."
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # The settlement's own id: a settlement applied twice (retried after a lost reply, replayed
    # from the spool after a crash) finds its record here and bills nothing more.
    settlement = models.UUIDField(null=True, blank=True, unique=True, editable=False)

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
