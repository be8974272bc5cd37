"""Who is calling: a gateway API key, a gateway JWT, or an RS256 JWT from an outside identity
provider."""

import functools
import time
from datetime import timedelta

import jwt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework_simplejwt.authentication import JWTAuthentication as SimpleJWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken

from gateway.models import KEY_PREFIX, APIKey, hash_key

# last_used_at is a hint for people, not an audit log: write it at most this often.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def credentials_from_headers(headers) -> str | None:
    """The bearer token or X-API-Key value, whichever the client sent."""
    value = headers.get("X-API-Key") or headers.get("x-api-key")
    if value:
        return value.strip()
    auth = headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def api_key_problem(key: APIKey) -> str | None:
    """Why `key` may not be used now, or None."""
    if key.revoked_at is not None:
        return "This API key has been revoked."
    if key.expires_at is not None and key.expires_at <= timezone.now():
        return "This API key has expired."
    if not key.user.is_active:
        return "This user is inactive."
    return None


def user_for_api_key(secret: str) -> tuple:
    """(user, key) for an active key; AuthenticationFailed otherwise. Sync: touches the DB."""
    key = APIKey.objects.select_related("user").filter(key_hash=hash_key(secret)).first()
    if key is None:
        raise exceptions.AuthenticationFailed("Invalid API key.")
    if problem := api_key_problem(key):
        raise exceptions.AuthenticationFailed(problem)
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        APIKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key.user, key


# The completion endpoints find a key's id and user here rather than in the database: those never
# change, and all that can (revoked, expired, user deactivated, allowed models, limits, rates) is
# checked again on every request by the statement that reserves quota on the key
# (billing.services._hold_on_key). An entry lives a minute, and a refused hold drops it at once.
KEY_CACHE_SECONDS = 60
KEY_CACHE_SIZE = 10_000
_key_cache: dict[str, tuple[float, APIKey]] = {}


def api_key_cached(secret: str) -> tuple:
    """user_for_api_key, from this process's cache when it can. Only for requests that reserve
    quota on the key before they do anything (see above)."""
    digest, now = hash_key(secret), time.monotonic()
    entry = _key_cache.get(digest)
    if entry is not None and entry[0] > now:
        return entry[1].user, entry[1]
    user, key = user_for_api_key(secret)
    if len(_key_cache) >= KEY_CACHE_SIZE:
        _key_cache.clear()
    _key_cache[digest] = (now + KEY_CACHE_SECONDS, key)
    return user, key


def api_key_forget(key: APIKey) -> None:
    _key_cache.pop(key.key_hash, None)


class APIKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        secret = credentials_from_headers(request.headers)
        if not secret or not secret.startswith(KEY_PREFIX):
            return None
        return user_for_api_key(secret)

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


@functools.cache
def _jwks_client(url: str) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(url, cache_keys=True, lifespan=600)


def _external_signing_key(token: str):
    if settings.JWT_VERIFYING_KEY:
        return settings.JWT_VERIFYING_KEY
    if settings.JWT_JWKS_URL:
        try:
            return _jwks_client(settings.JWT_JWKS_URL).get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientError as exc:
            raise exceptions.AuthenticationFailed(f"Token signing key not found: {exc}") from exc
    raise exceptions.AuthenticationFailed("Outside tokens are not configured on this gateway.")


_JWT_REASONS = [
    (jwt.ExpiredSignatureError, "Token has expired."),
    (jwt.InvalidAudienceError, "Token audience is not accepted."),
    (jwt.InvalidIssuerError, "Token issuer is not accepted."),
    (jwt.InvalidSignatureError, "Token signature is invalid."),
    (jwt.ImmatureSignatureError, "Token is not valid yet."),
]


def _reason(exc: jwt.InvalidTokenError) -> str:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"Token lacks the required {exc.claim!r} claim."
    return next((text for cls, text in _JWT_REASONS if isinstance(exc, cls)), "Token is invalid.")


def _external_user(token: str):
    try:
        claims = jwt.decode(
            token,
            _external_signing_key(token),
            algorithms=["RS256"],
            issuer=settings.JWT_ISSUER,
            audience=settings.JWT_AUDIENCE or None,
            options={"require": ["exp", "iss", "sub"], "verify_aud": bool(settings.JWT_AUDIENCE)},
        )
    except jwt.InvalidTokenError as exc:
        raise exceptions.AuthenticationFailed(_reason(exc)) from exc
    username = str(claims.get(settings.JWT_USERNAME_CLAIM) or claims["sub"])[:150]
    user, _ = get_user_model().objects.get_or_create(username=username, defaults={"email": claims.get("email", "")})
    if not user.is_active:
        raise exceptions.AuthenticationFailed("This user is inactive.")
    return user


def _own_token_reason(token: str) -> str:
    """simplejwt says only "Token is invalid"; say why (bad signature, ...) when PyJWT can."""
    try:
        jwt.decode(
            token,
            settings.SIMPLE_JWT["SIGNING_KEY"],
            algorithms=[settings.SIMPLE_JWT["ALGORITHM"]],
            options={"verify_aud": False, "verify_iss": False},
        )
    except jwt.InvalidTokenError as exc:
        return _reason(exc)
    return "Token is invalid."


class JWTAuthentication(SimpleJWTAuthentication):
    """The gateway's own HS256 tokens, plus RS256 tokens from JWT_ISSUER when configured."""

    def authenticate(self, request):
        header = self.get_header(request)
        if header is None:
            return None
        raw = self.get_raw_token(header)
        if raw is None:
            return None
        token = raw.decode() if isinstance(raw, bytes) else raw
        try:
            alg = jwt.get_unverified_header(token).get("alg", "")
            issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.InvalidTokenError as exc:
            raise exceptions.AuthenticationFailed("Token is malformed.") from exc
        if str(alg).lower() == "none":
            raise exceptions.AuthenticationFailed("Unsigned tokens (alg 'none') are not accepted.")
        if alg != settings.SIMPLE_JWT["ALGORITHM"] or issuer:
            if not settings.JWT_ISSUER or issuer != settings.JWT_ISSUER:
                raise exceptions.AuthenticationFailed(f"Token issuer {issuer!r} is not accepted.")
            return _external_user(token), None
        try:
            validated = self.get_validated_token(raw)
        except InvalidToken as exc:
            messages = exc.detail.get("messages", []) if isinstance(exc.detail, dict) else []
            reason = str(messages[0]["message"]) if messages else "Token is invalid."
            reason = {"Token is expired": "Token has expired."}.get(reason, reason)
            if reason == "Token is invalid":
                reason = _own_token_reason(token)
            raise exceptions.AuthenticationFailed(reason) from exc
        return self.get_user(validated), validated


def authenticate_request(request, *, reserves_on_key: bool = False) -> tuple:
    """(user, api_key or None) for a plain Django request, as the REST views would decide.

    For the async completion views, which run outside DRF. `reserves_on_key`: the request goes
    on to reserve quota on the key, which checks it, so the key may come from the cache. Sync:
    touches the DB.
    """
    secret = credentials_from_headers(request.headers)
    if reserves_on_key and secret and secret.startswith(KEY_PREFIX):
        return api_key_cached(secret)
    for authenticator in (APIKeyAuthentication(), JWTAuthentication()):
        result = authenticator.authenticate(request)
        if result is not None:
            user, credential = result
            return user, credential if isinstance(credential, APIKey) else None
    raise exceptions.NotAuthenticated("Authentication credentials were not provided.")


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
