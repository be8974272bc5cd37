import hashlib
import re

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from rest_framework.exceptions import AuthenticationFailed

from accounts.models import OutsideIdentity


def staff_user_ensure(*, username: str, password: str) -> bool:
    """Make `username` a superuser with `password`, creating it if need be. True if created."""
    user, created = get_user_model().objects.get_or_create(username=username)
    user.is_staff = user.is_superuser = True
    user.set_password(password)
    user.save()
    return created


def staff_user_exists() -> bool:
    return get_user_model().objects.filter(is_staff=True, is_active=True).exists()


def _outside_username(*, issuer: str, subject: str, name: str) -> str:
    """`name` (letters, digits and @.+-_ only) and a digest of the identity after a '#', which
    Django's username validator refuses: no account made by the admin, a form or
    createsuperuser can have it, so a new identity never lands on a local account."""
    label = re.sub(r"[^\w.@+-]", "", name)[:100] or "user"
    digest = hashlib.sha256(f"{issuer}\n{subject}".encode()).hexdigest()[:12]
    return f"{label}#{digest}"


def _email_or_blank(value: object) -> str:
    if not isinstance(value, str) or len(value) > 254:
        return ""
    try:
        validate_email(value)
    except ValidationError:
        return ""
    return value


def outside_user(*, issuer: str, subject: str, name: str, email: object) -> User:
    """The account the outside identity (issuer, subject) signs in as: its own, made on first
    sight, without a password or staff rights (staff grant those, or link the identity to
    another account in the admin)."""
    identities = OutsideIdentity.objects.select_related("user")
    identity = identities.filter(issuer=issuer, subject=subject).first()
    if identity is not None:
        return identity.user
    username = _outside_username(issuer=issuer, subject=subject, name=name)
    try:
        with transaction.atomic():
            user = get_user_model().objects.create_user(username, _email_or_blank(email))
            OutsideIdentity.objects.create(issuer=issuer, subject=subject, user=user)
    except IntegrityError:
        # A concurrent first sight made it (or staff took the name: then refuse).
        identity = identities.filter(issuer=issuer, subject=subject).first()
        if identity is None:
            raise AuthenticationFailed("No account can be made for this identity; ask staff.") from None
        return identity.user
    return user
