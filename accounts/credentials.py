"""Who is calling: a gateway API key (billing.keys), a gateway JWT, or an RS256 JWT from an
outside identity provider.

The REST views reach these through the authentication classes that settings name
(gateway.auth); the async completion views, which run outside DRF, call `authenticate_request`.
"""

import functools
from typing import Any

import jwt
from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpRequest
from rest_framework import exceptions
from rest_framework_simplejwt.authentication import JWTAuthentication as OwnTokens
from rest_framework_simplejwt.exceptions import InvalidToken
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import Token

from accounts.models import SUBJECT_MAX_LENGTH
from accounts.services import outside_user
from accounts.tokens import token_user
from billing.keys import is_api_key, user_for_api_key
from billing.models import APIKey


def credentials_from_headers(headers: Any) -> str | None:
    """The bearer token or X-API-Key value, whichever the client sent."""
    value = headers.get("X-API-Key") or headers.get("x-api-key")
    if value:
        return value.strip()
    auth = headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def api_key_authenticate(request: HttpRequest) -> tuple[User, APIKey] | None:
    """(user, key) for a request that carries an API key; None if it carries none."""
    secret = credentials_from_headers(request.headers)
    if not secret or not is_api_key(secret):
        return None
    return user_for_api_key(secret)


@functools.cache
def _jwks_client(url: str) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(url, cache_keys=True, lifespan=600)


def _external_signing_key(token: str) -> Any:
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


def _external_user(token: str) -> User:
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
    subject = claims["sub"]  # PyJWT has checked it is a string
    if not subject or len(subject) > SUBJECT_MAX_LENGTH or "\x00" in subject:
        raise exceptions.AuthenticationFailed(
            f"Token subject is not accepted: it must be 1 to {SUBJECT_MAX_LENGTH} characters, without NUL."
        )
    user = outside_user(
        issuer=claims["iss"],
        subject=subject,
        name=str(claims.get(settings.JWT_USERNAME_CLAIM) or subject),
        email=claims.get("email"),
    )
    if not user.is_active:
        raise exceptions.AuthenticationFailed("This user is inactive.")
    return user


def _own_token_reason(token: str) -> str:
    """simplejwt says only "Token is invalid"; say why (bad signature, ...) when PyJWT can."""
    try:
        jwt.decode(
            token,
            jwt_settings.SIGNING_KEY,
            algorithms=[jwt_settings.ALGORITHM],
            options={"verify_aud": False, "verify_iss": False},
        )
    except jwt.InvalidTokenError as exc:
        return _reason(exc)
    return "Token is invalid."


@functools.cache
def _own_tokens() -> OwnTokens:
    # simplejwt's validation, reused as it is; the user lookup is accounts.tokens'.
    return OwnTokens()


def _bearer_token(request: HttpRequest) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    if not token or " " in token:
        raise exceptions.AuthenticationFailed("Authorization header must contain two space-delimited values")
    return token


def jwt_authenticate(request: HttpRequest) -> tuple[User, Token | None] | None:
    """The gateway's own HS256 tokens, plus RS256 tokens from JWT_ISSUER when configured; None
    if the request carries no bearer token."""
    token = _bearer_token(request)
    if token is None:
        return None
    try:
        alg = jwt.get_unverified_header(token).get("alg", "")
        issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
    except jwt.InvalidTokenError as exc:
        raise exceptions.AuthenticationFailed("Token is malformed.") from exc
    if str(alg).lower() == "none":
        raise exceptions.AuthenticationFailed("Unsigned tokens (alg 'none') are not accepted.")
    if alg != jwt_settings.ALGORITHM or issuer:
        if not settings.JWT_ISSUER or issuer != settings.JWT_ISSUER:
            raise exceptions.AuthenticationFailed(f"Token issuer {issuer!r} is not accepted.")
        return _external_user(token), None
    own = _own_tokens()
    try:
        validated = own.get_validated_token(token.encode())
    except InvalidToken as exc:
        reason = _simplejwt_reason(exc)
        reason = {"Token is expired": "Token has expired."}.get(reason, reason)
        if reason == "Token is invalid":
            reason = _own_token_reason(token)
        raise exceptions.AuthenticationFailed(reason) from exc
    return token_user(validated), validated


def _simplejwt_reason(exc: InvalidToken) -> str:
    """The first reason in simplejwt's {"detail", "messages": [{"message": ...}]}."""
    messages = exc.detail.get("messages") if isinstance(exc.detail, dict) else None
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        return str(messages[0].get("message", "Token is invalid."))
    return "Token is invalid."


def authenticate_request(request: HttpRequest) -> tuple[User, APIKey | None]:
    """(user, api_key or None) for a plain Django request, as the REST views would decide (an
    API key first, then a JWT).

    For the async completion views, which run outside DRF. Sync: touches the DB.
    """
    secret = credentials_from_headers(request.headers)
    if secret and is_api_key(secret):
        return user_for_api_key(secret)
    result = jwt_authenticate(request)
    if result is None:
        raise exceptions.NotAuthenticated("Authentication credentials were not provided.")
    return result[0], None
