"""The gateway's own id of each request: returned in `x-request-id` (gateway.middleware) and
stored on the usage record beside the vendor's, so a client can match a call to its bill."""

import secrets
import time

from django.http import HttpRequest


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


def request_id_of(request: HttpRequest) -> str:
    """The id the middleware gave `request` (one is given here if it ran without it)."""
    request_id = getattr(request, "request_id", "")
    if not request_id:
        request_id = new_request_id()
        request.request_id = request_id  # type: ignore[attr-defined]
    return request_id


def request_received(request: HttpRequest) -> float:
    """When `request` arrived (time.monotonic(), as the middleware noted it; now if it did not)."""
    received: float | None = getattr(request, "received", None)
    return received if received is not None else time.monotonic()
