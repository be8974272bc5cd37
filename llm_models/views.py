from rest_framework import mixins, viewsets
from rest_framework.permissions import IsAdminUser

from llm_models.models import LLMModel
from llm_models.serializers import LLMModelAdminSerializer, LLMModelSerializer
from llm_models.services import model_save


class LLMModelViewSet(viewsets.ReadOnlyModelViewSet):
    """The enabled models, for every signed-in user."""

    serializer_class = LLMModelSerializer
    queryset = LLMModel.objects.enabled()
    lookup_field = "name"
    # NUL never reaches the database (PostgreSQL refuses it in text): such a path is a 404.
    lookup_value_regex = r"[^/\x00]+"


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
    # NUL never reaches the database (PostgreSQL refuses it in text): such a path is a 404.
    lookup_value_regex = r"[^/\x00]+"

    def perform_create(self, serializer):
        serializer.instance = model_save(model=LLMModel(**serializer.validated_data))

    def perform_update(self, serializer):
        for name, value in serializer.validated_data.items():
            setattr(serializer.instance, name, value)
        model_save(model=serializer.instance)
