from django.conf import settings
from django.db import models


class DialogQuerySet(models.QuerySet):
    def owned_by(self, user):
        return self.filter(owner=user)


class Dialog(models.Model):
    """A conversation: its whole history goes to the model with every new message."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="dialogs")
    title = models.CharField(max_length=200, blank=True)
    agent = models.ForeignKey("agents.Agent", null=True, blank=True, on_delete=models.SET_NULL, related_name="dialogs")
    model = models.ForeignKey("llm_models.LLMModel", on_delete=models.PROTECT, related_name="dialogs")
    created_at = models.DateTimeField(auto_now_add=True)
    # Last activity: moved forward by every message, so lists sort by it.
    updated_at = models.DateTimeField(auto_now=True, db_index=False)

    objects = DialogQuerySet.as_manager()

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [models.Index(fields=["owner", "-updated_at"], name="dialog_owner_activity")]

    def __str__(self):
        return self.title or f"Dialog {self.pk}"


class Role(models.TextChoices):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


class MessageStatus(models.TextChoices):
    OK = "ok"
    ERROR = "error"
    INCOMPLETE = "incomplete"


class Message(models.Model):
    dialog = models.ForeignKey(Dialog, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    # A message with images: its text and image_url parts, as sent to the model (`content` keeps
    # the text alone, for lists and search). Empty for text-only messages.
    parts = models.JSONField(null=True, blank=True)
    model = models.ForeignKey("llm_models.LLMModel", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    status = models.CharField(max_length=16, choices=MessageStatus.choices, default=MessageStatus.OK)
    error_type = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    request_id = models.CharField(max_length=200, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["dialog", "created_at", "id"], name="message_dialog_order")]

    def __str__(self):
        return f"{self.role}: {self.content[:40]}"
