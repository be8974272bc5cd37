from django.urls import include, path
from rest_framework.routers import SimpleRouter

from dialogs import views

router = SimpleRouter()
router.register("dialogs", views.DialogViewSet, basename="dialog")

urlpatterns = [
    path("dialogs/<int:pk>/messages/", views.dialog_messages, name="dialog-messages"),
    path("", include(router.urls)),
]
