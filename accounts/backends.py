from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest

from accounts.throttle import sign_in_check, sign_in_failed


class ThrottledModelBackend(ModelBackend):
    """Django's username and password check, refused for an account or a client address that
    failed too often lately (accounts.throttle). Every password sign-in goes through it: the
    API's /api/auth/token/ and the admin's login page."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> Any:
        username = username if username is not None else kwargs.get(get_user_model().USERNAME_FIELD)
        if username is None or password is None:
            return None
        sign_in_check(request=request, username=username)
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            sign_in_failed(request=request, username=username)
        return user
