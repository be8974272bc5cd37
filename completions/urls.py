from django.urls import path

from completions import anthropic_api, embeddings_api, models_api, openai_api

urlpatterns = [
    path("chat/completions", openai_api.chat_completions, name="openai-chat-completions"),
    path("embeddings", embeddings_api.embeddings, name="embeddings"),
    path("models", models_api.models, name="models"),
    path("models/<str:name>", models_api.model, name="model"),
    path("messages", anthropic_api.messages, name="anthropic-messages"),
    path("messages/count_tokens", anthropic_api.count_tokens, name="anthropic-count-tokens"),
]
