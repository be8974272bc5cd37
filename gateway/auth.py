"""The authentication classes that settings.REST_FRAMEWORK names, and how the OpenAPI schema
describes them. The work is accounts.credentials', shared with the async completion views."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication

from accounts.credentials import api_key_authenticate, jwt_authenticate
from billing.models import KEY_PREFIX

# Both answer 401 (not 403) to a request without credentials, naming the scheme to use.
WWW_AUTHENTICATE = 'Bearer realm="api"'


class APIKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        return api_key_authenticate(request)

    def authenticate_header(self, request):
        return WWW_AUTHENTICATE


class JWTAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        return jwt_authenticate(request)

    def authenticate_header(self, request):
        return WWW_AUTHENTICATE


class APIKeyScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema describes gateway API keys (sent as X-API-Key or a bearer token)."""

    target_class = "gateway.auth.APIKeyAuthentication"
    name = "apiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": f"A gateway API key ({KEY_PREFIX}...), also accepted as a bearer token.",
        }


class GatewayJWTScheme(OpenApiAuthenticationExtension):
    target_class = "gateway.auth.JWTAuthentication"
    name = "jwtAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A token from /api/auth/token/, or an RS256 token from JWT_ISSUER.",
        }
