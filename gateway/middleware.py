import json
import time

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import JsonResponse
from django.middleware.security import SecurityMiddleware

from common.errors import error_body
from common.request_ids import new_request_id, request_id_of


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


class AllowedHostsMiddleware(_Middleware):
    """A Host that ALLOWED_HOSTS does not name is a 400. Django checks the Host only when something
    asks for it (CommonMiddleware does, on the site's chain), so the API's chain asks here."""

    def before(self, request):
        try:
            request.get_host()
        except DisallowedHost:
            message = "The Host header names a host this server does not serve."
            return JsonResponse(error_body("invalid_request", message), status=400)
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
    on every answer, errors included. First in the chain, so nothing answers without it; it notes
    when the request arrived too (a call's latency is measured from then)."""

    def before(self, request):
        request.received = time.monotonic()
        return None

    def after(self, request, response):
        response["x-request-id"] = request_id_of(request)
        return response


class BodySizeLimit:
    """The ASGI application, with bodies over MAX_REQUEST_BODY_BYTES answered 413 unread.

    Django's ASGI handler reads a whole body (into a temporary file) before its first middleware
    runs, so the limit stands in front of it: a declared Content-Length over the limit is refused
    before a byte of the body is read, and a body without one (chunked) is read up to the limit
    only. The 413 closes the connection, so the server reads no more of it."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        # Read per request (a cheap attribute lookup) so an overridden setting takes effect.
        limit: int = settings.MAX_REQUEST_BODY_BYTES
        length = next((value for name, value in scope["headers"] if name == b"content-length"), None)
        if length is not None:
            # The server has checked that it is a number, and reads exactly that many bytes of body.
            if int(length) > limit:
                return await _refuse_body(send, f"The request body is {int(length)} bytes; the limit is {limit}.")
            return await self.app(scope, receive, send)

        received = 0

        async def receive_up_to_limit():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    await _refuse_body(send, f"The request body is over the limit of {limit} bytes.")
                    return {"type": "http.disconnect"}  # Django stops reading and answers nothing
            return message

        return await self.app(scope, receive_up_to_limit, send)


async def _refuse_body(send, message: str) -> None:
    body = json.dumps(error_body("request_too_large", message)).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", new_request_id().encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
