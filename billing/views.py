from django.contrib.auth import get_user_model
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, mixins, status, viewsets
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.response import Response

from billing.keys import api_key_create, api_key_revoke, api_key_update
from billing.models import APIKey
from billing.permissions import SignedInUser
from billing.quotas import quota_get, quota_reset, quota_update
from billing.selectors import usage_summary
from billing.serializers import (
    AdminUsageSerializer,
    APIKeySerializer,
    DateRangeSerializer,
    MyUsageSerializer,
    QuotaSerializer,
)
from common.users import signed_in_user


@extend_schema(parameters=[DateRangeSerializer], responses=MyUsageSerializer)
@api_view(["GET"])
def my_usage(request):
    """The signed-in user's quota (`quota`: what the current period has used, from `period_start`
    to `resets_at`), and usage by model and by day over a date range (`date_range`: from `start`
    to `end`, by default the last 30 days)."""
    params = DateRangeSerializer(data=request.query_params)
    params.is_valid(raise_exception=True)
    data = params.validated_data
    return Response(
        {
            "quota": QuotaSerializer(quota_get(user=request.user)).data,
            "date_range": usage_summary(
                start=data.get("start"), end=data.get("end"), user_id=request.user.pk, model=data.get("model")
            ),
        }
    )


@extend_schema(parameters=[DateRangeSerializer], responses=AdminUsageSerializer)
@api_view(["GET"])
@permission_classes([IsAdminUser])
def admin_usage(request):
    """Staff: usage by user, model and day over a date range."""
    params = DateRangeSerializer(data=request.query_params)
    params.is_valid(raise_exception=True)
    data = params.validated_data
    return Response(
        usage_summary(
            start=data.get("start"),
            end=data.get("end"),
            user_id=data.get("user"),
            model=data.get("model"),
            by_user=True,
        )
    )


class AdminQuotaView(generics.RetrieveUpdateAPIView):
    """Staff: a user's quota. PATCH any limit, the period, or `unlimited`."""

    serializer_class = QuotaSerializer
    permission_classes = [IsAdminUser, SignedInUser]
    http_method_names = ["get", "patch", "options"]

    def get_object(self):
        user = get_object_or_404(get_user_model(), pk=self.kwargs["user_id"])
        return quota_get(user=user)

    def perform_update(self, serializer):
        quota_update(quota=serializer.instance, **serializer.validated_data)


@extend_schema(request=None, responses=QuotaSerializer)
@api_view(["POST"])
@permission_classes([IsAdminUser, SignedInUser])
def admin_quota_reset(request, user_id: int):
    """Staff: reset a user's used tokens and spend now (usage records are kept)."""
    user = get_object_or_404(get_user_model(), pk=user_id)
    quota = quota_get(user=user)
    quota_reset(quota=quota)
    quota.refresh_from_db()
    return Response(QuotaSerializer(quota).data)


class APIKeyViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """The signed-in user's API keys. POST returns the secret once (`key`); DELETE revokes. Not
    with an API key (billing.permissions)."""

    serializer_class = APIKeySerializer
    permission_classes = [IsAuthenticated, SignedInUser]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the OpenAPI generator: no user
            return APIKey.objects.none()
        return APIKey.objects.filter(user=signed_in_user(self.request)).prefetch_related("allowed_models")

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fields = dict(serializer.validated_data)
        key, secret = api_key_create(user=request.user, allowed_models=fields.pop("allowed_models", ()), **fields)
        data = {**self.get_serializer(key).data, "key": secret}
        return Response(data, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer):
        serializer.instance = api_key_update(key=serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance):
        api_key_revoke(key=instance)
