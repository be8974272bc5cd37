from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db.models import Sum
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response

from billing.models import DailyUsage
from billing.serializers import DateRangeSerializer, QuotaSerializer
from billing.services import quota_get, quota_reset


def usage_summary(*, start=None, end=None, user_id=None, model=None, by_user=False) -> dict:
    """Totals by model and by day (and by user for staff), read from the daily aggregates."""
    today = timezone.now().date()
    end = end or today
    start = start or end - timedelta(days=30)
    rows = DailyUsage.objects.filter(day__gte=start, day__lte=end)
    if user_id is not None:
        rows = rows.filter(user_id=user_id)
    if model:
        rows = rows.filter(model_name=model)
    sums = {
        "requests": Sum("requests"),
        "prompt_tokens": Sum("prompt_tokens"),
        "completion_tokens": Sum("completion_tokens"),
        "cost": Sum("cost"),
    }

    def shaped(queryset, *keys):
        out = []
        for row in queryset.values(*keys).annotate(**sums).order_by(*keys):
            row["cost"] = str(row["cost"] or 0)
            row["total_tokens"] = (row["prompt_tokens"] or 0) + (row["completion_tokens"] or 0)
            out.append(row)
        return out

    result = {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "total": _total(rows, sums),
        "by_model": shaped(rows, "model_name"),
        "by_day": shaped(rows, "day"),
    }
    if by_user:
        result["by_user"] = shaped(rows, "user_id", "user__username")
    return result


def _total(rows, sums) -> dict:
    total = rows.aggregate(**sums)
    total = {key: value or 0 for key, value in total.items()}
    total["cost"] = str(total["cost"])
    total["total_tokens"] = total["prompt_tokens"] + total["completion_tokens"]
    return total


@extend_schema(parameters=[DateRangeSerializer], responses=OpenApiTypes.OBJECT)
@api_view(["GET"])
def my_usage(request):
    """The signed-in user's quota, and usage by model and by day over a date range."""
    params = DateRangeSerializer(data=request.query_params)
    params.is_valid(raise_exception=True)
    data = params.validated_data
    return Response(
        {
            "quota": QuotaSerializer(quota_get(user=request.user)).data,
            **usage_summary(
                start=data.get("start"), end=data.get("end"), user_id=request.user.pk, model=data.get("model")
            ),
        }
    )


@extend_schema(parameters=[DateRangeSerializer], responses=OpenApiTypes.OBJECT)
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
    permission_classes = [IsAdminUser]
    http_method_names = ["get", "patch", "options"]

    def get_object(self):
        user = get_object_or_404(get_user_model(), pk=self.kwargs["user_id"])
        return quota_get(user=user)


@extend_schema(request=None, responses=QuotaSerializer)
@api_view(["POST"])
@permission_classes([IsAdminUser])
def admin_quota_reset(request, user_id: int):
    """Staff: reset a user's used tokens and spend now (usage records are kept)."""
    user = get_object_or_404(get_user_model(), pk=user_id)
    quota = quota_get(user=user)
    quota_reset(quota=quota)
    quota.refresh_from_db()
    return Response(QuotaSerializer(quota).data)
