from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from llm_models.models import LLMModel, could_be_model_name
from llm_models.vendor_keys import key_destination_problem

PUBLIC_FIELDS = [
    "name",
    "kind",
    "provider",
    "provider_model",
    "context_window",
    "max_output_tokens",
    "input_price_per_1k",
    "output_price_per_1k",
    "cached_input_price_per_1k",
    "cache_write_price_per_1k",
    "supports_tools",
    "supports_vision",
    "supports_json_schema",
    "supports_reasoning",
    "enabled",
    "created_at",
    "updated_at",
]


# What decides where a model's requests, and which key, go (llm_models.vendor_keys).
ROUTING_FIELDS = ("provider", "base_url", "api_key_env")


@extend_schema_field({"type": "string", "description": "A URL, or empty for the vendor's default."})
class BaseURLField(serializers.CharField):
    """A model's base_url: a URL or "". Not a URLField, nor a URLValidator on it: the schema
    would give it the `uri` format, which refuses the ""."""

    def to_internal_value(self, data):
        return serializers.URLField().run_validation(super().to_internal_value(data))


class LLMModelSerializer(serializers.ModelSerializer):
    class Meta:
        model = LLMModel
        fields = PUBLIC_FIELDS
        read_only_fields = fields


class LLMModelAdminSerializer(serializers.ModelSerializer):
    """Staff edit every field; api_key_env names a variable, it never holds a key. Only staff see
    where a model is served from (base_url) and the variable of its key."""

    base_url = BaseURLField(required=False, allow_blank=True, max_length=200)

    class Meta:
        model = LLMModel
        fields = [*PUBLIC_FIELDS, "base_url", "api_key_env"]
        read_only_fields = ["created_at", "updated_at"]

    def validate(self, attrs):
        context = attrs.get("context_window", getattr(self.instance, "context_window", None))
        output = attrs.get("max_output_tokens", getattr(self.instance, "max_output_tokens", None))
        if context and output and output > context:
            raise serializers.ValidationError({"max_output_tokens": f"Must not exceed context_window ({context})."})
        for field in (
            "input_price_per_1k",
            "output_price_per_1k",
            "cached_input_price_per_1k",
            "cache_write_price_per_1k",
        ):
            if attrs.get(field) is not None and attrs[field] < 0:
                raise serializers.ValidationError({field: "Must not be negative."})
        for field in ("context_window", "max_output_tokens"):
            if field in attrs and attrs[field] <= 0:
                raise serializers.ValidationError({field: "Must be positive."})
        row = {
            name: attrs.get(name, getattr(self.instance, name, "")) for name in ("provider", "base_url", "api_key_env")
        }
        if problem := key_destination_problem(**row):
            field, message = problem
            raise serializers.ValidationError({field: message})
        return attrs


class ModelField(serializers.SlugRelatedField):
    """A catalog model named by the client. A name no model could have is refused before any
    query, and the error echoes no more of it than a name's length."""

    def __init__(self, **kwargs):
        super().__init__(slug_field="name", **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str) or not could_be_model_name(data):
            self.fail("does_not_exist", slug_name=self.slug_field, value=str(data)[:100])
        return super().to_internal_value(data)
