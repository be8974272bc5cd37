from django.urls import include, path
from rest_framework.routers import SimpleRouter

from llm_models import views

router = SimpleRouter()
router.register("models", views.LLMModelViewSet, basename="model")
router.register("admin/models", views.LLMModelAdminViewSet, basename="admin-model")

urlpatterns = [path("", include(router.urls))]
