from django.apps import AppConfig


class LLMModelsConfig(AppConfig):
    name = "llm_models"
    verbose_name = "LLM models"
