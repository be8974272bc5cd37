from django.contrib.auth.models import User
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.models import APIKey, Quota
from common.money import USD_PLACES, UsdField, usd
from llm_models.models import MODEL_NAME_LENGTH, LLMModel, could_be_model_name
from llm_models.serializers import ModelField

# The largest value of a BigIntegerField (PostgreSQL's bigint): a larger one would fail in the
# database instead of answering 400.
BIGINT_MAX = 2**63 - 1


@extend_schema_field(
    {
        "type": "string",
        "format": "decimal",
        "pattern": rf"^\d{{0,8}}(?:\.\d{{0,{USD_PLACES}}})?$",
        "nullable": True,
    }
)
class UsdLimitField(serializers.DecimalField):
    """A budget in USD: never negative (the schema says so too; drf-spectacular's pattern for a
    decimal would allow a sign), shown in the API's one format (common.money)."""

    def __init__(self, **kwargs):
        super().__init__(
            max_digits=8 + USD_PLACES, decimal_places=USD_PLACES, min_value=0, required=False, allow_null=True, **kwargs
        )


class QuotaSerializer(serializers.ModelSerializer):
    remaining_tokens = serializers.SerializerMethodField()
    remaining_usd = serializers.SerializerMethodField()
    resets_at = serializers.SerializerMethodField()
    used_usd = UsdField()
    reserved_usd = UsdField()
    token_limit = serializers.IntegerField(min_value=0, max_value=BIGINT_MAX, required=False, allow_null=True)
    usd_limit = UsdLimitField()
    user: "serializers.SlugRelatedField[User]" = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Quota
        fields = [
            "user",
            "unlimited",
            "token_limit",
            "used_tokens",
            "reserved_tokens",
            "remaining_tokens",
            "usd_limit",
            "used_usd",
            "reserved_usd",
            "remaining_usd",
            "period",
            "resets_at",
            "period_start",
            "last_reset_at",
            "requests_per_minute",
            "tokens_per_minute",
        ]
        read_only_fields = ["used_tokens", "reserved_tokens", "period_start", "last_reset_at"]

    def to_representation(self, quota: Quota) -> dict:
        data = super().to_representation(quota)
        if quota.unlimited:
            # The stored limits are kept for when `unlimited` is turned off, but none applies now.
            data["token_limit"] = data["usd_limit"] = None
        return data

    def get_remaining_tokens(self, quota: Quota) -> int | None:
        return quota.remaining_tokens

    @extend_schema_field(UsdField(allow_null=True))
    def get_remaining_usd(self, quota: Quota) -> str | None:
        remaining = quota.remaining_usd
        return None if remaining is None else usd(remaining)

    def get_resets_at(self, quota: Quota) -> str | None:
        return quota.resets_at.isoformat() if quota.resets_at else None


class DateRangeSerializer(serializers.Serializer):
    start = serializers.DateField(required=False, help_text="First day (YYYY-MM-DD); default 30 days ago.")
    end = serializers.DateField(required=False, help_text="Last day (YYYY-MM-DD); default today.")
    user = serializers.IntegerField(required=False, help_text="Staff: only this user id.")
    model = serializers.CharField(required=False, help_text="Only this model name.")

    def validate_model(self, value: str) -> str:
        if not could_be_model_name(value):
            raise serializers.ValidationError(f"No model has such a name (at most {MODEL_NAME_LENGTH} characters).")
        return value

    def validate(self, attrs):
        if attrs.get("start") and attrs.get("end") and attrs["start"] > attrs["end"]:
            raise serializers.ValidationError({"start": "Must not be after end."})
        return attrs


class UsageRowSerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    cost = UsdField()


class UsageByModelSerializer(UsageRowSerializer):
    model_name = serializers.CharField()


class UsageByDaySerializer(UsageRowSerializer):
    day = serializers.DateField()


class UsageByUserSerializer(UsageRowSerializer):
    user_id = serializers.IntegerField()
    username = serializers.CharField()


class UsageSummarySerializer(serializers.Serializer):
    """Usage over the days from `start` to `end`, both included (default: the last 30 days)."""

    start = serializers.DateField()
    end = serializers.DateField()
    total = UsageRowSerializer()
    by_model = UsageByModelSerializer(many=True)
    by_day = UsageByDaySerializer(many=True)


class AdminUsageSerializer(UsageSummarySerializer):
    by_user = UsageByUserSerializer(many=True)


class MyUsageSerializer(serializers.Serializer):
    quota = QuotaSerializer(help_text="The quota; its used and reserved amounts count the current period only.")
    date_range = UsageSummarySerializer(help_text="Usage from `start` to `end` (default: the last 30 days).")


class APIKeySerializer(serializers.ModelSerializer):
    allowed_models = ModelField(many=True, required=False, queryset=LLMModel.objects.all())
    token_limit = serializers.IntegerField(min_value=0, max_value=BIGINT_MAX, required=False, allow_null=True)
    usd_limit = UsdLimitField()
    used_usd = UsdField()
    active = serializers.BooleanField(source="is_active", read_only=True)

    class Meta:
        model = APIKey
        fields = [
            "id",
            "name",
            "prefix",
            "allowed_models",
            "token_limit",
            "usd_limit",
            "requests_per_minute",
            "tokens_per_minute",
            "used_tokens",
            "used_usd",
            "created_at",
            "last_used_at",
            "expires_at",
            "revoked_at",
            "active",
        ]
        read_only_fields = ["id", "prefix", "used_tokens", "used_usd", "created_at", "last_used_at", "revoked_at"]

    def validate_expires_at(self, value):
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("Must be in the future.")
        return value
