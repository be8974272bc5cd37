from django.urls import include, path
from rest_framework.routers import SimpleRouter

from agents import views

router = SimpleRouter()
router.register("agents", views.AgentViewSet, basename="agent")

urlpatterns = [path("", include(router.urls))]
