from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import JsonResponse
from django.middleware.security import SecurityMiddleware

from common.errors import error_body
from common.request_ids import request_id_of


class _Middleware:
    """A middleware Django runs natively in either mode (no thread hop under ASGI): a subclass
    says what to answer before the view (`before`: a response, or None to go on) and what to do
    to every answer (`after`)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        return self.after(request, self.before(request) or self.get_response(request))

    async def __acall__(self, request):
        return self.after(request, self.before(request) or await self.get_response(request))

    def before(self, request):
        return None

    def after(self, request, response):
        return response


class BodySizeLimitMiddleware(_Middleware):
    """Answer 413 for bodies over MAX_REQUEST_BODY_BYTES before anything reads them."""

    def before(self, request):
        # Read per request (a cheap attribute lookup) so an overridden setting takes effect.
        limit: int = settings.MAX_REQUEST_BODY_BYTES
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit:
            message = f"The request body is {length} bytes; the limit is {limit}."
            return JsonResponse(error_body("request_too_large", message), status=413)
        return None


class APIHeadersMiddleware:
    """Django's security headers (nosniff, referrer policy, HSTS) and HTTPS redirect for the API,
    without SecurityMiddleware's two thread round trips: its hooks only read settings and set
    headers, so they are called inline."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.security = SecurityMiddleware(get_response)
        markcoroutinefunction(self)

    async def __call__(self, request):
        response = self.security.process_request(request) or await self.get_response(request)
        return self.security.process_response(request, response)


class RequestIdMiddleware(_Middleware):
    """Give each request the gateway's id (common.request_ids) and return it in `x-request-id`,
    on every answer, errors included. First in the chain, so nothing answers without it."""

    def after(self, request, response):
        response["x-request-id"] = request_id_of(request)
        return response
