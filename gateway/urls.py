from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView, TokenVerifyView

from agents.views import AgentViewSet
from billing import views as billing_views
from dialogs.views import DialogViewSet, dialog_messages
from gateway import errors, views
from gateway.compat import anthropic_api, openai_api
from gateway.keys import APIKeyViewSet
from llm_models.views import LLMModelAdminViewSet, LLMModelViewSet

router = SimpleRouter()
router.register("models", LLMModelViewSet, basename="model")
router.register("admin/models", LLMModelAdminViewSet, basename="admin-model")
router.register("agents", AgentViewSet, basename="agent")
router.register("dialogs", DialogViewSet, basename="dialog")
router.register("keys", APIKeyViewSet, basename="key")

urlpatterns = [
    path("admin/", admin.site.urls),
    # The admin console's assets (collected by `make run` / `make serve`). Served by a plain view:
    # a WSGI-only static middleware would push every request, /v1/ included, through a thread.
    re_path(r"^static/(?P<path>.*)$", serve, {"document_root": settings.STATIC_ROOT}),
    path("healthz", views.healthz, name="healthz"),
    path("api/auth/token/", TokenObtainPairView.as_view(), name="token"),
    path("api/auth/token/refresh/", TokenRefreshView.as_view(), name="token-refresh"),
    path("api/auth/token/verify/", TokenVerifyView.as_view(), name="token-verify"),
    path("api/me/", views.me, name="me"),
    path("api/me/usage/", billing_views.my_usage, name="my-usage"),
    path("api/admin/usage/", billing_views.admin_usage, name="admin-usage"),
    path("api/admin/users/<int:user_id>/quota/", billing_views.AdminQuotaView.as_view(), name="admin-quota"),
    path("api/admin/users/<int:user_id>/quota/reset/", billing_views.admin_quota_reset, name="admin-quota-reset"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/dialogs/<int:pk>/messages/", dialog_messages, name="dialog-messages"),
    path("api/", include(router.urls)),
    path("v1/chat/completions", openai_api.chat_completions, name="openai-chat-completions"),
    path("v1/models", openai_api.models, name="openai-models"),
    path("v1/messages", anthropic_api.messages, name="anthropic-messages"),
    # Unknown API paths answer JSON even with DEBUG on (Django would show its HTML page).
    re_path(r"^(api|v1)/", errors.not_found),
]

handler400 = "gateway.errors.bad_request"
handler403 = "gateway.errors.permission_denied"
handler404 = "gateway.errors.not_found"
handler500 = "gateway.errors.server_error"
