"""Lanthorn's settings: one file, driven by environment variables.

Every value has a default that works on a single machine (SQLite, Redis on
127.0.0.1:6379, files under ./var). A bad value fails at start-up, loudly.
"""

import os
from pathlib import Path

import dj_database_url
from dotenv import load_dotenv

from lanthorn.redis_server import default_url as default_redis_url

BASE_DIR = Path(__file__).resolve().parent.parent

# An optional env file (docs/configuration.md): LANTHORN_ENV_FILE, else `.env` in the project
# directory. What the environment sets already wins over the file.
_env_file = os.getenv("LANTHORN_ENV_FILE")
if _env_file and not Path(_env_file).is_file():
    raise ValueError(f"LANTHORN_ENV_FILE={_env_file!r} is not a file")
load_dotenv(_env_file or BASE_DIR / ".env", override=False)


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


def envchoice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.getenv(name, default).strip().lower()
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(choices)}")
    return value


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.getenv(name, default).split(",") if item.strip()]


LANTHORN_HOME = Path(os.getenv("LANTHORN_HOME", str(BASE_DIR / "var"))).resolve()
# Owner-only from the start: the database, the secret key, the blobs live here, and other users
# of the machine have no business reading them.
LANTHORN_HOME.parent.mkdir(parents=True, exist_ok=True)
LANTHORN_HOME.mkdir(mode=0o700, exist_ok=True)

SECRET_KEY = os.getenv("SECRET_KEY", "")
if not SECRET_KEY:
    # One random key per installation, kept next to the data it protects.
    _key_file = LANTHORN_HOME / "secret_key"
    if not _key_file.exists():
        import secrets

        try:
            _fd = os.open(_key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it just now
            pass
        else:
            with os.fdopen(_fd, "w") as _f:
                _f.write(secrets.token_urlsafe(50))
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
    "axes",
    "drf_spectacular",
    "core",
    "console",
    "inference",
    "playground",
    "registry",
    "audit",
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
    "core.actions.OriginMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks
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
                "console.access.navigation",
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
    # Created owner-only before SQLite creates it with the umask's bits (its -wal and -shm follow it).
    os.close(os.open(DATABASES["default"]["NAME"], os.O_CREAT | os.O_WRONLY, 0o600))
    # The server, the worker and the CLI share one file: WAL lets them read while one writes.
    # `timeout`: seconds a write waits for another's lock. Options in DATABASE_URL's query
    # (sqlite:///path?timeout=5) win.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        **DATABASES["default"].get("OPTIONS", {}),
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
    "EXCEPTION_HANDLER": "core.drf.openai_exception_handler",
    "UNAUTHENTICATED_USER": None,
}

# Inference.
# Seconds a request waits without any word from a worker before it fails.
LANTHORN_WORKER_TIMEOUT = envfloat("LANTHORN_WORKER_TIMEOUT", "120")
# Seconds after which any request fails, however busy its worker (a hard deadline).
LANTHORN_REQUEST_TIMEOUT = envfloat("LANTHORN_REQUEST_TIMEOUT", "900")
# Seconds after which a worker that stopped sending heartbeats counts as dead (it beats every
# third of it): a dead worker's requests fail within about this long.
LANTHORN_HEARTBEAT_TTL = envint("LANTHORN_HEARTBEAT_TTL", "4")
# Seconds a usage row that the database did not take (locked, restarting, a connection cut) is
# retried in the background; then it is logged at ERROR, whole (inference/services.py).
LANTHORN_USAGE_RETRY_WINDOW = envfloat("LANTHORN_USAGE_RETRY_WINDOW", "300")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": envchoice("LOG_LEVEL", "info", ("debug", "info", "warning", "error")).upper()},
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

# Hardening: limits on what a request may send (core/http.py), for every HTTP route.
# The largest request body accepted, in bytes (413 above it).
LANTHORN_MAX_BODY_BYTES = envint("LANTHORN_MAX_BODY_BYTES", str(4 * 1024 * 1024))
# Seconds a client has to send the whole body (408 after).
LANTHORN_BODY_TIMEOUT = envfloat("LANTHORN_BODY_TIMEOUT", "30")
DATA_UPLOAD_MAX_MEMORY_SIZE = LANTHORN_MAX_BODY_BYTES
# Caps on what one completion request may ask (400 naming the field above them).
LANTHORN_MAX_MESSAGES = envint("LANTHORN_MAX_MESSAGES", "512")
LANTHORN_MAX_MESSAGE_CHARS = envint("LANTHORN_MAX_MESSAGE_CHARS", "262144")  # a message, or a prompt
LANTHORN_MAX_STOP_CHARS = envint("LANTHORN_MAX_STOP_CHARS", "256")

# Deployment defaults. Without LANTHORN_ENV the local defaults stay easy (http, any host);
# LANTHORN_ENV=production (behind a TLS proxy that sets X-Forwarded-Proto) turns on what
# `manage.py check --deploy` asks for and needs ALLOWED_HOSTS to name the server.
LANTHORN_ENV = os.getenv("LANTHORN_ENV", "local").strip().lower()
if LANTHORN_ENV not in ("local", "production"):
    raise ValueError(f"LANTHORN_ENV={LANTHORN_ENV!r} is neither local nor production")
if LANTHORN_ENV == "production":
    if DEBUG:
        raise ValueError("LANTHORN_ENV=production with DEBUG=true: turn DEBUG off")
    if not ALLOWED_HOSTS or "*" in ALLOWED_HOSTS:
        raise ValueError("LANTHORN_ENV=production needs ALLOWED_HOSTS set to the server's host names")
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", "true")
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # local health checks speak plain http
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", "31536000")
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", "true")
    CSRF_TRUSTED_ORIGINS = CSRF_TRUSTED_ORIGINS or [f"https://{h.lstrip('.')}" for h in ALLOWED_HOSTS]

# Sign-in is rate limited by django-axes: LANTHORN_LOGIN_FAILURES failed attempts for one
# user name from one address lock that pair out for LANTHORN_LOGIN_COOLOFF minutes.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = envint("LANTHORN_LOGIN_FAILURES", "5")
AXES_COOLOFF_TIME = envfloat("LANTHORN_LOGIN_COOLOFF", "15") / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
AXES_IPWARE_PROXY_COUNT = 1 if LANTHORN_ENV == "production" else None

# The OpenAPI 3 schema of the HTTP API (drf-spectacular), at /api/schema/ and /api/docs/.
REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"] = "drf_spectacular.openapi.AutoSchema"
SPECTACULAR_SETTINGS = {
    "TITLE": "Lanthorn API",
    "DESCRIPTION": "An OpenAI-compatible API, a model registry and a usage trail. Authenticate with "
                   "`Authorization: Bearer <key>`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "inference.openapi.add_completion_endpoints"],
    "SWAGGER_UI_DIST": "/static/vendor/swagger-ui",
    "SWAGGER_UI_FAVICON_HREF": "/static/vendor/swagger-ui/favicon-32x32.png",
}

# Pulls and their peers (registry/sources.py). Redirects of http(s) pulls to loopback, link-local
# or private addresses are refused unless LANTHORN_PULL_ALLOW_PRIVATE is true. The remote API key
# travels only over HTTPS, to loopback, or to the peers (host:port) in LANTHORN_PULL_PEERS.
# LANTHORN_PULL_LOCAL_DIRS: the directories that local-path pulls asked through the API, the console
# or a worker may read (comma-separated); unset: LANTHORN_HOME/imports alone, made owner-only here.
# `lanthorn pull PATH` and `lanthorn import` at the machine's shell read any path themselves.
LANTHORN_PULL_ALLOW_PRIVATE = envbool("LANTHORN_PULL_ALLOW_PRIVATE", "false")
LANTHORN_PULL_PEERS = [p.strip() for p in os.getenv("LANTHORN_PULL_PEERS", "").split(",") if p.strip()]
LANTHORN_PULL_LOCAL_DIRS = envlist("LANTHORN_PULL_LOCAL_DIRS")
if not LANTHORN_PULL_LOCAL_DIRS:
    (LANTHORN_HOME / "imports").mkdir(mode=0o700, exist_ok=True)

# The gRPC API (`lanthorn grpc`, started by `make run`): where it listens.
LANTHORN_GRPC_HOST = os.getenv("LANTHORN_GRPC_HOST") or os.getenv("LANTHORN_HOST", "127.0.0.1")
LANTHORN_GRPC_PORT = envint("LANTHORN_GRPC_PORT", "50051")

# Audit trail. Prompts and answers are recorded only when LANTHORN_AUDIT_CONTENT is true; they are
# then encrypted with LANTHORN_CONTENT_KEY (a Fernet key: `python -c "from cryptography.fernet
# import Fernet; print(Fernet.generate_key().decode())"`) and deleted after LANTHORN_AUDIT_CONTENT_DAYS.
LANTHORN_AUDIT_CONTENT = envbool("LANTHORN_AUDIT_CONTENT", "false")
LANTHORN_CONTENT_KEY = os.getenv("LANTHORN_CONTENT_KEY", "")
LANTHORN_AUDIT_CONTENT_DAYS = envint("LANTHORN_AUDIT_CONTENT_DAYS", "30")
if LANTHORN_AUDIT_CONTENT:
    if not LANTHORN_CONTENT_KEY:
        raise ValueError("LANTHORN_AUDIT_CONTENT=true needs LANTHORN_CONTENT_KEY (a Fernet key) to encrypt "
                         "prompts and answers")
    from cryptography.fernet import Fernet

    try:
        Fernet(LANTHORN_CONTENT_KEY)
    except ValueError:
        raise ValueError("LANTHORN_CONTENT_KEY is not a Fernet key (32 url-safe base64-encoded bytes)") from None
# Operations: scale-out, metrics, logs, the port (docs/configuration.md, docs/operations.md).
# Where `lanthorn run` listens; `lanthorn doctor` checks that the port is free or Lanthorn's.
LANTHORN_HOST = os.getenv("LANTHORN_HOST", "127.0.0.1")
LANTHORN_PORT = envint("LANTHORN_PORT", "8000")
if not 0 < LANTHORN_PORT < 65536:
    raise ValueError(f"LANTHORN_PORT={LANTHORN_PORT} is not a port number (1-65535)")
# Web processes behind that port (uvicorn's workers): each serves requests on its own core.
# Measured on 2 cores (bench/cache.py, alternated in one hour): 147-179 answers a second from the
# response cache with one, 155-239 (median 205) with two.
LANTHORN_WEB_PROCESSES = envint("LANTHORN_WEB_PROCESSES", "2")
if not 1 <= LANTHORN_WEB_PROCESSES <= 64:
    raise ValueError(f"LANTHORN_WEB_PROCESSES={LANTHORN_WEB_PROCESSES} is not between 1 and 64")
# The models this worker serves (`lanthorn worker --models a,b` sets it); empty: every model.
LANTHORN_WORKER_MODELS = envlist("LANTHORN_WORKER_MODELS")
# Where a worker whose LANTHORN_HOME lacks a model's file pulls it from (`lanthorn://` from this
# Lanthorn's web host, e.g. http://web-host:8000; the key is LANTHORN_REMOTE_KEY). Empty: the
# blob store is shared (one volume or NFS) and the file must be there.
LANTHORN_PEER = os.getenv("LANTHORN_PEER", "").rstrip("/")
# GET /metrics: allowed with `Authorization: Bearer <LANTHORN_METRICS_TOKEN>`, or from these
# addresses or networks (comma-separated, CIDR allowed).
LANTHORN_METRICS_TOKEN = os.getenv("LANTHORN_METRICS_TOKEN", "")
LANTHORN_METRICS_ALLOW = envlist("LANTHORN_METRICS_ALLOW", "127.0.0.1,::1")
try:
    import ipaddress

    METRICS_ALLOW_NETWORKS = [ipaddress.ip_network(a, strict=False) for a in LANTHORN_METRICS_ALLOW]
except ValueError as exc:
    raise ValueError(f"LANTHORN_METRICS_ALLOW: {exc}") from None
# prometheus_client's multi-process mode: every process of this installation writes its metrics
# here (`lanthorn run` clears it at launch). Set before prometheus_client is imported.
PROMETHEUS_MULTIPROC_DIR = Path(os.getenv("PROMETHEUS_MULTIPROC_DIR", str(LANTHORN_HOME / "metrics")))
PROMETHEUS_MULTIPROC_DIR.mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(PROMETHEUS_MULTIPROC_DIR)
# `text` (default) or `json`: one JSON object per line, with the request id.
LANTHORN_LOG_FORMAT = envchoice("LANTHORN_LOG_FORMAT", "text", ("text", "json"))
LOGGING["filters"] = {"request_id": {"()": "core.logs.RequestIdFilter"},
                      "not_ready": {"()": "core.logs.NotReadyFilter"}}
LOGGING["loggers"]["django.request"] = {"filters": ["not_ready"]}
LOGGING["formatters"] = {
    "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    "json": {"()": "pythonjsonlogger.json.JsonFormatter",
             "fmt": "%(asctime)s %(levelname)s %(name)s %(request_id)s %(process)d %(message)s",
             "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"}},
}
LOGGING["handlers"]["console"].update(formatter=LANTHORN_LOG_FORMAT, filters=["request_id"])
# Every HTTP response carries the request's id (X-Request-Id), and its log lines too.
MIDDLEWARE.insert(0, "core.logs.RequestIdMiddleware")
# `lanthorn doctor` reports a model's queue as backing up past this many waiting requests.
LANTHORN_QUEUE_BACKLOG = envint("LANTHORN_QUEUE_BACKLOG", "20")

# Batching and the response cache (inference.engine, inference.answer_cache).
# Which of a model's `max_workers` this worker process is (set by `lanthorn worker --index`): worker
# N serves and preloads the models whose max_workers is more than N.
LANTHORN_WORKER_INDEX = envint("LANTHORN_WORKER_INDEX", "0")
# Whether this process is a model worker (set by `lanthorn worker` without --jobs): it imports
# inference's tasks alone, since registry's go to the jobs worker (lanthorn/celery.py).
LANTHORN_MODEL_WORKER = envbool("LANTHORN_MODEL_WORKER", "false")
# Whether the engine computes the output layer with its own kernel where the CPU and model allow
# (inference/head.py); off, llama.cpp computes it.
LANTHORN_OUTPUT_KERNEL = envbool("LANTHORN_OUTPUT_KERNEL", "true")
# Whether a worker computes the layers' Q5_0, Q8_0, Q4_K and Q6_K matmuls with Lanthorn's kernel
# where the CPU has AVX2 (inference/matmul.py); off, ggml computes them.
LANTHORN_LAYER_KERNEL = envbool("LANTHORN_LAYER_KERNEL", "true")
# Whether a worker computes the attention of prompt pieces (64 tokens or more) with Lanthorn's
# kernel where the CPU has AVX2 (inference/attention.py); off, ggml computes it.
LANTHORN_ATTENTION_KERNEL = envbool("LANTHORN_ATTENTION_KERNEL", "true")
