"""Where a vendor's own key may go.

OPENAI_API_KEY and ANTHROPIC_API_KEY are the organisation's accounts with the vendors. A model
row chooses its base URL and may name the variable of its key, so without a rule a row (made by
a careless or compromised staff account) could send either key to any host. The rule: a vendor's
key goes only to that vendor's API (its public host, or the host of the operator's own
OPENAI_BASE_URL / ANTHROPIC_BASE_URL) or to a host the operator lists in
PROVIDER_ALLOWED_KEY_HOSTS; a row for an OpenAI-compatible server never uses a vendor's key.
Checked when a row is saved (the admin, the staff API) and again before every call (the
environment of the serving process is what counts).

Hosts are compared with their port ("api.openai.com" is "api.openai.com:443"), so a vendor key
meant for a proxy on one port is not sent to another service on the same machine.
"""

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings


@dataclass(frozen=True)
class Vendor:
    key_env: str  # the vendor's own key, the SDK's default variable
    base_url_env: str  # the SDK's variable for its endpoint, the operator's to set
    host: str  # the vendor's public API


OPENAI = Vendor("OPENAI_API_KEY", "OPENAI_BASE_URL", "api.openai.com:443")
ANTHROPIC = Vendor("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "api.anthropic.com:443")
VENDOR_KEYS = {vendor.key_env: vendor for vendor in (OPENAI, ANTHROPIC)}
# The vendor whose SDK (and so whose endpoint and default key) each kind of provider uses.
PROVIDER_VENDORS = {"openai": OPENAI, "anthropic": ANTHROPIC, "openai_compatible": OPENAI}
# Kinds that use their vendor's key when the row names none (an OpenAI-compatible server does not).
USES_VENDOR_KEY = {"openai", "anthropic"}


def host_of(url_or_host: str) -> str:
    """ "host:port" of a URL or of a bare "host[:port]" (https's port when none is given)."""
    if "//" not in url_or_host:
        url_or_host = "https://" + url_or_host
    try:
        parts = urlsplit(url_or_host.strip())
        port = parts.port or (80 if parts.scheme == "http" else 443)
    except ValueError:  # a port that is not a number
        return ""
    return f"{(parts.hostname or '').lower()}:{port}"


def _allowed_hosts(vendor: Vendor) -> set[str]:
    own = os.environ.get(vendor.base_url_env, "")
    listed = {host_of(host) for host in settings.PROVIDER_ALLOWED_KEY_HOSTS}
    return {vendor.host, *([host_of(own)] if own else []), *listed}


def key_destination_problem(*, provider: str, base_url: str, api_key_env: str) -> tuple[str, str] | None:
    """(the field at fault, why) when a model row of `provider` with this base URL and key
    variable would send a vendor's key where it must not go; None when it would not."""
    key_env = api_key_env or (PROVIDER_VENDORS[provider].key_env if provider in USES_VENDOR_KEY else "")
    vendor = VENDOR_KEYS.get(key_env)
    if vendor is None:
        return None  # the row's own variable, meant for the server it names
    if provider not in USES_VENDOR_KEY:
        return "api_key_env", f"A server that is not the vendor's may not use {key_env}; name a variable of its own."
    endpoint = PROVIDER_VENDORS[provider]
    destination = host_of(base_url or os.environ.get(endpoint.base_url_env, "") or endpoint.host)
    if destination not in _allowed_hosts(vendor):
        return "base_url", (
            f"{key_env} is sent only to {vendor.host.removesuffix(':443')} (or the host of {vendor.base_url_env}), "
            f"not to {destination.removesuffix(':443')}; list that host in PROVIDER_ALLOWED_KEY_HOSTS to allow it."
        )
    return None
