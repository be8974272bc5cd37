"""Sign-in, refresh, verify and sign-out with the gateway's own JWTs (accounts.tokens): simplejwt's
views, with these serializers (settings.SIMPLE_JWT)."""

from typing import Any

from rest_framework import serializers
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer, TokenVerifySerializer
from rest_framework_simplejwt.tokens import UntypedToken

from accounts.tokens import SessionRefreshToken, token_user, tokens_refresh, tokens_revoke


class SignInSerializer(TokenObtainPairSerializer):
    token_class = SessionRefreshToken


class RefreshSerializer(serializers.Serializer):
    refresh = serializers.CharField()
    access = serializers.CharField(read_only=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        return tokens_refresh(refresh=attrs["refresh"])


class VerifySerializer(TokenVerifySerializer):
    """Good only if the token would sign its user in now (not revoked since)."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        super().validate(attrs)
        token_user(UntypedToken(attrs["token"]))
        return {}


class SignOutSerializer(serializers.Serializer):
    """Ends every token of the refresh token's user: all their sessions, not only this one
    (revoking one chain's access tokens would cost a lookup on every request)."""

    refresh = serializers.CharField(write_only=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        tokens_revoke(user=token_user(SessionRefreshToken(attrs["refresh"])))
        return {}
