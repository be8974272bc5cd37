"""The ASGI application: /api/ and /v1/ through the API's lean handler, the rest (the admin, the
docs) through Django's with the full middleware; both behind the body size limit. A process
serving the API beats (billing.heartbeat): its calls keep their reservations, a dead one's are
released.

A worker loads here, before it accepts its first connection, everything a request would
otherwise load while every other request of the worker waits (seconds: the URLconf and the views
behind it, the vendor SDKs, the token encodings)."""

import contextlib
import importlib
import logging
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")
site = get_asgi_application()

from django.db import OperationalError, connection  # noqa: E402  (the settings must be loaded first)
from django.urls import get_resolver  # noqa: E402
from rest_framework.settings import api_settings  # noqa: E402

from billing.heartbeat import heartbeat_start  # noqa: E402
from billing.spool import spool_pending, spool_replay  # noqa: E402
from gateway.handlers import API_PREFIXES, APIHandler  # noqa: E402
from gateway.middleware import BodySizeLimit  # noqa: E402
from llm_models.providers import registry  # noqa: E402
from llm_models.providers.tokens import warm_up  # noqa: E402

api = APIHandler()


async def route(scope, receive, send):
    if scope["type"] == "http" and scope["path"].startswith(API_PREFIXES):
        heartbeat_start()  # the process's reservations are kept while its calls run (billing.leases)
        await api(scope, receive, send)
    else:
        await site(scope, receive, send)


application = BodySizeLimit(route)


def _load_before_serving() -> None:
    get_resolver().check()  # imports every app's urls.py, and so every view
    for name in (
        "DEFAULT_AUTHENTICATION_CLASSES",
        "DEFAULT_PERMISSION_CLASSES",
        "DEFAULT_RENDERER_CLASSES",
        "DEFAULT_PARSER_CLASSES",
        "EXCEPTION_HANDLER",
        "DEFAULT_PAGINATION_CLASS",
    ):
        getattr(api_settings, name)  # DRF imports the classes its settings name on first use
    registry.load_all()  # the vendor SDKs (seconds to import)
    warm_up()  # the token encodings
    # The asyncio backend of anyio, which the vendor SDKs' HTTP client imports on its first call.
    with contextlib.suppress(ImportError):
        importlib.import_module("anyio._backends._asyncio")


def _replay_spool() -> None:
    """Settlements a stopped process spooled (the database was down) are applied at start; if the
    database is still down, by the first worker that settles a call (completions.core)."""
    if not spool_pending():
        return
    try:
        spool_replay()
    except OperationalError:
        logging.getLogger(__name__).warning("The database is unavailable: the settlement spool waits.")
    finally:
        connection.close()


_load_before_serving()
_replay_spool()
