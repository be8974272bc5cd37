from django.urls import path

from completions import anthropic_api, openai_api

urlpatterns = [
    path("chat/completions", openai_api.chat_completions, name="openai-chat-completions"),
    path("models", openai_api.models, name="openai-models"),
    path("messages", anthropic_api.messages, name="anthropic-messages"),
]
