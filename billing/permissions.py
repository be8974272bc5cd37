"""Who may change what a credential may do.

An API key is for using the gateway: completions, dialogs, agents, reading the catalog and its
own user's usage. Making, changing, listing and revoking keys, and editing quotas, need a person
signed in (a gateway JWT or an outside identity provider's token): a leaked key must not be able
to lift its own limits, mint an unrestricted key or revoke its siblings.
"""

from rest_framework.permissions import BasePermission

from billing.models import APIKey


class SignedInUser(BasePermission):
    """Refuses (403) a request authenticated with an API key (gateway.auth puts the key in
    request.auth)."""

    message = "This needs a signed-in user (a token from /api/auth/token/), not an API key."

    def has_permission(self, request, view) -> bool:
        return not isinstance(request.auth, APIKey)
