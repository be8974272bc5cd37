from django.conf import settings
from django.db import models

# Outside subjects are opaque strings of the identity provider's; longer ones are refused.
SUBJECT_MAX_LENGTH = 255


class OutsideIdentity(models.Model):
    """A person of an outside identity provider, linked to the gateway account they sign in as.

    An identity is its issuer and subject together, never a name: a new one gets an account of
    its own (accounts.services.outside_user), and staff may link it to another here."""

    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=SUBJECT_MAX_LENGTH)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="outside_identities")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="outside_identity_unique")]
        verbose_name_plural = "outside identities"

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"


class TokenGeneration(models.Model):
    """How many times the user signed out everywhere: a token signed before the last time is
    refused (accounts.tokens). No row is generation 0."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="token_generation"
    )
    value = models.PositiveIntegerField(default=0)
