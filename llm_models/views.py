from rest_framework import mixins, viewsets
from rest_framework.permissions import IsAdminUser

from llm_models import catalog
from llm_models.models import LLMModel
from llm_models.serializers import LLMModelAdminSerializer, LLMModelSerializer


class LLMModelViewSet(viewsets.ReadOnlyModelViewSet):
    """The enabled models, for every signed-in user."""

    serializer_class = LLMModelSerializer
    queryset = LLMModel.objects.enabled()
    lookup_field = "name"
    lookup_value_regex = "[^/]+"


class LLMModelAdminViewSet(
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet,
):
    """Staff manage the catalog; a model is disabled (PATCH enabled=false), never deleted,
    because usage records and dialogs refer to it."""

    serializer_class = LLMModelAdminSerializer
    queryset = LLMModel.objects.all()
    permission_classes = [IsAdminUser]
    lookup_field = "name"
    lookup_value_regex = "[^/]+"

    def perform_create(self, serializer):
        serializer.save()
        catalog.invalidate()

    def perform_update(self, serializer):
        serializer.save()
        catalog.invalidate()
