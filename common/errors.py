"""One error shape for the whole API: {"error": {"type", "message", ...}} with the right status."""

import json

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response


class GatewayError(Exception):
    """An error a client can act on. Services raise it; every view renders it the same way."""

    status = 400
    type = "bad_request"

    def __init__(
        self, message: str, *, status: int | None = None, type: str | None = None, headers: dict | None = None, **extra
    ):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict:
        return {"error": {"type": self.type, "message": self.message, **self.extra}}


def error_body(type: str, message: str, **extra) -> dict:
    return {"error": {"type": type, "message": message, **extra}}


def error_response(error: GatewayError) -> JsonResponse:
    response = JsonResponse(error.body(), status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    return response


def _flatten(detail):
    """DRF's nested ErrorDetail lists -> plain strings and lists."""
    if isinstance(detail, dict):
        return {key: _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten(item) for item in detail]
    return str(detail)


_TYPES = {
    exceptions.ParseError: "invalid_request",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "rate_limited",
}


def api_exception_handler(exc, context):
    if isinstance(exc, GatewayError):
        return Response(exc.body(), status=exc.status, headers=exc.headers)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None  # a real bug: let Django log it and answer 500

    headers = {}
    # DRF puts these on the exception where they apply (a 401's scheme, a throttle's wait).
    if auth_header := getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = auth_header
    if wait := getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(wait))

    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        if not isinstance(fields, dict):
            fields = {"non_field_errors": fields}
        names = ", ".join(fields)
        body = error_body("validation_error", f"Invalid input: {names}.", fields=fields)
    else:
        detail = exc.detail
        if isinstance(detail, dict):  # simplejwt puts its reason in a dict
            message = str(detail.get("detail", "")) or "Request failed."
            reasons = [str(m.get("message", "")) for m in detail.get("messages", []) if isinstance(m, dict)]
            if reasons:
                message = f"{message}: {reasons[0]}"
        else:
            message = str(detail)
        kind = next((t for cls, t in _TYPES.items() if isinstance(exc, cls)), "error")
        body = error_body(kind, message)
    return Response(body, status=exc.status_code, headers=headers)


def not_found(request, exception=None):
    return JsonResponse(error_body("not_found", f"No such path: {request.path}"), status=404)


def server_error(request):
    return JsonResponse(error_body("server_error", "The gateway failed to handle this request."), status=500)


def bad_request(request, exception=None):
    return JsonResponse(error_body("invalid_request", "The request could not be read."), status=400)


def permission_denied(request, exception=None):
    return JsonResponse(error_body("permission_denied", "Not allowed."), status=403)


def from_api_exception(exc) -> GatewayError:
    """A DRF exception raised outside DRF views (async views authenticate with DRF's classes)."""
    response = api_exception_handler(exc, {})
    body = response.data["error"]
    headers = {k: response[k] for k in ("WWW-Authenticate", "Retry-After") if response.has_header(k)}
    return GatewayError(
        body.pop("message"), status=response.status_code, type=body.pop("type"), headers=headers, **body
    )


def json_object(raw: bytes) -> dict:
    """A request body that must be a JSON object, or a 400 saying what is wrong with it."""
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # nested past Python's stack: not JSON we take
        raise GatewayError(f"The body is not valid JSON: {str(exc)[:200]}", type="invalid_request") from exc
    if not isinstance(body, dict):
        raise GatewayError("The body must be a JSON object.", type="invalid_request")
    return body
