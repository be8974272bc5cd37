from django.conf import settings
from django.db import models
from django.db.models import Q


class AgentQuerySet(models.QuerySet):
    def visible_to(self, user):
        """The user's own agents and the shared ones (made by staff, no owner)."""
        return self.filter(Q(owner=user) | Q(owner__isnull=True))


class Agent(models.Model):
    """A saved system prompt with the model and parameters to use it with."""

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    system_prompt = models.TextField(blank=True)
    model = models.ForeignKey("llm_models.LLMModel", on_delete=models.PROTECT, related_name="agents")
    temperature = models.FloatField(null=True, blank=True)
    max_tokens = models.PositiveIntegerField(null=True, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="agents",
        help_text="Empty = shared with everyone (staff only).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AgentQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(temperature__isnull=True) | Q(temperature__gte=0, temperature__lte=2),
                name="agent_temperature_range",
            ),
            models.CheckConstraint(
                condition=Q(max_tokens__isnull=True) | Q(max_tokens__gt=0),
                name="agent_max_tokens_positive",
            ),
        ]
        indexes = [models.Index(fields=["owner", "name"])]

    def __str__(self):
        return self.name

    @property
    def shared(self) -> bool:
        return self.owner_id is None
