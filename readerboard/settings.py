"""Readerboard settings, read from the environment (12-factor).

Defaults give the embedded booth setup: SQLite in WAL mode, eager Celery and
the in-memory channel layer, so a single laptop needs nothing else.
Setting DATABASE_URL / REDIS_URL switches to PostgreSQL / Redis.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    """Return the environment variable `name` read as a boolean."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    """Return the environment variable `name` read as an integer."""
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_list(name: str, default: list[str]) -> list[str]:
    """Return a comma-separated environment variable as a list of strings."""
    value = os.environ.get(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
# Production mode: HTTPS-only cookies, HSTS, and a SECRET_KEY that must come from the environment.
PRODUCTION = env_bool("READERBOARD_PRODUCTION", False)
if PRODUCTION and DEBUG:
    # Silently dropping to the booth defaults would publish debug pages on a public URL.
    raise ImproperlyConfigured("DEBUG must be off when READERBOARD_PRODUCTION is on.")
DATA_DIR = Path(os.environ.get("READERBOARD_DATA_DIR", BASE_DIR / "var")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    # Production must say its key (directly or as a mounted secret file); the embedded
    # booth default generates one once and keeps it under the data dir so sessions survive restarts.
    key = os.environ.get("SECRET_KEY", "").strip()
    if not key and os.environ.get("SECRET_KEY_FILE"):
        key = Path(os.environ["SECRET_KEY_FILE"]).read_text().strip()
    if key:
        if PRODUCTION and (len(key) < 50 or len(set(key)) < 5 or key.startswith("django-insecure-")):
            raise ImproperlyConfigured(
                "SECRET_KEY is too weak for production: use at least 50 random characters, e.g. "
                "python -c 'import secrets; print(secrets.token_urlsafe(50))'."
            )
        return key
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY (or SECRET_KEY_FILE) must be set when READERBOARD_PRODUCTION is on.")
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
if PRODUCTION and not os.environ.get("ALLOWED_HOSTS"):
    raise ImproperlyConfigured("ALLOWED_HOSTS must name the public host(s) when READERBOARD_PRODUCTION is on.")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "channels",
    "viewer",
    "annotations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Before anything reads a body: an oversized one is a JSON 413, not an HTML page or an unbounded read.
    "readerboard.body_limit.BodySizeMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Innermost, so it sees view exceptions first: a database pool timeout is a 503, not a 500.
    "readerboard.overload.OverloadMiddleware",
]

ROOT_URLCONF = "readerboard.urls"
WSGI_APPLICATION = "readerboard.wsgi.application"
ASGI_APPLICATION = "readerboard.asgi.application"

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

# --- Database -------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    # Under ASGI (Daphne/Uvicorn) every request runs its view in a thread of its own, so per-thread
    # connections are unbounded: 200 booth readers made PostgreSQL refuse clients ("too many clients")
    # in the load test (benchmarks/load/). A pool per process bounds them; a burst waits for a connection.
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
    _pool_max = env_int("READERBOARD_DB_POOL_MAX", 16)
    if _pool_max > 0 and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": min(2, _pool_max),
            "max_size": _pool_max,
            "timeout": env_int("READERBOARD_DB_POOL_TIMEOUT_S", 30),
        }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("READERBOARD_SQLITE_PATH", str(DATA_DIR / "readerboard.sqlite3")),
            "OPTIONS": {
                # IMMEDIATE takes the write lock at BEGIN, so concurrent booth
                # writers queue on busy_timeout instead of failing mid-transaction.
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
# Parallel test runs (developers, CI, helpers) must not share a test database.
DATABASES["default"].setdefault("TEST", {})
if os.environ.get("READERBOARD_TEST_DB_NAME"):
    DATABASES["default"]["TEST"]["NAME"] = os.environ["READERBOARD_TEST_DB_NAME"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


# HTTP requests one server process takes on at once; beyond it a request is answered 503 + Retry-After
# at the door (readerboard/admission.py). 0 admits everything.
MAX_REQUESTS_IN_FLIGHT = env_int("READERBOARD_MAX_REQUESTS_IN_FLIGHT", 64)

# --- Redis, Celery, Channels ------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or "cache+memory://"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# A message taken by a worker that dies unacknowledged goes back to the queue after this long (Redis
# broker); fault tests shorten it. Keep it above the longest task, or a slow task runs twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("READERBOARD_CELERY_VISIBILITY_TIMEOUT", 3600)}
# Queuing from a web request while Redis is down must fail fast (the read is committed; the sweep
# catches up): the result backend otherwise retries for ~20 s inside every submit.
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"retry_policy": {"timeout": 2.0}}
# Heavy work goes to queues that scale separately (see docs/deploying.md).
CELERY_TASK_ROUTES = {
    "viewer.tasks.import_*": {"queue": "import"},
    "viewer.tasks.warm_*": {"queue": "images"},
    "annotations.consensus.tasks.*": {"queue": "consensus"},
    "annotations.exports.tasks.*": {"queue": "export"},
    "annotations.console.tasks.import_upload": {"queue": "import"},
}
CELERY_TASK_DEFAULT_QUEUE = "default"
# Celery beat (one process per deployment): a lost queue message or a Redis outage never loses
# a read, because this sweep recomputes every case whose consensus is missing or stale.
CELERY_BEAT_SCHEDULE = {
    "sweep-stale-consensus": {
        "task": "annotations.consensus.tasks.sweep_stale_consensus",
        "schedule": float(env_int("READERBOARD_CONSENSUS_SWEEP_S", 300)),
    },
}

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "readerboard",
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    # One process's memory: enough for the embedded booth (one server process). Sign-in attempt counters
    # must be shared by every web process, so production without Redis fails `check --deploy`
    # (annotations.checks).
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Auth -------------------------------------------------------------------
# Console (admin and researcher) passwords guard exports and accounts: Django's full validator set, 12
# characters at least. Reader PINs are not passwords and never pass through these (pin_credentials).
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Admin and researcher passwords use Django's default (PBKDF2); reader PINs a keyed HMAC written only by
# annotations.booth.pin_credentials (a PIN has at most 10^8 values: a key outside the database protects
# it offline, attempt limits online; see docs/security.md). Listed last, so it is never the default.
# ModelBackend checks passwords (console sign-in); readers' sessions are signed in through
# ReaderSessionBackend, which loads the reader profile with the user in one query.
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "annotations.auth_backends.ReaderSessionBackend",
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
    "annotations.booth.pin_credentials.PinHMACHasher",
]


def _pin_key() -> str:
    # Unset: derived from SECRET_KEY (pin_credentials.pin_key). Set it to keep PINs valid across a
    # SECRET_KEY rotation, or to keep the PIN key in a secret store of its own.
    key = os.environ.get("READERBOARD_PIN_KEY", "").strip()
    if not key and os.environ.get("READERBOARD_PIN_KEY_FILE"):
        key = Path(os.environ["READERBOARD_PIN_KEY_FILE"]).read_text().strip()
    if key and len(key) < 32:
        raise ImproperlyConfigured("READERBOARD_PIN_KEY must be at least 32 random characters.")
    return key


READERBOARD_PIN_KEY = _pin_key()
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"

# --- I18N / static ----------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Images collect static files at build time, outside the data volume.
STATIC_ROOT = Path(os.environ.get("READERBOARD_STATIC_ROOT") or DATA_DIR / "staticfiles")
# Uploaded files, DICOM instances and finished exports: the data dir by default; an
# S3-compatible bucket (AWS, MinIO, Ceph, ...) when READERBOARD_S3_BUCKET is set, so that
# web and worker machines share them without a shared disk. Paths inside a store are the
# same relative paths the records hold ("dicom/<study>/<series>/<sop>.dcm", "exports/...").
S3_BUCKET = os.environ.get("READERBOARD_S3_BUCKET", "")
if S3_BUCKET:
    _s3_options = {
        "bucket_name": S3_BUCKET,
        "endpoint_url": os.environ.get("READERBOARD_S3_ENDPOINT_URL") or None,
        "region_name": os.environ.get("READERBOARD_S3_REGION") or None,
        # Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the machine's role (boto3).
        "access_key": os.environ.get("READERBOARD_S3_ACCESS_KEY_ID") or None,
        "secret_key": os.environ.get("READERBOARD_S3_SECRET_ACCESS_KEY") or None,
        "addressing_style": os.environ.get("READERBOARD_S3_ADDRESSING_STYLE") or None,
        # Images may carry PHI: objects stay private, reachable only through short-lived signed URLs.
        "default_acl": None,
        "querystring_auth": True,
        "querystring_expire": env_int("READERBOARD_S3_URL_EXPIRE_S", 300),
        # A record's path names one object for ever; never overwrite it silently.
        "file_overwrite": False,
    }
    _s3_prefix = os.environ.get("READERBOARD_S3_PREFIX", "").strip("/")
    STORAGES = {
        name: {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {**_s3_options, "location": "/".join(filter(None, [_s3_prefix, folder]))},
        }
        for name, folder in (("default", "media"), ("dicom", ""), ("exports", ""))
    }
else:
    STORAGES = {
        "default": {"BACKEND": "readerboard.storage.DataDirStorage", "OPTIONS": {"subdirectory": "media"}},
        "dicom": {"BACKEND": "readerboard.storage.DataDirStorage"},
        "exports": {"BACKEND": "readerboard.storage.DataDirStorage"},
    }
STORAGES["staticfiles"] = {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"}
MEDIA_ROOT = DATA_DIR / "media"
WHITENOISE_USE_FINDERS = DEBUG

# --- REST framework ---------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PARSER_CLASSES": [
        "annotations.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # Sign-in requests per client address (annotations.booth.readers.check_attempt_rate).
    "DEFAULT_THROTTLE_RATES": {"login": "20/min", "signup": "20/min", "console": "20/min"},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Readerboard API",
    "DESCRIPTION": "Crowdsourced annotation of medical images: reading, consensus and export.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

# --- Readerboard ------------------------------------------------------------
READERBOARD = {
    "ZIP_MAX_UNCOMPRESSED_BYTES": env_int("READERBOARD_ZIP_MAX_BYTES", 4 * 1024**3),
    "ZIP_MAX_FILES": env_int("READERBOARD_ZIP_MAX_FILES", 20_000),
    "ZIP_MAX_RATIO": env_int("READERBOARD_ZIP_MAX_RATIO", 200),
    "UPLOAD_MAX_BYTES": env_int("READERBOARD_UPLOAD_MAX_BYTES", 2 * 1024**3),
    "LEASE_SECONDS": env_int("READERBOARD_LEASE_SECONDS", 300),
    # New versions of a read (corrections): at most this many per reader and case in any minute, and in all.
    "READ_VERSIONS_PER_MINUTE": env_int("READERBOARD_READ_VERSIONS_PER_MINUTE", 6),
    "MAX_READ_VERSIONS": env_int("READERBOARD_MAX_READ_VERSIONS", 50),
    "BOOTH_IDLE_SECONDS": env_int("READERBOARD_BOOTH_IDLE_SECONDS", 600),
    # How old other readers' counts may be in the rank a submit or page load answers with (leaderboard.standing).
    "STANDING_REFRESH_SECONDS": env_int("READERBOARD_STANDING_REFRESH_S", 2),
    # Which series a user may load images of (viewer/ asks; annotations/ knows tasks and roles).
    "SERIES_ACCESS_POLICY": "annotations.booth.image_access.visible_series",
    # Lesion mask proposals (POST /api/cases/<id>/mask-proposals/): per reader per minute, and the seconds one
    # proposal may compute before it is stopped (it holds a server worker meanwhile).
    "MASK_PROPOSALS_PER_MINUTE": env_int("READERBOARD_MASK_PROPOSALS_PER_MINUTE", 30),
    "MASK_PROPOSAL_TIME_BUDGET_S": env_int("READERBOARD_MASK_PROPOSAL_TIME_BUDGET_S", 8),
}
# The largest request body any endpoint takes (readerboard.body_limit answers 413 past it); upload chunks are 16 MiB.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("READERBOARD_MAX_REQUEST_BYTES", 50 * 1024 * 1024)

# --- Production strictness --------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("READERBOARD_SSL_REDIRECT", True)
    # Load balancers probe over plain HTTP inside the private network.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    # The TLS-terminating proxy (Caddy, nginx, a cloud load balancer) says the request was HTTPS.
    # Turn off only when the app is reachable without such a proxy, which must then not be the case.
    if env_bool("READERBOARD_TRUST_X_FORWARDED_PROTO", True):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("READERBOARD_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("READERBOARD_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("READERBOARD_HSTS_PRELOAD", True)
    # A booth session should not outlive the event: two weeks by default, configurable.
    SESSION_COOKIE_AGE = env_int("READERBOARD_SESSION_AGE_S", 14 * 24 * 3600)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # highdicom logs each module it copies at INFO; commands bring it back with -v 2.
    "loggers": {"django.request": {"level": "ERROR"}, "highdicom": {"level": "WARNING"}},
}
