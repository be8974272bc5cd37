"""The one way tests make things: users, quotas and reservations, API keys, models, agents, dialogs.

Every test and fixture makes its rows here rather than with the ORM, so that when the way a
thing is made changes (a new required field, a service that must run) it changes in one place.
Defaults are the boring, valid choice; a test passes only what its sentence is about.
"""

import itertools
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from rest_framework.test import APIClient

from accounts.tokens import SessionRefreshToken
from agents.models import Agent
from billing.admission import quota_reserve
from billing.keys import api_key_create
from billing.models import APIKey, Quota, Reservation
from billing.quotas import quota_get
from dialogs.models import Dialog
from llm_models.models import LLMModel
from llm_models.services import models_seed

_numbers = itertools.count(1)


# --- users -------------------------------------------------------------------------------------


def password_for(username: str) -> str:
    """The password make_user gives `username` unless told otherwise: alice's is "alice-password"."""
    return f"{username}-password"


def make_user(
    username: str, *, staff: bool = False, superuser: bool = False, password: str | None = None, **fields: Any
) -> AbstractBaseUser:
    """A user with the e-mail <username>@example.com and the password password_for(username).

    The test settings hash passwords with MD5 (tests/conftest.py): PBKDF2's deliberate slowness
    would cost most of the suite's time."""
    return get_user_model().objects.create_user(
        username,
        f"{username}@example.com",
        password if password is not None else password_for(username),
        is_staff=staff or superuser,
        is_superuser=superuser,
        **fields,
    )


def access_token(user: AbstractBaseUser) -> str:
    """A fresh access token of the gateway's own, as /api/auth/token/ would hand `user`."""
    return str(SessionRefreshToken.for_user(user).access_token)


def client_for(user: AbstractBaseUser | None) -> APIClient:
    """An API client signed in as `user` with a bearer token (anonymous for None)."""
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token(user)}")
    return client


# --- quotas and API keys -----------------------------------------------------------------------


def set_quota(user: AbstractBaseUser, **fields: Any) -> Quota:
    """The user's quota (the default one, made on first use) with `fields` written to its row.

    Counters such as used_tokens are written too: that is how a test says "alice has already
    used 95 of her 100 tokens" without making 95 tokens' worth of requests."""
    quota = quota_get(user=user)
    Quota.objects.filter(pk=quota.pk).update(**fields)
    quota.refresh_from_db()
    return quota


def reserve(user: AbstractBaseUser, tokens: int, cost: Decimal = Decimal(0), **fields: Any) -> Reservation:
    """Hold `tokens` and `cost` on the user's quota (and on `api_key`'s, if given) as a request
    about to call a vendor does, in a transaction of its own; QuotaExceeded if they do not fit."""
    with transaction.atomic():
        return quota_reserve(user=user, tokens=tokens, cost=cost, **fields)


def make_key(user: AbstractBaseUser, *, name: str | None = None, **limits: Any) -> tuple[APIKey, str]:
    """A new API key of `user`'s and its secret, made as /api/keys/ makes them.

    `limits` are the key's own fields: token_limit, tokens_per_minute, allowed_models, ..."""
    return api_key_create(user=user, name=name or f"{user.username}'s key {next(_numbers)}", **limits)


# --- the catalog -------------------------------------------------------------------------------


def seed_models() -> dict[str, LLMModel]:
    """The four models of llm_models/seed_models.json (made if missing), by name:
    gpt-4-turbo, gpt-3.5-turbo, claude-3-opus and claude-3-sonnet, at the spec's prices."""
    seeded = models_seed()
    names = seeded.created + seeded.updated + seeded.unchanged
    return {model.name: model for model in LLMModel.objects.filter(name__in=names)}


def seeded_model(name: str) -> LLMModel:
    """One of the seeded models by name (seed them first: the `seeded` fixture or seed_models())."""
    return LLMModel.objects.get(name=name)


def make_model(**overrides: Any) -> LLMModel:
    """A catalog model beside the seeded ones: by default an OpenAI one with a 16k window and
    round prices ($0.001 in, $0.002 out per 1k tokens).

    It is written as a shell would write it, not through llm_models.services: no cached copy of
    the catalog is dropped, which is what tests of that cache need."""
    number = next(_numbers)
    fields = {
        "name": f"test-model-{number}",
        "provider": "openai",
        "provider_model": "gpt-3.5-turbo",
        "context_window": 16_385,
        "max_output_tokens": 4096,
        "input_price_per_1k": Decimal("0.001"),
        "output_price_per_1k": Decimal("0.002"),
        **overrides,
    }
    model = LLMModel(**fields)
    model.full_clean()
    model.save()
    return model


def _model(model: LLMModel | str) -> LLMModel:
    return seeded_model(model) if isinstance(model, str) else model


# --- agents and dialogs ------------------------------------------------------------------------


def make_agent(owner: AbstractBaseUser | None, *, model: LLMModel | str, **fields: Any) -> Agent:
    """An agent of `owner`'s (None: a shared one) on `model` (a model or a seeded model's name)."""
    fields.setdefault("name", f"Agent {next(_numbers)}")
    return Agent.objects.create(owner=owner, model=_model(model), **fields)


def make_dialog(user: AbstractBaseUser, *, model: LLMModel | str, **fields: Any) -> Dialog:
    """A dialog of `user`'s with `model` (a model or a seeded model's name), e.g. an agent or a title."""
    return Dialog.objects.create(owner=user, model=_model(model), **fields)
