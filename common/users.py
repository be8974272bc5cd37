from django.contrib.auth.models import User
from django.http import HttpRequest
from rest_framework import exceptions
from rest_framework.request import Request


def signed_in_user(request: HttpRequest | Request) -> User:
    """The request's user, in views that only signed-in users reach (NotAuthenticated otherwise)."""
    user = getattr(request, "user", None)
    if not isinstance(user, User):
        raise exceptions.NotAuthenticated()
    return user
