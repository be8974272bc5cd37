from rest_framework import exceptions, mixins, viewsets
from rest_framework.permissions import IsAdminUser

from llm_models.models import LLMModel, could_be_model_name
from llm_models.serializers import LLMModelAdminSerializer, LLMModelSerializer
from llm_models.services import model_save


class ByName:
    """A model in the URL by its name; one no model could have is a 404 without a query."""

    lookup_field = "name"
    # NUL never reaches the database (PostgreSQL refuses it in text): such a path is a 404.
    lookup_value_regex = r"[^/\x00]+"

    def get_object(self):
        if not could_be_model_name(self.kwargs["name"]):  # type: ignore[attr-defined]
            raise exceptions.NotFound("No such model.")
        return super().get_object()  # type: ignore[misc]


class LLMModelViewSet(ByName, viewsets.ReadOnlyModelViewSet):
    """The enabled models, for every signed-in user."""

    serializer_class = LLMModelSerializer
    queryset = LLMModel.objects.enabled()


class LLMModelAdminViewSet(
    ByName,
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

    def perform_create(self, serializer):
        serializer.instance = model_save(model=LLMModel(**serializer.validated_data))

    def perform_update(self, serializer):
        for name, value in serializer.validated_data.items():
            setattr(serializer.instance, name, value)
        model_save(model=serializer.instance)
