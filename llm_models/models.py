from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from llm_models.vendor_keys import key_destination_problem

# Vendors' names have dots (gpt-3.5-turbo), so not a slug; no slash, since URLs carry it.
validate_model_name = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._:-]*\Z",
    "Letters, digits, and . _ : - only, starting with a letter or digit.",
)


MODEL_NAME_LENGTH = 100


def could_be_model_name(name: str) -> bool:
    """Whether some model could have this name: it fits the column and has no control
    characters. Asked before any lookup, so an absurd name (a megabyte, a NUL, which PostgreSQL
    cannot even compare) costs no query and no cache entry."""
    return 0 < len(name) <= MODEL_NAME_LENGTH and name.isprintable()


class ProviderKind(models.TextChoices):
    OPENAI = "openai", "OpenAI"
    ANTHROPIC = "anthropic", "Anthropic"
    OPENAI_COMPATIBLE = "openai_compatible", "OpenAI-compatible server"


class ModelKind(models.TextChoices):
    CHAT = "chat"
    EMBEDDING = "embedding"


class LLMModelQuerySet(models.QuerySet):
    def enabled(self):
        return self.filter(enabled=True)

    def chat(self):
        """The enabled models that answer messages (dialogs, agents)."""
        return self.filter(enabled=True, kind=ModelKind.CHAT)


class LLMModel(models.Model):
    """A model the gateway offers, under its public `name`, with its vendor id and prices."""

    name = models.CharField(
        max_length=MODEL_NAME_LENGTH,
        unique=True,
        validators=[validate_model_name],
        help_text="The gateway's public name.",
    )
    provider = models.CharField(max_length=32, choices=ProviderKind.choices)
    provider_model = models.CharField(max_length=200, help_text="The vendor's model id.")
    context_window = models.PositiveIntegerField()
    max_output_tokens = models.PositiveIntegerField()
    input_price_per_1k = models.DecimalField(max_digits=12, decimal_places=6)
    output_price_per_1k = models.DecimalField(max_digits=12, decimal_places=6)
    cached_input_price_per_1k = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="Prompt tokens read from the vendor's cache; empty = the input price.",
    )
    cache_write_price_per_1k = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="Prompt tokens written to the vendor's cache (Anthropic); empty = the input price.",
    )
    enabled = models.BooleanField(default=True)
    # What the model can take, as its vendor publishes it: a request that needs what the model
    # lacks is refused (400) before any vendor call. Unknown = assumed yes.
    supports_tools = models.BooleanField(default=True, help_text="Tool (function) calling.")
    supports_vision = models.BooleanField(default=True, help_text="Images in the prompt.")
    supports_json_schema = models.BooleanField(default=True, help_text="Structured output to a JSON schema.")
    supports_reasoning = models.BooleanField(default=True, help_text="Reasoning effort / extended thinking.")
    kind = models.CharField(
        max_length=16,
        choices=ModelKind.choices,
        default=ModelKind.CHAT,
        help_text="Chat models answer messages; embedding models turn text into vectors (/v1/embeddings).",
    )
    base_url = models.URLField(
        blank=True,
        help_text="For OpenAI-compatible servers (vLLM, Ollama, ...); empty = vendor default.",
    )
    api_key_env = models.CharField(
        max_length=100,
        blank=True,
        help_text="Name of the environment variable holding this server's API key (never the key).",
        # Only *_API_KEY names, so a row cannot send the gateway's own secrets to a server it names.
        validators=[
            RegexValidator(
                r"^[A-Z][A-Z0-9_]*_API_KEY$", "Name an environment variable ending in _API_KEY (e.g. VLLM_API_KEY)."
            )
        ],
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = LLMModelQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = "LLM model"
        constraints = [
            models.CheckConstraint(condition=Q(context_window__gt=0), name="llm_context_window_positive"),
            models.CheckConstraint(condition=Q(max_output_tokens__gt=0), name="llm_max_output_positive"),
            models.CheckConstraint(
                condition=Q(max_output_tokens__lte=models.F("context_window")),
                name="llm_output_within_context",
            ),
            models.CheckConstraint(condition=Q(input_price_per_1k__gte=0), name="llm_input_price_non_negative"),
            models.CheckConstraint(condition=Q(output_price_per_1k__gte=0), name="llm_output_price_non_negative"),
        ]

    def __str__(self):
        return self.name

    def clean(self):
        if problem := key_destination_problem(
            provider=self.provider, base_url=self.base_url, api_key_env=self.api_key_env
        ):
            field, message = problem
            raise ValidationError({field: message})

    def cost(self, prompt_tokens: int, completion_tokens: int, *, cached: int = 0, cache_written: int = 0) -> Decimal:
        """USD for this many tokens, exact to the cent's ten-thousandth and beyond. `cached` and
        `cache_written` are the parts of the prompt read from and written to the vendor's cache."""
        fresh = prompt_tokens - cached - cache_written
        read_price = (
            self.input_price_per_1k if self.cached_input_price_per_1k is None else self.cached_input_price_per_1k
        )
        write_price = (
            self.input_price_per_1k if self.cache_write_price_per_1k is None else self.cache_write_price_per_1k
        )
        return (
            Decimal(fresh) * self.input_price_per_1k
            + Decimal(cached) * read_price
            + Decimal(cache_written) * write_price
            + Decimal(completion_tokens) * self.output_price_per_1k
        ) / 1000

    def worst_cost(self, prompt_tokens: int, completion_tokens: int) -> Decimal:
        """The most this many tokens can cost: the whole prompt at its dearest price (a cache write
        costs more than plain input)."""
        prices = (self.input_price_per_1k, self.cached_input_price_per_1k, self.cache_write_price_per_1k)
        dearest = max(price for price in prices if price is not None)
        return (Decimal(prompt_tokens) * dearest + Decimal(completion_tokens) * self.output_price_per_1k) / 1000
