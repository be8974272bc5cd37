from rest_framework import serializers

from billing.models import Quota
from billing.services import period_end, period_start


class QuotaSerializer(serializers.ModelSerializer):
    remaining_tokens = serializers.SerializerMethodField()
    remaining_usd = serializers.SerializerMethodField()
    resets_at = serializers.SerializerMethodField()
    used_usd = serializers.DecimalField(max_digits=18, decimal_places=8, read_only=True)
    reserved_usd = serializers.DecimalField(max_digits=18, decimal_places=8, read_only=True)
    token_limit = serializers.IntegerField(min_value=0, required=False, allow_null=True)
    usd_limit = serializers.DecimalField(max_digits=14, decimal_places=6, min_value=0, required=False, allow_null=True)
    user = serializers.SlugRelatedField(slug_field="username", read_only=True)

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

    def get_remaining_tokens(self, quota) -> int | None:
        if quota.unlimited or quota.token_limit is None:
            return None
        return max(quota.token_limit - quota.used_tokens - quota.reserved_tokens, 0)

    def get_remaining_usd(self, quota) -> str | None:
        if quota.unlimited or quota.usd_limit is None:
            return None
        return str(max(quota.usd_limit - quota.used_usd - quota.reserved_usd, 0))

    def get_resets_at(self, quota) -> str | None:
        end = period_end(quota.period, quota.period_start)
        return end.isoformat() if end else None

    def update(self, instance, validated_data):
        if "period" in validated_data and validated_data["period"] != instance.period:
            from django.utils import timezone

            instance.period_start = period_start(validated_data["period"], timezone.now())
        return super().update(instance, validated_data)


class DateRangeSerializer(serializers.Serializer):
    start = serializers.DateField(required=False, help_text="First day (YYYY-MM-DD); default 30 days ago.")
    end = serializers.DateField(required=False, help_text="Last day (YYYY-MM-DD); default today.")
    user = serializers.IntegerField(required=False, help_text="Staff: only this user id.")
    model = serializers.CharField(required=False, help_text="Only this model name.")

    def validate(self, attrs):
        if attrs.get("start") and attrs.get("end") and attrs["start"] > attrs["end"]:
            raise serializers.ValidationError({"start": "Must not be after end."})
        return attrs
