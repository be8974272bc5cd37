import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")
application = get_asgi_application()

# Load the token encodings in each worker before its first request, not during it.
from llm_models.providers.tokens import warm_up  # noqa: E402

warm_up()
