from django.contrib.auth.models import User
from rest_framework import serializers

from agents.models import Agent
from llm_models.models import LLMModel
from llm_models.serializers import ModelField


class AgentSerializer(serializers.ModelSerializer):
    model = ModelField(queryset=LLMModel.objects.chat())
    temperature = serializers.FloatField(min_value=0, max_value=2, required=False, allow_null=True)
    max_tokens = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    # No default: a PUT that leaves `shared` out keeps the agent as it is.
    shared = serializers.BooleanField(required=False, help_text="Visible to everyone; staff only. Set at creation.")
    owner: "serializers.SlugRelatedField[User]" = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True, help_text="Null for a shared agent."
    )

    class Meta:
        model = Agent
        fields = [
            "id",
            "name",
            "description",
            "system_prompt",
            "model",
            "temperature",
            "max_tokens",
            "shared",
            "owner",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "owner", "created_at", "updated_at"]

    def validate(self, attrs):
        model = attrs.get("model", getattr(self.instance, "model", None))
        max_tokens = attrs.get("max_tokens", getattr(self.instance, "max_tokens", None))
        if model and max_tokens and max_tokens > model.max_output_tokens:
            raise serializers.ValidationError({"max_tokens": f"At most {model.max_output_tokens} for {model.name}."})
        if "shared" in attrs:
            user = self.context["request"].user
            if attrs["shared"] and not user.is_staff:
                raise serializers.ValidationError({"shared": "Only staff make shared agents."})
            if self.instance is not None and attrs["shared"] != self.instance.shared:
                raise serializers.ValidationError({"shared": "An agent's sharing cannot change."})
        return attrs

    def create(self, validated_data):
        shared = validated_data.pop("shared", False)
        owner = None if shared else self.context["request"].user
        return Agent.objects.create(owner=owner, **validated_data)

    def update(self, instance, validated_data):
        validated_data.pop("shared", None)
        return super().update(instance, validated_data)
