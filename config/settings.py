"""Switchboard settings: every value comes from an environment variable with a safe default.

The README lists every variable. With none set, the project runs on its embedded default: a
PostgreSQL with pgvector started by the project itself and a broker that needs no server.
"""

from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from config.env import (
    ConfigError,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("SWITCHBOARD_VAR_DIR", str(BASE_DIR / "var")))

# --- core -------------------------------------------------------------------------------------

DEBUG = env_bool("DEBUG", False)
# Production is a deployment on a real database (DATABASE_URL) or one that says so explicitly;
# the embedded default is a local installation and may use the development key.
PRODUCTION = env_str("SWITCHBOARD_ENV", "production" if env_str("DATABASE_URL") else "local")
if PRODUCTION not in {"production", "local"}:
    raise ConfigError(f"SWITCHBOARD_ENV={PRODUCTION!r} must be 'production' or 'local'")
PRODUCTION = PRODUCTION == "production"
_INSECURE_KEY = "insecure-development-key-do-not-use-in-production"
SECRET_KEY = env_str("SECRET_KEY", _INSECURE_KEY)
if PRODUCTION and SECRET_KEY == _INSECURE_KEY and not DEBUG:
    raise ConfigError(
        "SECRET_KEY is not set. Production refuses the built-in development key: set SECRET_KEY "
        "to a long random value."
    )
if len(SECRET_KEY) < 32:
    raise ConfigError("SECRET_KEY must be at least 32 characters long")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],.localhost,testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("SWITCHBOARD_BEHIND_TLS_PROXY") else None
)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# --- apps: what lives in the public schema, what in every tenant's schema ------------------------

SHARED_APPS = [
    "django_tenants",
    "tenants",
    "gateway",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
]
TENANT_APPS = [
    "prompts",
    "usage",
    "audit",
    "retrieval",
    "jobs",
    "cache",
    "conversations",
]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
# New tenants run the tenant migrations (about 0.2 s, whatever the number of tenants). Cloning
# this migrated template schema instead is faster for the first few tenants but slows down as
# the catalog grows (BENCHMARKS.md), so it is off by default.
TENANT_BASE_SCHEMA = "tenant_template"
TENANT_CREATION_FAKES_MIGRATIONS = env_bool("SWITCHBOARD_CLONE_TENANT_SCHEMA", False)
TENANT_LIMIT_SET_CALLS = True
PUBLIC_SCHEMA_NAME = "public"
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]

MIDDLEWARE = [
    "config.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "tenants.middleware.TenantResolutionMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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
                "tenants.context.console",
            ],
        },
    },
]

# --- database ---------------------------------------------------------------------------------


def _database_from_url(url: str) -> dict:
    parsed = urlparse(url)
    if parsed.scheme not in {"postgres", "postgresql", "postgresql+psycopg"}:
        raise ConfigError(f"DATABASE_URL must be a postgresql:// URL, not {parsed.scheme!r}")
    query = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
    host = query.pop("host", None) or unquote(parsed.hostname or "")
    name = unquote(parsed.path.lstrip("/"))
    if not name:
        raise ConfigError("DATABASE_URL names no database (postgresql://user:pass@host:5432/NAME)")
    options: dict = dict(query)
    pool_size = env_int("DATABASE_POOL_MAX_SIZE", 20, minimum=0)
    if pool_size:
        options["pool"] = {
            "min_size": env_int("DATABASE_POOL_MIN_SIZE", 1, minimum=0),
            "max_size": pool_size,
            "timeout": env_float("DATABASE_POOL_TIMEOUT", 10.0, minimum=0.1),
        }
    return {
        "ENGINE": "django_tenants.postgresql_backend",
        "NAME": name,
        "USER": unquote(parsed.username or ""),
        "PASSWORD": unquote(parsed.password or ""),
        "HOST": host,
        "PORT": str(parsed.port or ""),
        "OPTIONS": options,
        "CONN_MAX_AGE": 0,
        "TEST": {"NAME": env_str("DATABASE_TEST_NAME", f"test_{name}")},
    }


DATABASE_URL = env_str("DATABASE_URL")
EMBEDDED_DATABASE = not DATABASE_URL
EMBEDDED_DATABASE_DIR = VAR_DIR / "pgdata"
if EMBEDDED_DATABASE:
    from config.embedded import embedded_database_url

    DATABASE_URL = embedded_database_url(EMBEDDED_DATABASE_DIR)

DATABASES = {"default": _database_from_url(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- cache / shared state ---------------------------------------------------------------------

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- celery -----------------------------------------------------------------------------------

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
EMBEDDED_BROKER = not CELERY_BROKER_URL
EMBEDDED_BROKER_DIR = Path(env_str("SWITCHBOARD_BROKER_DIR", str(VAR_DIR / "broker")))
if EMBEDDED_BROKER:
    CELERY_BROKER_URL = "filesystem://"
    for _sub in ("in", "processed"):
        (EMBEDDED_BROKER_DIR / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(EMBEDDED_BROKER_DIR / "in"),
        "data_folder_out": str(EMBEDDED_BROKER_DIR / "in"),
        "processed_folder": str(EMBEDDED_BROKER_DIR / "processed"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {}
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = "interactive"

# --- auth, i18n, static -----------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "console:home"
LOGOUT_REDIRECT_URL = "console:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]

# --- REST API ---------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["tenants.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["tenants.auth.HasApiKey"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Switchboard API",
    "DESCRIPTION": "Multi-tenant AI gateway: OpenAI-compatible endpoints, feature runs, "
    "documents and search, usage.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # Served from our own static files: the console must work with no internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Switchboard ------------------------------------------------------------------------------

DATA_UPLOAD_MAX_MEMORY_SIZE = env_int(
    "SWITCHBOARD_MAX_REQUEST_BYTES", 2 * 1024 * 1024, minimum=1024
)
SWITCHBOARD_KEY_CACHE_SECONDS = env_float("SWITCHBOARD_KEY_CACHE_SECONDS", 5.0, minimum=0)
SWITCHBOARD_MODELS_FILE = env_str(
    "SWITCHBOARD_MODELS_FILE", str(BASE_DIR / "config" / "models.yaml")
)
SWITCHBOARD_SIMULATOR_URL = env_str("SWITCHBOARD_SIMULATOR_URL", "http://127.0.0.1:8790")
SWITCHBOARD_CALL_DEADLINE_SECONDS = env_float("SWITCHBOARD_CALL_DEADLINE_SECONDS", 60.0, minimum=1)
SWITCHBOARD_CIRCUIT_FAILURES = env_int("SWITCHBOARD_CIRCUIT_FAILURES", 5, minimum=1)
SWITCHBOARD_CIRCUIT_COOLDOWN_SECONDS = env_float(
    "SWITCHBOARD_CIRCUIT_COOLDOWN_SECONDS", 30.0, minimum=0.1
)
SWITCHBOARD_RETRY_BASE_SECONDS = env_float("SWITCHBOARD_RETRY_BASE_SECONDS", 0.5, minimum=0)
SWITCHBOARD_RETRY_CAP_SECONDS = env_float("SWITCHBOARD_RETRY_CAP_SECONDS", 8.0, minimum=0)
SWITCHBOARD_EMBEDDER = env_str("SWITCHBOARD_EMBEDDER", "local")
# Documents: the largest accepted upload (413 beyond), how long an ingesting worker holds a
# document before another may take over, and HNSW's ef_search for vector retrieval.
SWITCHBOARD_MAX_DOCUMENT_BYTES = env_int(
    "SWITCHBOARD_MAX_DOCUMENT_BYTES", 10 * 1024 * 1024, minimum=1024
)
SWITCHBOARD_INGEST_LEASE_SECONDS = env_int("SWITCHBOARD_INGEST_LEASE_SECONDS", 120, minimum=5)
SWITCHBOARD_SEARCH_EF_SEARCH = env_int("SWITCHBOARD_SEARCH_EF_SEARCH", 100, minimum=10)
# Usage and audit records are written by a background thread right after the response (the
# reservation written at admission covers a crash in between); false writes them inline.
SWITCHBOARD_DEFERRED_RECORDING = env_bool("SWITCHBOARD_DEFERRED_RECORDING", True)
SWITCHBOARD_MAX_JOBS_IN_FLIGHT = env_int("SWITCHBOARD_MAX_JOBS_IN_FLIGHT", 200, minimum=1)
SWITCHBOARD_JOB_DEADLINE_SECONDS = env_int("SWITCHBOARD_JOB_DEADLINE_SECONDS", 900, minimum=1)
SWITCHBOARD_JOB_LEASE_SECONDS = env_int("SWITCHBOARD_JOB_LEASE_SECONDS", 300, minimum=1)
SWITCHBOARD_JOB_MAX_ATTEMPTS = env_int("SWITCHBOARD_JOB_MAX_ATTEMPTS", 3, minimum=1)
# Outbound webhooks refuse private, loopback and link-local addresses unless this is set.
SWITCHBOARD_WEBHOOKS_ALLOW_PRIVATE = env_bool("SWITCHBOARD_WEBHOOKS_ALLOW_PRIVATE", False)
SWITCHBOARD_WEBHOOK_DISABLE_AFTER = env_int("SWITCHBOARD_WEBHOOK_DISABLE_AFTER", 5, minimum=1)
SWITCHBOARD_ALERT_RATE_PERCENT = env_float("SWITCHBOARD_ALERT_RATE_PERCENT", 20.0, minimum=0)
SWITCHBOARD_ALERT_MIN_CALLS = env_int("SWITCHBOARD_ALERT_MIN_CALLS", 20, minimum=1)
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "switchboard@localhost")
SWITCHBOARD_METRICS_TOKEN = env_str("SWITCHBOARD_METRICS_TOKEN")
# Conversations: past this many tokens of verbatim turns, older turns are folded into a running
# summary by the summariser alias (a cheaper model), in a worker; the most recent
# SWITCHBOARD_CONVERSATION_RECENT_TOKENS stay verbatim.
SWITCHBOARD_CONVERSATION_TOKEN_BUDGET = env_int(
    "SWITCHBOARD_CONVERSATION_TOKEN_BUDGET", 3000, minimum=100
)
SWITCHBOARD_CONVERSATION_RECENT_TOKENS = env_int(
    "SWITCHBOARD_CONVERSATION_RECENT_TOKENS", 1000, minimum=50
)
SWITCHBOARD_SUMMARY_ALIAS = env_str("SWITCHBOARD_SUMMARY_ALIAS", "summarizer")
SWITCHBOARD_METRICS_TENANT_LABELS = env_bool("SWITCHBOARD_METRICS_TENANT_LABELS", True)

# --- logging: structured JSON with the request id ----------------------------------------------

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ConfigError(f"LOG_LEVEL={LOG_LEVEL!r} is not a logging level")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "config.logging.RequestIdFilter"}},
    "formatters": {"json": {"()": "config.logging.JsonFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "presidio-analyzer": {"level": "ERROR"},
        "pgserver": {"level": "WARNING"},
    },
}
