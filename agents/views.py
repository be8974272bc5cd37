from rest_framework import viewsets
from rest_framework.exceptions import PermissionDenied

from agents.models import Agent
from agents.serializers import AgentSerializer


class AgentViewSet(viewsets.ModelViewSet):
    """A user's own agents and the shared ones. Shared agents are edited by staff only."""

    serializer_class = AgentSerializer

    def get_queryset(self):
        return Agent.objects.visible_to(self.request.user).select_related("model", "owner")

    def check_object_permissions(self, request, obj):
        super().check_object_permissions(request, obj)
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            if obj.shared and not request.user.is_staff:
                raise PermissionDenied("Shared agents are edited by staff only.")
