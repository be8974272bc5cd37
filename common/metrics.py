"""The gateway's metrics, for Prometheus at /metrics (docs/operations.md lists them).

Each is observed in one place: the completion flow's settlement (completions.core), admission's
refusals (billing.admission), the database phases (common.db). Counting is in memory, with no
database or Redis work. Under `make serve` every worker process writes its values to files in
PROMETHEUS_MULTIPROC_DIR (prometheus-client's multiprocess mode), and /metrics, whichever worker
answers it, sums them; without that directory (`make run`, the tests) it reads this process's.
"""

import hmac
import os

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from common.errors import error_body

# Seconds: from a few milliseconds of overhead to a long reply.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

requests = Counter(
    "gateway_requests", "Calls that reached a vendor, by how they ended.", ["endpoint", "model", "status"]
)
prompt_tokens = Counter("gateway_prompt_tokens", "Prompt tokens billed.", ["model"])
completion_tokens = Counter("gateway_completion_tokens", "Completion tokens billed.", ["model"])
cost_usd = Counter("gateway_cost_usd", "Cost billed, in US dollars.", ["model"])
refusals = Counter(
    "gateway_refusals", "Requests refused by a quota (quota_exceeded) or a rate limit (rate_limited).", ["reason"]
)
vendor_errors = Counter("gateway_vendor_errors", "Vendor failures (after the gateway's retries), by kind.", ["kind"])
request_seconds = Histogram(
    "gateway_request_seconds",
    "A call from its request's arrival to its settlement (a stream: to its end).",
    ["endpoint"],
    buckets=LATENCY_BUCKETS,
)
vendor_seconds = Histogram(
    "gateway_vendor_seconds", "The vendor's part of a call, retries included.", ["endpoint"], buckets=LATENCY_BUCKETS
)
overhead_seconds = Histogram(
    "gateway_overhead_seconds",
    "The gateway's own part of a call: the whole less the vendor's (admission, settlement, parsing).",
    ["endpoint"],
    buckets=LATENCY_BUCKETS,
)
first_token_seconds = Histogram(
    "gateway_time_to_first_token_seconds",
    "A stream, from its request's arrival to its first chunk of output.",
    ["endpoint"],
    buckets=LATENCY_BUCKETS,
)
streams_in_flight = Gauge(
    "gateway_streams_in_flight", "Streamed replies being relayed now.", multiprocess_mode="livesum"
)
db_phase_wait_seconds = Histogram(
    "gateway_db_phase_wait_seconds",
    "How long a database phase waited for a connection slot and a thread before it ran.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def _registry() -> CollectorRegistry:
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=folder)
    return registry


def _allowed(request: HttpRequest) -> bool:
    """From an address in METRICS_ALLOWED_IPS, or with the bearer token METRICS_TOKEN (if set)."""
    if request.META.get("REMOTE_ADDR") in settings.METRICS_ALLOWED_IPS:
        return True
    token: str = settings.METRICS_TOKEN
    given = request.headers.get("Authorization", "")
    return bool(token) and hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


def metrics_view(request: HttpRequest) -> HttpResponse:
    """The metrics in Prometheus's text format; a 404 to anyone not allowed (nothing said of why)."""
    if not _allowed(request):
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)
