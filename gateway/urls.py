"""The root URLconf: each app's own urls.py under its prefix."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import TemplateView
from django.views.static import serve
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from common import errors
from common.health import healthz
from common.metrics import metrics_view

urlpatterns = [
    path("", TemplateView.as_view(template_name="home.html"), name="home"),
    path("admin/", admin.site.urls),
    # The admin console's assets (collected by `make run` / `make serve`). Served by a plain view:
    # a WSGI-only static middleware would push every request, /v1/ included, through a thread.
    re_path(r"^static/(?P<path>.*)$", serve, {"document_root": settings.STATIC_ROOT}),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema", template_name="redoc.html"), name="redoc"),
    path("api/", include("accounts.urls")),
    path("api/", include("billing.urls")),
    path("api/", include("llm_models.urls")),
    path("api/", include("agents.urls")),
    path("api/", include("dialogs.urls")),
    path("v1/", include("completions.urls")),
    # Unknown API paths answer JSON even with DEBUG on (Django would show its HTML page).
    re_path(r"^(api|v1)/", errors.not_found),
]

handler400 = "common.errors.bad_request"
handler403 = "common.errors.permission_denied"
handler404 = "common.errors.not_found"
handler500 = "common.errors.server_error"
