"""The API's own ASGI handler: Django's, with settings.API_MIDDLEWARE instead of MIDDLEWARE.

Under ASGI every hook of a sync-style middleware (Django's sessions, CSRF, messages, security,
common, clickjacking) runs in a thread and back: ~14 round trips per request, a quarter of the
CPU of a completion. The API authenticates by header and keeps no session, so none of them is
needed there; the admin's pages keep the full MIDDLEWARE.
"""

from django.conf import settings
from django.core.handlers.asgi import ASGIHandler

API_PREFIXES = ("/api/", "/v1/")


class APIHandler(ASGIHandler):
    def load_middleware(self, is_async=False):
        # Django builds the chain from settings.MIDDLEWARE; build it from the API's list.
        site_middleware = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.API_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = site_middleware
