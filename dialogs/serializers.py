import functools

from django.db.models import QuerySet
from rest_framework import serializers

from agents.models import Agent
from common.money import UsdField
from dialogs.models import Dialog, Message
from llm_models.models import LLMModel
from llm_models.serializers import ModelField


class MessageSerializer(serializers.ModelSerializer):
    model: "serializers.SlugRelatedField[LLMModel]" = serializers.SlugRelatedField(slug_field="name", read_only=True)
    cost = UsdField()

    class Meta:
        model = Message
        fields = [
            "id",
            "dialog",
            "role",
            "content",
            "parts",
            "model",
            "prompt_tokens",
            "completion_tokens",
            "cost",
            "status",
            "error_type",
            "error_message",
            "request_id",
            "latency_ms",
            "created_at",
        ]
        read_only_fields = fields


def _has_nul(value: object) -> bool:
    """Whether any string in a JSON value (keys too) holds NUL. A loop, not recursion: the value
    may be nested as deep as the JSON parser allows."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str) and "\x00" in item:
            return True
        if isinstance(item, dict):
            pending += [*item.keys(), *item.values()]
        elif isinstance(item, list):
            pending += item
    return False


class MessageContentField(serializers.Field):
    """Text, or a list of parts as OpenAI's API takes them: {"type": "text", "text": ...} and
    {"type": "image_url", "image_url": {"url": "https://..." or "data:image/png;base64,..."}}."""

    def to_internal_value(self, data):
        if isinstance(data, str):
            if len(data) > 1_000_000:
                raise serializers.ValidationError("At most 1,000,000 characters.")
            return data
        if not isinstance(data, list) or not data:
            raise serializers.ValidationError("Text, or a non-empty list of text and image_url parts.")
        for part in data:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                continue
            url = (part.get("image_url") or {}).get("url") if kind == "image_url" else None
            if not (isinstance(url, str) and url.startswith(("https://", "http://", "data:image/"))):
                raise serializers.ValidationError("Each part is text or an image_url with an http(s) or data: URL.")
        return data

    def run_validators(self, value):
        if _has_nul(value):  # PostgreSQL stores no NUL, in text or in JSON
            raise serializers.ValidationError("Null characters are not allowed.")
        super().run_validators(value)

    def to_representation(self, value):
        return value


class MessageCreateSerializer(serializers.Serializer):
    content = MessageContentField()
    stream = serializers.BooleanField(default=False)
    max_tokens = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    temperature = serializers.FloatField(min_value=0, max_value=2, required=False, allow_null=True)

    def validate_content(self, value):
        text = value if isinstance(value, str) else "".join(p.get("text", "") for p in value if p["type"] == "text")
        if isinstance(value, str) and not text.strip():
            raise serializers.ValidationError("Must not be blank.")
        return value


# The message endpoint serializes two messages and validates one body per request. DRF builds a
# serializer's fields for each new instance (deep copies, model introspection), which costs more
# than the work itself; one instance per process does the same work: representation and
# validation keep no state on the instance (DRF's ListSerializer reuses its child the same way).
@functools.cache
def _message_serializer() -> MessageSerializer:
    return MessageSerializer()


@functools.cache
def _message_create_serializer() -> MessageCreateSerializer:
    return MessageCreateSerializer()


def message_data(message: Message) -> dict:
    """What the API shows of a message (MessageSerializer's representation)."""
    return _message_serializer().to_representation(message)


def message_create_validated(data) -> dict:
    """The validated body of a new message; raises serializers.ValidationError."""
    return _message_create_serializer().run_validation(data)


class VisibleAgentField(serializers.PrimaryKeyRelatedField):
    """An agent the signed-in user may use: their own or a shared one (another user's is "not found")."""

    def get_queryset(self) -> QuerySet[Agent]:
        request = self.context.get("request")
        if request is None or not request.user:
            return Agent.objects.none()
        return Agent.objects.visible_to(request.user)


class DialogSerializer(serializers.ModelSerializer):
    model = ModelField(queryset=LLMModel.objects.chat(), required=False)
    agent = VisibleAgentField(required=False, allow_null=True)

    class Meta:
        model = Dialog
        fields = ["id", "title", "agent", "model", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate(self, attrs):
        agent = attrs.get("agent", getattr(self.instance, "agent", None))
        if "model" not in attrs and self.instance is None:
            if agent is None:
                raise serializers.ValidationError({"model": "Give a model, or an agent whose model to use."})
            if not agent.model.enabled:
                raise serializers.ValidationError({"agent": f"The agent's model {agent.model.name} is disabled."})
            attrs["model"] = agent.model
        return attrs
