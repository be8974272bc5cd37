"""API keys: made and revoked by their users at /api/keys/. The secret is shown once."""

from django.db import transaction
from django.utils import timezone
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response

from gateway.models import APIKey, hash_key
from llm_models.models import LLMModel

# "sk-gw-" and six random characters: enough to tell a user's keys apart, useless to an attacker.
KEY_PREFIX_LENGTH = 12


def api_key_create(*, user, name: str, allowed_models=(), **limits) -> tuple[APIKey, str]:
    """A new key for `user` and its secret, which is not stored anywhere: only its hash is."""
    secret = APIKey.new_secret()
    with transaction.atomic():
        key = APIKey.objects.create(
            user=user, name=name, key_hash=hash_key(secret), prefix=secret[:KEY_PREFIX_LENGTH], **limits
        )
        if allowed_models:
            key.allowed_models.set(allowed_models)
    return key, secret


class APIKeySerializer(serializers.ModelSerializer):
    allowed_models = serializers.SlugRelatedField(
        slug_field="name", many=True, required=False, queryset=LLMModel.objects.all()
    )
    token_limit = serializers.IntegerField(min_value=0, required=False, allow_null=True)
    usd_limit = serializers.DecimalField(max_digits=14, decimal_places=6, min_value=0, required=False, allow_null=True)
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


class APIKeyViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """The signed-in user's API keys. POST returns the secret once (`key`); DELETE revokes."""

    serializer_class = APIKeySerializer

    def get_queryset(self):
        return APIKey.objects.filter(user=self.request.user).prefetch_related("allowed_models")

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fields = dict(serializer.validated_data)
        key, secret = api_key_create(user=request.user, allowed_models=fields.pop("allowed_models", ()), **fields)
        data = {**self.get_serializer(key).data, "key": secret}
        return Response(data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        if instance.revoked_at is None:
            instance.revoked_at = timezone.now()
            instance.save(update_fields=["revoked_at"])
