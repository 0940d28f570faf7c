"""Settings for Message Log, read from the environment only.

Embedded mode (no variables set): SQLite under var/, Celery on kombu's filesystem
transport under var/, every provider in simulator mode. Production: DATABASE_URL,
REDIS_URL, SECRET_KEY, ALLOWED_HOSTS, PUBLIC_BASE_URL and provider credentials.
"""

import importlib.util
import os
import secrets
from pathlib import Path

import dj_database_url
from celery.schedules import crontab

BASE_DIR = Path(__file__).resolve().parents[2]
VAR_DIR = Path(os.environ.get("MSGLOG_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def _secret_key() -> str:
    """The SECRET_KEY variable, or a development key generated once and kept in var/."""
    if key := os.environ.get("SECRET_KEY"):
        return key
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


DEBUG = env_bool("DEBUG")
SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
if DEBUG:
    ALLOWED_HOSTS += ["testserver", "[::1]"]

# The one canonical external URL of this deployment. Webhook signatures (Twilio signs
# the URL it called) are checked against it, never against the request's Host header.
PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS") or [PUBLIC_BASE_URL]

INSTALLED_APPS = [
    "msglog.web.admin_site.OperatorAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",
    "template_partials",
    "django_htmx",
    "django_filters",
    "django_tables2",
    "anymail",
    "companies",
    "templates_app",
    "msglog",
]
# The demo, bulk seeding and the benchmarks: in a checkout, not in the wheel or the image.
if importlib.util.find_spec("msglog.devtools") is not None:
    INSTALLED_APPS.append("msglog.devtools")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "companies.tenancy.CompanyScopeMiddleware",
]

ROOT_URLCONF = "msglog.config.urls"
WSGI_APPLICATION = "msglog.config.wsgi.application"

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
                "companies.context_processors.tenancy",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{VAR_DIR / 'msglog.sqlite3'}", conn_max_age=60
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the worker write to one file: WAL lets readers go on while
    # one writes, IMMEDIATE takes the write lock up front instead of failing mid-way.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # Django's own cursors bind parameters on the client and never prepare; the hot
    # statements sent through msglog.services.prepared (a webhook's INSERT, the bulk
    # writes of msglog.services.bulk_writes) are prepared once per connection after 5
    # uses. Behind a transaction-mode pooler that cannot keep prepared statements
    # (PgBouncer before 1.21), set DATABASE_PREPARED_STATEMENTS=0. A prepare_threshold
    # already in OPTIONS stays.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "prepare_threshold", 5 if env_bool("DATABASE_PREPARED_STATEMENTS", True) else None
    )
IS_POSTGRES = DATABASES["default"]["ENGINE"].startswith("django.db.backends.postgresql")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/logs/"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "staticfiles"))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))

DJANGO_TABLES2_TEMPLATE = "django_tables2/bootstrap5.html"

# --- Security: production (DEBUG off) passes `manage.py check --deploy`. ---
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", 60 * 60 * 24 * 365))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# --- Celery: Redis in production, kombu's filesystem transport in embedded mode. ---
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    # A task that is not acknowledged within this time is handed to another worker;
    # no countdown or ETA may be longer (scheduled sends use a due time in the DB).
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, int | str | bool] = {
        "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "3600"))
    }
else:
    _broker_dir = VAR_DIR / "broker"
    for _folder in ("queue", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Acknowledge after the task ran, so a worker killed mid-task leaves it to be redelivered;
# every task is written to be safe to run twice (claims are conditional updates).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# One task at a time per process: long provider calls must not hold others hostage.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "maintenance"
# Every task by name (msglog/workers/tasks.py); a task not listed runs on `maintenance`.
# Exports have a queue of their own, so a long file never delays sends or maintenance.
CELERY_TASK_ROUTES = {
    "msglog.tasks.send_sms_chunk": {"queue": "sms"},
    "msglog.tasks.send_sms_message": {"queue": "sms"},
    "msglog.tasks.send_email_chunk": {"queue": "email"},
    "msglog.tasks.send_email_message": {"queue": "email"},
    "msglog.tasks.apply_simulated_reports": {"queue": "events"},
    "msglog.tasks.apply_provider_reports": {"queue": "events"},
    "msglog.tasks.refresh_message_status": {"queue": "events"},
    "msglog.tasks.run_export": {"queue": "exports"},
}
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER")
# A message still in `sending` this long after its last step is settled by asking the provider.
SENDING_TIMEOUT_SECONDS = int(os.environ.get("SENDING_TIMEOUT_SECONDS", "120"))
# A message queued this long without being claimed gets its task published again.
QUEUED_TIMEOUT_SECONDS = int(os.environ.get("QUEUED_TIMEOUT_SECONDS", "300"))
DEMO_TRAFFIC = env_bool("DEMO_TRAFFIC")
CELERY_BEAT_SCHEDULE = {
    "dispatch-due-messages": {"task": "msglog.tasks.dispatch_due_messages", "schedule": 5.0},
    # Checked a few times per timeout, so nothing waits much longer than its timeout.
    "reconcile-stuck-messages": {
        "task": "msglog.tasks.reconcile_stuck_messages",
        "schedule": max(2.0, SENDING_TIMEOUT_SECONDS / 4),
    },
    "poll-sent-messages": {"task": "msglog.tasks.poll_sent_messages", "schedule": 120.0},
    "requeue-stale-messages": {
        "task": "msglog.tasks.requeue_stale_messages",
        "schedule": max(2.0, QUEUED_TIMEOUT_SECONDS / 5),
    },
    # Retention: every night, each company's log loses what is past its period.
    "purge-expired-messages": {
        "task": "msglog.tasks.purge_expired_messages",
        "schedule": crontab(hour=3, minute=17),
    },
    # Provider reports are applied by workers soon after they arrive; beat applies any a
    # lost task left behind, and prunes old applied ones.
    "apply-provider-reports": {
        "task": "msglog.tasks.apply_provider_reports",
        "schedule": 5.0,
        "kwargs": {"linger": 0.0},
    },
    "prune-provider-reports": {"task": "msglog.tasks.prune_provider_reports", "schedule": 3600.0},
    # Once a day, after midnight UTC: ask the providers about all of yesterday's messages.
    "reconcile-yesterday": {
        "task": "msglog.tasks.reconcile_yesterday",
        "schedule": crontab(hour=2, minute=30),
    },
    "delete-expired-exports": {"task": "msglog.tasks.delete_expired_exports", "schedule": 3600.0},
    # Embedded demo only: a few messages every few seconds, so a newcomer sees traffic move.
    **(
        {"demo-traffic": {"task": "msglog.tasks.send_demo_traffic", "schedule": 8.0}}
        if DEMO_TRAFFIC
        else {}
    ),
}

# --- Providers: credentials come from the environment only. ---
# Each provider's client by name (msglog/providers/<name>/); the services find them here.
MESSAGE_PROVIDERS = {
    "simulator": "msglog.providers.simulator.client.SimulatorProvider",
    "twilio": "msglog.providers.twilio.client.TwilioProvider",
    "smtp": "msglog.providers.smtp.client.SmtpProvider",
    "anymail": "msglog.providers.anymail.client.AnymailProvider",
}
SMS_PROVIDER = os.environ.get("SMS_PROVIDER", "simulator")
EMAIL_PROVIDER = os.environ.get("EMAIL_PROVIDER", "simulator")
TWILIO_ACCOUNT_SID = os.environ.get("TWILIO_ACCOUNT_SID", "")
TWILIO_AUTH_TOKEN = os.environ.get("TWILIO_AUTH_TOKEN", "")
TWILIO_MESSAGING_SERVICE_SID = os.environ.get("TWILIO_MESSAGING_SERVICE_SID", "")
TWILIO_FROM_NUMBER = os.environ.get("TWILIO_FROM_NUMBER", "")
TWILIO_API_BASE_URL = os.environ.get("TWILIO_API_BASE_URL", "")
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Message Log <noreply@example.com>")
EMAIL_TIMEOUT = int(os.environ.get("EMAIL_TIMEOUT", "30"))
# The ESP's backend for the `anymail` email provider, e.g. anymail.backends.postmark.EmailBackend
ANYMAIL_EMAIL_BACKEND = os.environ.get("ANYMAIL_EMAIL_BACKEND", "")
ANYMAIL: dict[str, str | list[str]] = {
    key.removeprefix("ANYMAIL_"): value
    for key, value in os.environ.items()
    if key.startswith("ANYMAIL_")
}
# Anymail's WEBHOOK_SECRET may list several "user:password" pairs, comma-separated, so a
# secret can be rotated without losing webhooks (add the new one, update the ESP, drop
# the old one).
_webhook_secrets = os.environ.get("ANYMAIL_WEBHOOK_SECRET", "")  # ANYMAIL's WEBHOOK_SECRET
if "," in _webhook_secrets:
    ANYMAIL["WEBHOOK_SECRET"] = [s.strip() for s in _webhook_secrets.split(",")]
# Soft bounces of one address on this many messages within this many days suppress it.
SOFT_BOUNCE_LIMIT = int(os.environ.get("SOFT_BOUNCE_LIMIT", "3"))
SOFT_BOUNCE_WINDOW_DAYS = int(os.environ.get("SOFT_BOUNCE_WINDOW_DAYS", "7"))
# Largest webhook body accepted (bytes); anything bigger answers 413 unread.
WEBHOOK_MAX_BYTES = int(os.environ.get("WEBHOOK_MAX_BYTES", str(1024 * 1024)))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # Both log every request's URL, which carries the Twilio account SID; errors stay.
        "twilio.http_client": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
    },
}

# --- Exports: bigger exports run in the background, files expire. ---
EXPORT_CSV_INLINE_MAX_ROWS = int(os.environ.get("EXPORT_CSV_INLINE_MAX_ROWS", "100000"))
EXPORT_XLSX_INLINE_MAX_ROWS = int(os.environ.get("EXPORT_XLSX_INLINE_MAX_ROWS", "20000"))
EXPORT_FILE_HOURS = int(os.environ.get("EXPORT_FILE_HOURS", "72"))
