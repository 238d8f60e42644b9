"""Lanthorn's settings: one file, driven by environment variables.

Every value has a default that works on a single machine (SQLite, Redis on
127.0.0.1:6379, files under ./var). A bad value fails at start-up, loudly.
"""

import os
from pathlib import Path

import dj_database_url

from lanthorn.redis_server import default_url as default_redis_url

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: str) -> bool:
    value = os.getenv(name, default).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{name}={value!r} is not a boolean (use true or false)")


def envint(name: str, default: str) -> int:
    value = os.getenv(name, default)
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not an integer") from None


def envfloat(name: str, default: str) -> float:
    value = os.getenv(name, default)
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a number") from None


LANTHORN_HOME = Path(os.getenv("LANTHORN_HOME", str(BASE_DIR / "var"))).resolve()
LANTHORN_HOME.mkdir(parents=True, exist_ok=True)

SECRET_KEY = os.getenv("SECRET_KEY", "")
if not SECRET_KEY:
    # One random key per installation, kept next to the data it protects.
    _key_file = LANTHORN_HOME / "secret_key"
    if not _key_file.exists():
        import secrets

        _key_file.write_text(secrets.token_urlsafe(50))
        _key_file.chmod(0o600)
    SECRET_KEY = _key_file.read_text().strip()

DEBUG = envbool("DEBUG", "false")
ALLOWED_HOSTS = [h.strip() for h in os.getenv("ALLOWED_HOSTS", "*").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [o for o in os.getenv("CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "django_htmx",
    "core",
    "console",
    "inference",
    "registry",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "servestatic.middleware.ServeStaticMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "lanthorn.urls"
ASGI_APPLICATION = "lanthorn.asgi.application"

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

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{LANTHORN_HOME / 'lanthorn.sqlite3'}", conn_max_age=600
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The server, the worker and the CLI share one file: WAL lets them read while one writes.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    DATABASES["default"]["TEST"] = {"NAME": str(LANTHORN_HOME / "test.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = LANTHORN_HOME / "static"
SERVESTATIC_USE_FINDERS = True  # serve static files without a collectstatic step
STATIC_ROOT.mkdir(parents=True, exist_ok=True)

# Redis carries the Celery queues, the channel layer and the worker heartbeats. The default
# database number comes from LANTHORN_HOME (see lanthorn/redis_server.py).
REDIS_URL = os.getenv("REDIS_URL") or default_redis_url(LANTHORN_HOME)

# Redis pub/sub: a message costs one PUBLISH and one read, which matters when every few tokens
# of an answer cross the layer (the core layer spends several Redis commands per message).
# A server subscribes to a request's channel before it enqueues the request.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL]},
    }
}

CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "lanthorn"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "console.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "EXCEPTION_HANDLER": "core.errors.openai_exception_handler",
    "UNAUTHENTICATED_USER": None,
}

# Inference.
# Seconds a request waits without any word from a worker before it fails.
LANTHORN_WORKER_TIMEOUT = envfloat("LANTHORN_WORKER_TIMEOUT", "120")
# Seconds after which any request fails, however busy its worker (a hard deadline).
LANTHORN_REQUEST_TIMEOUT = envfloat("LANTHORN_REQUEST_TIMEOUT", "900")
# Seconds after which a worker that stopped sending heartbeats counts as dead.
LANTHORN_HEARTBEAT_TTL = envint("LANTHORN_HEARTBEAT_TTL", "15")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.getenv("LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}, "httpx": {"level": "WARNING"}},
}

# Pulls: how often a broken download is retried (with back-off doubling from
# LANTHORN_PULL_BACKOFF seconds), and how long a connection may send nothing before
# it counts as stalled.
LANTHORN_PULL_RETRIES = envint("LANTHORN_PULL_RETRIES", "6")
LANTHORN_PULL_BACKOFF = envfloat("LANTHORN_PULL_BACKOFF", "1")
LANTHORN_PULL_STALL_TIMEOUT = envfloat("LANTHORN_PULL_STALL_TIMEOUT", "30")
# huggingface_hub (hf:// pulls) sends usage statistics to the Hub unless told not to.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# The API key presented to other Lanthorn servers by `lanthorn://` pulls that do not pass one.
LANTHORN_REMOTE_KEY = os.getenv("LANTHORN_REMOTE_KEY", "")

# Batching and the response cache (inference.engine, inference.answer_cache).
# Which of a model's `max_workers` this worker process is (set by `lanthorn worker --index`): worker
# N serves and preloads the models whose max_workers is more than N.
LANTHORN_WORKER_INDEX = envint("LANTHORN_WORKER_INDEX", "0")
