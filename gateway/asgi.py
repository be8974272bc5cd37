import contextlib
import importlib
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")
site = get_asgi_application()

from gateway.handlers import API_PREFIXES, APIHandler  # noqa: E402  (needs the settings loaded)
from llm_models.providers.tokens import warm_up  # noqa: E402

api = APIHandler()


async def application(scope, receive, send):
    """The API (/api/, /v1/) goes through its lean middleware; the admin and everything else
    through the full MIDDLEWARE."""
    if scope["type"] == "http" and scope["path"].startswith(API_PREFIXES):
        await api(scope, receive, send)
    else:
        await site(scope, receive, send)


# Load in each worker, before its first request, what that request would otherwise load while
# every other request of the worker waits: the token encodings, and the asyncio backend of anyio,
# which the vendor SDKs' HTTP client imports on its first call (~0.3 s).
warm_up()
with contextlib.suppress(ImportError):
    importlib.import_module("anyio._backends._asyncio")
