"""API keys: made, revoked and looked up. The secret is shown once; only its hash is stored."""

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from rest_framework import exceptions

from billing.models import KEY_PREFIX, APIKey, hash_key
from llm_models.models import LLMModel

# "sk-gw-" and six random characters: enough to tell a user's keys apart, useless to an attacker.
KEY_PREFIX_LENGTH = 12
# last_used_at is a hint for people, not an audit log: write it at most this often.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def is_api_key(secret: str) -> bool:
    return secret.startswith(KEY_PREFIX)


def api_key_create(
    *, user: User, name: str, allowed_models: Iterable[LLMModel] = (), **limits: Any
) -> tuple[APIKey, str]:
    """A new key for `user` and its secret, which is not stored anywhere: only its hash is."""
    secret = APIKey.new_secret()
    with transaction.atomic():
        key = APIKey.objects.create(
            user=user, name=name, key_hash=hash_key(secret), prefix=secret[:KEY_PREFIX_LENGTH], **limits
        )
        if allowed_models:
            key.allowed_models.set(allowed_models)
    return key, secret


def api_key_update(*, key: APIKey, allowed_models: Iterable[LLMModel] | None = None, **fields: Any) -> APIKey:
    """Change a key's name, limits, rates, expiry or models (None: its models stay as they are)."""
    with transaction.atomic():
        for name, value in fields.items():
            setattr(key, name, value)
        key.save(update_fields=list(fields))
        if allowed_models is not None:
            key.allowed_models.set(allowed_models)
    return key


def api_key_revoke(*, key: APIKey) -> bool:
    """Revoke `key` now (a revoked key stays, for its usage records). False if it already was."""
    revoked = APIKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now()) > 0
    key.refresh_from_db(fields=["revoked_at"])
    return revoked


def api_key_problem(key: APIKey) -> str | None:
    """Why `key` may not be used now, or None."""
    if key.revoked_at is not None:
        return "This API key has been revoked."
    if key.expires_at is not None and key.expires_at <= timezone.now():
        return "This API key has expired."
    if not key.user.is_active:
        return "This user is inactive."
    return None


def user_for_api_key(secret: str) -> tuple[User, APIKey]:
    """(user, key) for an active key; AuthenticationFailed otherwise. Sync: touches the DB.

    The row is read on every request (one indexed query, with the user and the user's quota for
    the rate limits: billing.admission.request_count), never kept: revoking a key, its expiry or
    deactivating its user takes effect on the next request, in every process, whatever it asks.
    """
    key = APIKey.objects.select_related("user", "user__quota").filter(key_hash=hash_key(secret)).first()
    if key is None:
        raise exceptions.AuthenticationFailed("Invalid API key.")
    if problem := api_key_problem(key):
        raise exceptions.AuthenticationFailed(problem)
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        APIKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key.user, key
