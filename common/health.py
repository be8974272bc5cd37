from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse


def healthz(request: HttpRequest) -> JsonResponse:
    """The database and (with REDIS_URL set) Redis, each "ok" or what failed.

    - 200 "ok": both answer.
    - 200 "degraded": Redis fails. The gateway still serves every request (the rate limits and
      the sign-in throttle count in each process's memory, common.counters), and Redis is shared
      by every instance: answering 503 would have a load balancer take them all out at once.
    - 503 "unavailable": the database fails; nothing can be served or billed without it.
    """
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not healthy", whatever its kind
        checks["database"] = f"down: {type(exc).__name__}"
    if settings.CACHES["default"]["BACKEND"].startswith("django_redis."):
        try:
            cache.set("healthz", "1", 5)
            checks["redis"] = "ok" if cache.get("healthz") == "1" else "down: it lost a value"
        except Exception as exc:
            checks["redis"] = f"down: {type(exc).__name__}"
    if checks["database"] != "ok":
        status, code = "unavailable", 503
    else:
        status, code = ("ok", 200) if all(value == "ok" for value in checks.values()) else ("degraded", 200)
    return JsonResponse({"status": status, "checks": checks}, status=code)
