"""The gateway's own JWTs (simplejwt's, with two claims of ours) and what ends them.

- `stamp`: an HMAC of the user's password hash and token generation. A token is good only while
  both are what they were at sign-in, so any password change (admin, API, `set_password` in a
  command) and any sign-out (`tokens_revoke`) ends every token the user holds. Checking it costs
  nothing beyond the user lookup every token needs (the generation comes in the same query).
- `signed_in`: when the chain of refresh tokens began. Refreshing moves a token's expiry, but
  never past `signed_in` + JWT_SESSION_MAX_DAYS: then the user signs in again.

A refresh token is spent once: its blacklist row is unique, so of concurrent refreshes of one
token exactly one succeeds.
"""

from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils.crypto import constant_time_compare, salted_hmac
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken, Token
from rest_framework_simplejwt.utils import datetime_from_epoch, datetime_to_epoch

from accounts.models import TokenGeneration

STAMP_CLAIM = "stamp"
SIGNED_IN_CLAIM = "signed_in"


def _generation(user: User) -> int:
    try:
        return user.token_generation.value
    except TokenGeneration.DoesNotExist:
        return 0


def token_stamp(user: User) -> str:
    return salted_hmac("accounts.tokens.stamp", f"{user.password}:{_generation(user)}", algorithm="sha256").hexdigest()


class SessionRefreshToken(RefreshToken):
    """A refresh token (and through `access_token`, its access tokens) carrying our claims."""

    @classmethod
    def for_user(cls, user: User) -> "SessionRefreshToken":  # type: ignore[override]
        token = cls()
        token[jwt_settings.USER_ID_CLAIM] = str(user.pk)
        token[STAMP_CLAIM] = token_stamp(user)
        token[SIGNED_IN_CLAIM] = token["iat"]
        token.outstand()
        return token


def token_user(token: Token) -> User:
    """The active user a verified token of ours names, if the token has not been revoked since."""
    try:
        user = get_user_model().objects.select_related("token_generation").get(pk=token[jwt_settings.USER_ID_CLAIM])
    except (KeyError, ValueError, get_user_model().DoesNotExist) as exc:
        raise AuthenticationFailed("Token names no user of this gateway.") from exc
    if not user.is_active:
        raise AuthenticationFailed("This user is inactive.")
    if not constant_time_compare(str(token.get(STAMP_CLAIM, "")), token_stamp(user)):
        raise AuthenticationFailed("Token was revoked (password change or sign-out): sign in again.")
    return user


def _session_end(token: Token) -> datetime:
    return datetime_from_epoch(token.get(SIGNED_IN_CLAIM, token["iat"])) + settings.JWT_SESSION_MAX


def _cap_expiry(token: Token, end: datetime) -> None:
    token["exp"] = min(token["exp"], datetime_to_epoch(end))


def _spend(refresh: SessionRefreshToken) -> None:
    """Blacklist `refresh`, or fail if a concurrent request just did (its row is unique)."""
    outstanding, _ = OutstandingToken.objects.get_or_create(
        jti=refresh[jwt_settings.JTI_CLAIM],
        defaults={
            "user_id": refresh[jwt_settings.USER_ID_CLAIM],
            "token": str(refresh),
            "expires_at": datetime_from_epoch(refresh["exp"]),
        },
    )
    try:
        with transaction.atomic():
            BlacklistedToken.objects.create(token=outstanding)
    except IntegrityError as exc:
        raise AuthenticationFailed("Token is blacklisted.") from exc


def tokens_refresh(*, refresh: str) -> dict[str, str]:
    """A new access token and the next refresh token of the chain, spending `refresh`."""
    # Checks signature, expiry, type and blacklist. (It takes the encoded token, whatever simplejwt's
    # annotation says.)
    token = SessionRefreshToken(refresh)  # type: ignore[arg-type]
    token_user(token)
    end = _session_end(token)
    if token.current_time >= end:
        raise AuthenticationFailed("This session is over: sign in again.")
    _spend(token)
    access = token.access_token
    _cap_expiry(access, end)
    token.set_jti()
    token.set_exp()
    token.set_iat()
    _cap_expiry(token, end)
    token.outstand()
    return {"access": str(access), "refresh": str(token)}


def tokens_revoke(*, user: User) -> None:
    """End every token `user` holds: the next generation's stamp differs from all of theirs."""
    with transaction.atomic():
        TokenGeneration.objects.get_or_create(user=user)
        TokenGeneration.objects.filter(user=user).update(value=F("value") + 1)
