"""Settings, all from the environment (and an optional .env file beside manage.py).

.env.example lists every variable. Without DATABASE_URL the gateway runs on a SQLite
file; without REDIS_URL it uses an in-process cache.
"""

import os
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def _load_dotenv(path: Path) -> None:
    """Read KEY=VALUE lines into os.environ; the real environment wins."""
    if not path.is_file():
        return
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        os.environ.setdefault(key.strip(), value.strip().strip("'\""))


_load_dotenv(BASE_DIR / ".env")


def env(name: str, default: str = "") -> str:
    # Empty is unset: a copy of .env.example, which lists every variable, keeps the defaults.
    return os.environ.get(name) or default


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def env_int_or_none(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    return int(value) if value else None


def database_from_url(url: str) -> dict[str, Any]:
    """postgres://user:pass@host:port/name?opt=... or sqlite:///path (relative to the project)."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = unquote(parsed.path[1:] if parsed.path.startswith("/") else parsed.path)
        name = path if os.path.isabs(path) else str(BASE_DIR / (path or "db.sqlite3"))
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": name}
    if parsed.scheme in {"postgres", "postgresql", "pgsql"}:
        options: dict[str, Any] = dict(parse_qsl(parsed.query))
        pool_max = int(options.pop("pool_max", env("DB_POOL_MAX", "20")))
        if pool_max > 0:
            # Django's psycopg pool: ASGI requests must not keep a connection for a whole
            # stream (see docs/architecture.md), so connections go back after each DB phase.
            options["pool"] = {"min_size": 1, "max_size": pool_max, "timeout": 10}
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parsed.path.lstrip("/")),
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "CONN_MAX_AGE": 0,
            # The pool checks each connection as it hands it out (Django passes psycopg_pool's
            # check_connection): after a database restart the pooled connections are dead, and
            # the first requests would otherwise get them and fail.
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": options,
            "TEST": {"NAME": env("TEST_DATABASE_NAME") or None},
        }
    raise ImproperlyConfigured(f"DATABASE_URL has an unsupported scheme: {parsed.scheme!r}")


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "dev-only-insecure-key-set-SECRET_KEY-in-production-0123456789"

ALLOWED_HOSTS = [h.strip() for h in env("ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in env("CSRF_TRUSTED_ORIGINS").split(",") if o.strip()]

# HTTPS, for a gateway served over TLS (README, "Production"): off by default, so a plain-HTTP
# `make serve` on 127.0.0.1 works; they apply to the API as to the admin (APIHeadersMiddleware).
# Behind a proxy that ends TLS, the server takes the scheme from the proxy's X-Forwarded-Proto
# when the proxy's address is in FORWARDED_ALLOW_IPS (gunicorn's, read from the environment;
# default 127.0.0.1), so Django sees https without SECURE_PROXY_SSL_HEADER, which would trust
# that header from any client.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS")
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD")
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE")
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE")
# A load balancer's health check may come over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "gateway",
    "llm_models",
    "agents",
    "billing",
    "accounts",
    "completions",
    "dialogs",
]

MIDDLEWARE = [
    "gateway.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
# /api/ and /v1/ under ASGI (gateway/handlers.py): native async middleware only.
API_MIDDLEWARE = [
    "gateway.middleware.RequestIdMiddleware",
    "gateway.middleware.AllowedHostsMiddleware",
    "gateway.middleware.APIHeadersMiddleware",
]

ROOT_URLCONF = "gateway.urls"
WSGI_APPLICATION = "gateway.wsgi.application"
ASGI_APPLICATION = "gateway.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": database_from_url(env("DATABASE_URL", "sqlite:///db.sqlite3"))}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Concurrent writers wait for the lock instead of failing at once.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}

# Settlements the database could not take wait here until it is back (billing.spool): keep the
# directory on a disk that survives a restart, and back it up with the database.
SETTLEMENT_SPOOL_DIR = Path(env("SETTLEMENT_SPOOL_DIR") or BASE_DIR / "var" / "spool")
# How often each worker looks for spooled settlements to apply.
SETTLEMENT_REPLAY_SECONDS = env_int("SETTLEMENT_REPLAY_SECONDS", 10)


def redis_cache(url: str) -> dict:
    """The cache on the Redis at `url`. Redis answers in well under a millisecond: a connect or
    a reply that takes half a second means it is down or hung, and the counters that use it
    (common.counters) fall back to memory rather than hold the request up."""
    return {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": url,
        "KEY_PREFIX": env("CACHE_KEY_PREFIX", "gw"),
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
    }


REDIS_URL = env("REDIS_URL")
if REDIS_URL:
    CACHES = {"default": redis_cache(REDIS_URL)}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Password sign-ins (the API's and the admin's) are throttled: past this many failures in a
# window, per account or per client address, they are refused until the window ends.
AUTHENTICATION_BACKENDS = ["accounts.backends.ThrottledModelBackend"]
SIGN_IN_WINDOW_SECONDS = env_int("SIGN_IN_WINDOW_SECONDS", 900)
SIGN_IN_FAILURES_PER_ACCOUNT = env_int("SIGN_IN_FAILURES_PER_ACCOUNT", 10)
SIGN_IN_FAILURES_PER_ADDRESS = env_int("SIGN_IN_FAILURES_PER_ADDRESS", 50)
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# Bodies above this answer 413 before they are read (gateway.middleware.BodySizeLimit, in front
# of Django's ASGI handler); Django's own limit stands behind it for other entry points.
MAX_REQUEST_BODY_BYTES = env_int("MAX_REQUEST_BODY_BYTES", 4 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES
# A request's head (its request line and headers) over this size or count, or slower than this to
# arrive, is refused by the server itself (gateway/server.py), as a reverse proxy would.
MAX_REQUEST_HEADER_BYTES = env_int("MAX_REQUEST_HEADER_BYTES", 64 * 1024)
MAX_REQUEST_HEADERS = env_int("MAX_REQUEST_HEADERS", 100)
REQUEST_HEADER_TIMEOUT_SECONDS = float(env("REQUEST_HEADER_TIMEOUT_SECONDS", "30"))

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "gateway.auth.APIKeyAuthentication",
        "gateway.auth.JWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "common.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        *(["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    ],
    "DEFAULT_PARSER_CLASSES": ["common.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "common.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 30)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("JWT_REFRESH_DAYS", 7)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "ALGORITHM": "HS256",
    "SIGNING_KEY": SECRET_KEY,
    # accounts.tokens adds what ends a token: a password change, a sign-out, the session's age.
    "TOKEN_OBTAIN_SERIALIZER": "accounts.serializers.SignInSerializer",
    "TOKEN_REFRESH_SERIALIZER": "accounts.serializers.RefreshSerializer",
    "TOKEN_VERIFY_SERIALIZER": "accounts.serializers.VerifySerializer",
    "TOKEN_BLACKLIST_SERIALIZER": "accounts.serializers.SignOutSerializer",
}
# Refreshing never carries a session past this long after its sign-in.
JWT_SESSION_MAX = timedelta(days=env_int("JWT_SESSION_MAX_DAYS", 30))

# Tokens from an outside identity provider (RS256), accepted beside the gateway's own.
JWT_ISSUER = env("JWT_ISSUER")
if len(JWT_ISSUER) > 255:  # accounts.OutsideIdentity.issuer
    raise ImproperlyConfigured("JWT_ISSUER must be at most 255 characters.")
JWT_AUDIENCE = env("JWT_AUDIENCE")
JWT_VERIFYING_KEY = env("JWT_VERIFYING_KEY").replace("\\n", "\n")
JWT_JWKS_URL = env("JWT_JWKS_URL")
# The claim whose value begins the username of an account made for a new outside identity.
JWT_USERNAME_CLAIM = env("JWT_USERNAME_CLAIM", "sub")

SPECTACULAR_SETTINGS = {
    "TITLE": "LLM Gateway API",
    "DESCRIPTION": "Dialogs, model catalog, agents, quotas and usage, and vendor-compatible endpoints.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and ReDoc from the gateway's own static files (drf-spectacular-sidecar), not a
    # CDN; templates/redoc.html drops ReDoc's Google Fonts.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "gateway.schema.add_errors_and_completion_paths",
    ],
}

# The quota a new user gets; staff edit each user's in the admin or the admin API.
DEFAULT_QUOTA: dict[str, Any] = {
    "token_limit": env_int("DEFAULT_TOKEN_LIMIT", 1_000_000),
    "usd_limit": Decimal(env("DEFAULT_USD_LIMIT")) if env("DEFAULT_USD_LIMIT") else None,
    "period": env("DEFAULT_QUOTA_PERIOD", "monthly"),
    "requests_per_minute": env_int("DEFAULT_REQUESTS_PER_MINUTE", 60),
    "tokens_per_minute": env_int_or_none("DEFAULT_TOKENS_PER_MINUTE"),
}
# A reservation is a lease its server process renews every quarter of this while the call runs;
# a lease that lapses (the process died) is released by the other processes (billing.leases).
RESERVATION_LEASE_SECONDS = env_int("RESERVATION_LEASE_SECONDS", 60)

# Vendor calls: the SDKs' own retries are off; the gateway retries with its own bound.
PROVIDER_TIMEOUT_SECONDS = float(env("PROVIDER_TIMEOUT_SECONDS", "120"))
PROVIDER_MAX_RETRIES = env_int("PROVIDER_MAX_RETRIES", 2)
PROVIDER_RETRY_BASE_SECONDS = float(env("PROVIDER_RETRY_BASE_SECONDS", "0.5"))
# The longest a vendor call may take in all, its retries and every chunk of a stream included
# (PROVIDER_TIMEOUT_SECONDS bounds each wait for the vendor, not the whole call).
PROVIDER_MAX_CALL_SECONDS = float(env("PROVIDER_MAX_CALL_SECONDS", "600"))
# Hosts ("host" or "host:port", comma-separated) that may be sent OPENAI_API_KEY or
# ANTHROPIC_API_KEY besides the vendors' own APIs and the hosts of OPENAI_BASE_URL /
# ANTHROPIC_BASE_URL (llm_models.vendor_keys).
PROVIDER_ALLOWED_KEY_HOSTS = [h.strip() for h in env("PROVIDER_ALLOWED_KEY_HOSTS").split(",") if h.strip()]

# /metrics (common.metrics) answers requests from these addresses (comma-separated; empty: none),
# and requests with `Authorization: Bearer <METRICS_TOKEN>` when that is set; anyone else gets a 404.
METRICS_ALLOWED_IPS = [ip.strip() for ip in env("METRICS_ALLOWED_IPS", "127.0.0.1").split(",") if ip.strip()]
METRICS_TOKEN = env("METRICS_TOKEN")
# One JSON line per call on stdout (logger gateway.requests; docs/operations.md); REQUEST_LOG=0 turns it off.
REQUEST_LOG = env_bool("REQUEST_LOG", True)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "bare": {"format": "%(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "stdout": {"class": "logging.StreamHandler", "formatter": "bare", "stream": "ext://sys.stdout"},
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.request": {"level": "ERROR"},
        # httpx2 (the vendor SDKs' HTTP stack) logs every request at INFO: too much for a gateway.
        "httpx2": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        # Each line is already JSON: only the message, on stdout, not again through the root's handler.
        "gateway.requests": {
            "handlers": ["stdout"],
            "level": "INFO" if REQUEST_LOG else "WARNING",
            "propagate": False,
        },
    },
}
