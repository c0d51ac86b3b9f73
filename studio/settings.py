"""Settings for Trajectory Studio: one file, read from the environment through tiny helpers.

Embedded default (nothing to configure): SQLite under DATA_DIR, Celery on kombu's filesystem
transport under DATA_DIR/broker. Scaled out: set DATABASE_URL (PostgreSQL) and
CELERY_BROKER_URL (Redis), as docker-compose.yml does.
"""

import os
from pathlib import Path

import dj_database_url


def envbool(name: str, default: str = "False") -> bool:
    return os.getenv(name, default).lower() in ("1", "true", "yes", "on")


def envint(name: str, default: str) -> int:
    return int(os.getenv(name, default))


def envstr(name: str, default: str = "") -> str:
    return os.getenv(name, default)


BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(envstr("STUDIO_DATA_DIR", str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

# A development key is generated once per data dir so a fresh checkout runs with no set-up;
# production sets SECRET_KEY.
_key_file = DATA_DIR / "secret_key"
SECRET_KEY = envstr("SECRET_KEY")
if not SECRET_KEY:
    if not _key_file.exists():
        import secrets

        _key_file.write_text(secrets.token_urlsafe(50))
    SECRET_KEY = _key_file.read_text().strip()

DEBUG = envbool("DEBUG", "False")
ALLOWED_HOSTS = envstr("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
CSRF_TRUSTED_ORIGINS = [o for o in envstr("CSRF_TRUSTED_ORIGINS").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "annotate",
    "training",
    "evaluation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves our CSS and the packaged htmx without a separate web server.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "studio.urls"

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

WSGI_APPLICATION = "studio.wsgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        envstr("DATABASE_URL", f"sqlite:///{DATA_DIR / 'studio.sqlite3'}"),
        conn_max_age=envint("DB_CONN_MAX_AGE", "0"),
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # WAL lets the worker write job progress while the web server reads; a busy timeout
    # instead of "database is locked" errors when both write at once.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "annotate:project-list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
WHITENOISE_USE_FINDERS = True  # no collectstatic step for the embedded default

# Uploads: imports bigger than this are refused with a clear message.
IMPORT_MAX_BYTES = envint("IMPORT_MAX_BYTES", str(200 * 1024 * 1024))
# Processes that read a big JSON Lines import while one writes it (annotate.bulk); 0: 2 (1 on a
# single CPU).
IMPORT_READERS = envint("IMPORT_READERS", "0")
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# Models: remote code from a model folder runs only where an admin enables it.
TRUST_REMOTE_CODE = envbool("TRUST_REMOTE_CODE", "False")
DEMO_MODEL_DIR = DATA_DIR / "models" / "tiny-qwen3"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Trajectory Studio API",
    "DESCRIPTION": "Import, curate, render, train and evaluate tool-calling trajectories.",
    "VERSION": "0.1.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Celery ---------------------------------------------------------------------------------
BROKER_DIR = DATA_DIR / "broker"
CELERY_BROKER_URL = envstr("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem"):
    for sub in ("in", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "in"),
        "data_folder_out": str(BROKER_DIR / "in"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "store_processed": False,
        # Without an explicit control folder the transport writes pidbox files to the cwd.
        "control_folder": str(BROKER_DIR / "control"),
    }
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True  # safe: every task first claims its job row
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "training.tasks.export_*": {"queue": "export"},
    "training.tasks.train_*": {"queue": "train"},
    "evaluation.tasks.*": {"queue": "eval"},
}
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", "False")
JOB_SWEEP_EVERY = envint("JOB_SWEEP_EVERY", "30")  # seconds between sweeps of stale and lost jobs
CELERY_BEAT_SCHEDULE = {
    # On the default queue (CELERY_TASK_DEFAULT_QUEUE), which a worker always consumes; a sweep
    # that waited past the next one is dropped rather than run late.
    "sweep-stale-jobs": {"task": "training.tasks.sweep_stale_jobs", "schedule": float(JOB_SWEEP_EVERY),
                         "options": {"expires": max(1, JOB_SWEEP_EVERY - 5)}},
}
JOB_HEARTBEAT_TIMEOUT = envint("JOB_HEARTBEAT_TIMEOUT", "60")
# A queued job whose broker message is gone after this many seconds is sent again, up to
# JOB_MAX_ATTEMPTS sends in all, then failed with the reason (training.job_queue).
JOB_QUEUED_TIMEOUT = envint("JOB_QUEUED_TIMEOUT", "300")
JOB_MAX_ATTEMPTS = envint("JOB_MAX_ATTEMPTS", "3")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
