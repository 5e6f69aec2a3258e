"""RRR settings: one module, read once from the environment with django-environ.

With no environment at all this is the embedded default: SQLite (WAL) under ``data/``, the in-memory
channel layer, django-q2's ORM broker, a local-memory cache and paper trading. ``DATABASE_URL`` and
``REDIS_URL`` switch to the scaled setup. ``DJANGO_ENV=production`` hardens everything and
refuses to start without ``SECRET_KEY`` and ``ALLOWED_HOSTS``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import sys
import tempfile
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from rrr_site import __version__

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")

ENVIRONMENTS = ("development", "production")
DJANGO_ENV = env.str("DJANGO_ENV", default="development").strip().lower()
if DJANGO_ENV not in ENVIRONMENTS:
    # A typo such as "prd" must not quietly run as development with DEBUG on.
    raise ImproperlyConfigured(
        f"DJANGO_ENV={env.str('DJANGO_ENV')!r} is not allowed; "
        f"use one of: {', '.join(ENVIRONMENTS)}"
    )
PRODUCTION = DJANGO_ENV == "production"
_TESTING = "PYTEST_VERSION" in os.environ  # set by pytest >= 8.2
DATA_DIR = Path(env.str("RRR_DATA_DIR", default=str(BASE_DIR / "data")))
RRR_VERSION = __version__


def _dev_secret_key(path: Path | None = None) -> str:
    """Return the development secret key, generating it once into ``data/``.

    Several processes may start at once on a fresh data folder (``runtrader`` and its worker,
    two engines): the key is written whole to a private temporary file and linked into place,
    which fails if another process got there first, so every process reads the same complete key
    (writing in place let a second process read an empty file, or two keys, the last one winning).
    """
    path = path or DATA_DIR / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".secret_key.", dir=path.parent)  # mode 0600
        try:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(64))
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    return path.read_text().strip()


if PRODUCTION:
    missing = [name for name in ("SECRET_KEY", "ALLOWED_HOSTS") if not env.str(name, default="")]
    if missing:
        raise ImproperlyConfigured(
            f"DJANGO_ENV=production requires {', '.join(missing)} in the environment"
        )
    SECRET_KEY = env.str("SECRET_KEY")
    DEBUG = False
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
else:
    SECRET_KEY = env.str("SECRET_KEY", default="") or _dev_secret_key()
    DEBUG = env.bool("DEBUG", default=True)
    ALLOWED_HOSTS = env.list(
        "ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"]
    )

CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # The admin with its ModelAdmins discovered on first use, not inside django.setup(): every
    # command starts without importing the apps' admin modules (rrr_site/admin_site.py).
    "rrr_site.admin_site.LazyAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "rest_framework_simplejwt.token_blacklist",
    "corsheaders",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_q",
    "django_prometheus",
    "monitoring",
    "marketdata",
    "trading",
    "risk",
    "models_ml",
    "backtesting",
    "research",
]
# Daphne's app only swaps `runserver` for its ASGI server (`make serve`), and importing it loads
# twisted (~0.6 s, a quarter of every command's start-up): installed for that command alone.
# runtrader --serve, deploy/ and the tests run daphne or uvicorn without it.
if sys.argv[1:2] == ["runserver"]:
    INSTALLED_APPS.insert(0, "daphne")

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "rrr_site.urls"
WSGI_APPLICATION = "rrr_site.wsgi.application"
ASGI_APPLICATION = "rrr_site.asgi.application"

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

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env.str("DATABASE_URL", default="")
if DATABASE_URL:
    _db = env.db_url("DATABASE_URL")
    if _db["ENGINE"] in {"django.db.backends.postgresql", "django.db.backends.postgresql_psycopg2"}:
        _db["ENGINE"] = "django_prometheus.db.backends.postgresql"
    # Tests open connections from executor threads; do not let them outlive each test.
    # The age serves long-lived threads (runtrader's database thread, the market-data writer,
    # workers); requests served over ASGI close theirs at the end, whatever the age (their
    # thread dies with them: monitoring/db_connections.py). Health checks replace a connection
    # the server dropped before it is used.
    _db.setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=0 if _TESTING else 60))
    _db["CONN_HEALTH_CHECKS"] = True
    # The web process (DB_POOL_MAX_SIZE=N on its unit): a psycopg pool of at most N connections.
    # Under ASGI each request runs in a thread of its own; a pooled connection goes back to the
    # pool when the request ends, instead of a new connection (and PostgreSQL backend) per
    # request or a kept-alive one per thread. Off (0) elsewhere: engines keep their connection.
    DB_POOL_MAX_SIZE = env.int("DB_POOL_MAX_SIZE", default=0)
    if DB_POOL_MAX_SIZE > 0 and "postgresql" in _db["ENGINE"]:
        _db.setdefault("OPTIONS", {})["pool"] = {
            "min_size": min(2, DB_POOL_MAX_SIZE),
            "max_size": DB_POOL_MAX_SIZE,
            "timeout": env.float("DB_POOL_TIMEOUT", default=10.0),  # then the request fails
        }
        _db["CONN_MAX_AGE"] = 0  # Django's pool refuses persistent connections
        # CONN_HEALTH_CHECKS (True, above) makes the pool check a connection as it hands it out
        # (ConnectionPool.check_connection, one empty statement): one the server dropped while it
        # sat in the pool (a restart, a failover, pg_terminate_backend) is replaced, not given to
        # a request to fail with a 500. The pool alone checks only connections given back.
    DATABASES = {"default": _db}
else:
    _sqlite_path = Path(env.str("SQLITE_PATH", default=str(DATA_DIR / "db" / "trading.db")))
    _sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django_prometheus.db.backends.sqlite3",
            "NAME": _sqlite_path,
            "OPTIONS": {
                # WAL: readers never block the writer. IMMEDIATE: no lock upgrades.
                "init_command": (
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000;"
                ),
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
            # A file, not memory: tests start runtrader/backfill subprocesses on the test DB.
            # Per process, so concurrent test runs on one machine never share it.
            "TEST": {"NAME": str(_sqlite_path.with_name(f"test_{os.getpid()}_trading.db"))},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer, cache, task broker -------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
                "prefix": "rrr",
                # Each process's stream hub takes every stream message on one channel
                # (monitoring/stream_hub.py): room for bursts while it is busy.
                "channel_capacity": {"stream-hub.*": 5000},
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "rrr",
        }
    }
else:
    # Channels' in-memory layer with a fan-out linear in the clients (monitoring/layers.py).
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "monitoring.layers.InProcessChannelLayer",
            "CONFIG": {"channel_capacity": {"stream-hub.*": 5000}},  # as Redis's above
        }
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

Q_CLUSTER = {
    "name": "rrr",
    "workers": env.int("Q_WORKERS", default=2),
    "timeout": env.int("Q_TIMEOUT", default=3600),
    "retry": env.int("Q_TIMEOUT", default=3600) + 600,
    "max_attempts": 2,
    # Tasks one cluster takes ahead of its workers: no more than they can start, so a sweep's
    # trials spread over every qcluster on the broker instead of the first one hoarding them.
    "queue_limit": env.int("Q_WORKERS", default=2),
    "catch_up": False,
    "label": "Tasks",
    # pytest (>= 8.2 sets PYTEST_VERSION) runs tasks inline so tests need no cluster.
    "sync": env.bool("Q_SYNC", default=_TESTING),
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# --- Auth, API ------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# The REST API (rrr_site/api): JWT for apps, the session (with CSRF) for the browser; DRF's
# permanent tokens authenticate WebSockets only (rrr_site/ws_auth.py). Every view names its
# permission class: the default refuses everything.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rrr_site.api.authentication.JWTUserAuthentication",  # user, role, grants: one query
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rrr_site.api.permissions.DenyAll"],
    "DEFAULT_THROTTLE_CLASSES": [
        "rrr_site.api.throttling.AnonThrottle",
        "rrr_site.api.throttling.UserThrottle",
        "rrr_site.api.throttling.ScopedThrottle",
    ],
    "DEFAULT_PARSER_CLASSES": ["rrr_site.api.parsers.StrictJSONParser"],
    "EXCEPTION_HANDLER": "rrr_site.api.errors.exception_handler",  # 413 JSON for huge bodies
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "MAX_PAGINATE_BY": 1000,
    "COERCE_DECIMAL_TO_STRING": True,
    "DATETIME_FORMAT": "iso-8601",
}
# Requests per period ("N/second|minute|hour|day"); read on every request (rrr_site.api.throttling).
API_THROTTLE_RATES = {
    "anon": env.str("API_THROTTLE_ANON", default="60/minute"),
    "user": env.str("API_THROTTLE_USER", default="100000/minute" if _TESTING else "6000/minute"),
    "auth": env.str("API_THROTTLE_AUTH", default="1000/minute" if _TESTING else "20/minute"),
}
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=5)),
    "REFRESH_TOKEN_LIFETIME": timedelta(hours=env.int("JWT_REFRESH_HOURS", default=24)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "AUTH_HEADER_TYPES": ("Bearer",),
}
# Browsers on other origins (a React dev server) only when listed; nothing is open by default.
CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_URLS_REGEX = r"^/api/.*$"
SPECTACULAR_SETTINGS = {
    "TITLE": "RRR API",
    "DESCRIPTION": (
        "REST API of RRR. Every path under `/api/v1/` also answers under `/api/` (the "
        "unversioned aliases). Authenticate with `Authorization: Bearer <access>` from "
        "`POST /api/v1/auth/token`, or with the Django session (send `X-CSRFToken` on writes). "
        "Money and quantities are strings of the exact decimal; timestamps ISO-8601 UTC."
    ),
    "VERSION": __version__,
    # The schema maps every endpoint and field: users with a role (viewer and up) only.
    "SERVE_PERMISSIONS": ["rrr_site.api.permissions.IsViewer"],
    "SWAGGER_UI_DIST": "SIDECAR",  # served from drf-spectacular-sidecar: works offline
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "PREPROCESSING_HOOKS": ["rrr_site.api.schema.only_versioned_paths"],
    # One name per choice set shared by several serializers.
    "ENUM_NAME_OVERRIDES": {
        "TradingStateEnum": ["active", "reducing", "halted"],
        "OrderSideEnum": "trading.choices.OrderSide",
        "OrderStatusEnum": "trading.choices.OrderStatus",
        "RunStatusEnum": "models_ml.choices.RunStatus",
        "ResearchKindEnum": "research.choices.ResearchKind",
        "TradeSideEnum": [("long", "long"), ("short", "short")],
        "FillModelEnum": "backtesting.choices.FillModel",
        "OptimizeMethodEnum": "backtesting.choices.OptimizeMethod",
        "ModelTypeEnum": "models_ml.choices.ModelType",
        "OptimizeRequestEnum": [(m, m) for m in ("grid", "random", "genetic", "walkforward")],
        "TrainableModelTypeEnum": [(t, t) for t in ("transformer", "lstm", "cnn")],
    },
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
}
# The dashboard and the API docs send anonymous browsers to the dashboard's sign-in page.
LOGIN_URL = "login"  # the dashboard's sign-in page (the admin's admits staff only)
LOGIN_REDIRECT_URL = "/"

# --- Alerts and the Telegram bot (monitoring/alerts.py, monitoring/channels/) ------------------
# Keys only from the environment; the service endpoints are settings so tests (and proxies) can
# point them at another host.
ALERT_EMAIL_FROM = env.str("ALERT_EMAIL_FROM", default="rrr-alerts@localhost")
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
SLACK_WEBHOOK_BASE = env.str("SLACK_WEBHOOK_BASE", default="https://hooks.slack.com/services")
TELEGRAM_API_URL = env.str("TELEGRAM_API_URL", default="https://api.telegram.org")
TELEGRAM_BOT_TOKEN = env.str("TELEGRAM_BOT_TOKEN", default="")
TELEGRAM_ALLOWED_CHAT_IDS = [int(i) for i in env.list("TELEGRAM_ALLOWED_CHAT_IDS", default=[])]


def _chat_users(pairs: list[str]) -> dict[int, str]:
    """Parse TELEGRAM_CHAT_USERS ("<chat id>=<username>,..."): the user each chat acts as."""
    chats = {}
    for pair in pairs:
        chat, sep, user = pair.partition("=")
        if not sep or not user.strip() or not chat.strip().lstrip("-").isdigit():
            raise ImproperlyConfigured(
                f"TELEGRAM_CHAT_USERS: {pair!r} is not <chat id>=<username> (e.g. 1001=alice)"
            )
        chats[int(chat)] = user.strip()
    return chats


# The control bot answers only these chats, each as its user: that user's role and accounts
# decide what the chat may read and do (monitoring/telegram_bot.py).
TELEGRAM_CHAT_USERS = _chat_users(env.list("TELEGRAM_CHAT_USERS", default=[]))
TWILIO_API_URL = env.str("TWILIO_API_URL", default="https://api.twilio.com")
TWILIO_ACCOUNT_SID = env.str("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = env.str("TWILIO_AUTH_TOKEN", default="")
TWILIO_FROM_NUMBER = env.str("TWILIO_FROM_NUMBER", default="")
APNS_URL = env.str("APNS_URL", default="https://api.push.apple.com")  # sandbox: api.sandbox...
APNS_TEAM_ID = env.str("APNS_TEAM_ID", default="")
APNS_KEY_ID = env.str("APNS_KEY_ID", default="")
APNS_AUTH_KEY = env.str("APNS_AUTH_KEY", default="")  # the .p8 key's PEM text, or:
APNS_AUTH_KEY_FILE = env.str("APNS_AUTH_KEY_FILE", default="")
APNS_TOPIC = env.str("APNS_TOPIC", default="")  # the iOS app's bundle id
# Android push (Firebase Cloud Messaging HTTP v1): a service-account key, by path or as JSON text.
FCM_SERVICE_ACCOUNT_FILE = env.str("FCM_SERVICE_ACCOUNT_FILE", default="")
FCM_SERVICE_ACCOUNT_JSON = env.str("FCM_SERVICE_ACCOUNT_JSON", default="")
FCM_PROJECT_ID = env.str("FCM_PROJECT_ID", default="")  # blank: the service account's project
FCM_API_URL = env.str("FCM_API_URL", default="https://fcm.googleapis.com")
ALERT_LARGE_FILL_PCT = env.float("ALERT_LARGE_FILL_PCT", default=0.10)  # of equity
ALERT_REJECT_BURST = env.int("ALERT_REJECT_BURST", default=10)  # rejects in 5 minutes
ALERT_QUARANTINE_BURST = env.int("ALERT_QUARANTINE_BURST", default=50)  # in 5 minutes

# --- Metrics: a bearer token or an allowed network (see monitoring/metrics_access.py) ---------
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")


def _metrics_networks() -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Parse ``METRICS_ALLOWED_NETWORKS`` (CIDRs, comma-separated); refuse a malformed one."""
    values = env.list("METRICS_ALLOWED_NETWORKS", default=["127.0.0.1/32", "::1/128"])
    networks = []
    for value in (v.strip() for v in values if v.strip()):
        try:
            networks.append(ipaddress.ip_network(value))
        except ValueError as exc:
            raise ImproperlyConfigured(f"METRICS_ALLOWED_NETWORKS: {exc}") from exc
    return tuple(networks)


METRICS_ALLOWED_NETWORKS = _metrics_networks()

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "rrr_site.pages.static_finder.PagesStaticFinder",  # the pages' JS/CSS and plotly.js (offline)
]

# --- Security (hardened in production; `check --deploy` is clean there) ----------------------
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
if PRODUCTION:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # Plain-HTTP scrapes and probes stay possible: /metrics is gated by token or network
    # (monitoring.metrics_access) whatever the scheme, and /health reveals nothing.
    SECURE_REDIRECT_EXEMPT = [r"^health", r"^metrics$"]
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# --- Logging: JSON lines on stderr (a command's stdout carries only its own output) -----------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "ts", "levelname": "level", "name": "logger"},
        }
    },
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
            "formatter": "json",
        }
    },
    "root": {"handlers": ["stderr"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
    },
}

# --- Trading and risk defaults (the product's long-standing variables) ----------------------
INITIAL_CAPITAL = Decimal(env.str("INITIAL_CAPITAL", default="100000"))
MAX_POSITION_SIZE_PCT = Decimal(env.str("MAX_POSITION_SIZE_PCT", default="0.20"))
MAX_DAILY_LOSS_PCT = Decimal(env.str("MAX_DAILY_LOSS_PCT", default="0.05"))
MAX_DRAWDOWN_PCT = Decimal(env.str("MAX_DRAWDOWN_PCT", default="0.20"))
PAPER_TRADING = env.bool("PAPER_TRADING", default=True)
LIVE_TRADING = env.bool("LIVE_TRADING", default=False)
DEFAULT_ACCOUNT = env.str("DEFAULT_ACCOUNT", default="paper")

POLYGON_API_KEY = env.str("POLYGON_API_KEY", default="")
POLYGON_WS_URL = env.str("POLYGON_WS_URL", default="wss://socket.polygon.io/crypto")
POLYGON_REST_URL = env.str("POLYGON_REST_URL", default="https://api.polygon.io")
COINBASE_WS_URL = env.str("COINBASE_WS_URL", default="wss://ws-feed.exchange.coinbase.com")
BINANCE_WS_URL = env.str("BINANCE_WS_URL", default="wss://stream.binance.com:9443")
COINBASE_API_KEY = env.str("COINBASE_API_KEY", default="")
COINBASE_API_SECRET = env.str("COINBASE_API_SECRET", default="")
BINANCE_API_KEY = env.str("BINANCE_API_KEY", default="")
BINANCE_API_SECRET = env.str("BINANCE_API_SECRET", default="")
KRAKEN_API_KEY = env.str("KRAKEN_API_KEY", default="")
KRAKEN_API_SECRET = env.str("KRAKEN_API_SECRET", default="")

# --- Alternative data: on-chain nodes, headline sentiment (issue #20) -----------------------
ETH_RPC_URL = env.str("ETH_RPC_URL", default="")  # an Ethereum node's JSON-RPC endpoint
BTC_ESPLORA_URL = env.str("BTC_ESPLORA_URL", default="https://blockstream.info/api")
# OpenAI-compatible chat completions; Perplexity's key is used when no other is given.
SENTIMENT_LLM_URL = env.str("SENTIMENT_LLM_URL", default="https://api.perplexity.ai")
SENTIMENT_LLM_MODEL = env.str("SENTIMENT_LLM_MODEL", default="sonar")
SENTIMENT_LLM_API_KEY = env.str("SENTIMENT_LLM_API_KEY", default="") or env.str(
    "PERPLEXITY_API_KEY", default=""
)
SENTIMENT_NEWS_URLS = env.list("SENTIMENT_NEWS_URLS", default=[])  # RSS/Atom headline feeds
EXCHANGE_SANDBOX = env.bool("EXCHANGE_SANDBOX", default=False)  # testnets for live venues
# Optional REST base URL overrides per live venue (a proxy, a testnet, or a local fake).
EXCHANGE_API_URLS = {
    venue: env.str(f"{venue.upper()}_REST_URL", default="")
    for venue in ("binance", "coinbase", "kraken")
}

MODELS_DIR = DATA_DIR / "models"
# Folders scanned for users' strategy classes (``manage.py strategy list``; ``--strategy Name``).
STRATEGY_PATHS = env.list("STRATEGY_PATHS", default=[str(DATA_DIR / "strategies")])
REPORTS_DIR = DATA_DIR / "reports"
