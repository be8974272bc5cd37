from django.urls import include, path
from rest_framework.routers import SimpleRouter

from billing import views

router = SimpleRouter()
router.register("keys", views.APIKeyViewSet, basename="key")

urlpatterns = [
    path("me/usage/", views.my_usage, name="my-usage"),
    path("admin/usage/", views.admin_usage, name="admin-usage"),
    path("admin/users/<int:user_id>/quota/", views.AdminQuotaView.as_view(), name="admin-quota"),
    path("admin/users/<int:user_id>/quota/reset/", views.admin_quota_reset, name="admin-quota-reset"),
    path("", include(router.urls)),
]
