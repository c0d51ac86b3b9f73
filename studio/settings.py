"""Settings for Trajectory Studio: one file, read from the environment through tiny helpers.

Embedded default (nothing to configure): SQLite under DATA_DIR, Celery on kombu's filesystem
transport under DATA_DIR/broker. Scaled out: set DATABASE_URL (PostgreSQL) and
CELERY_BROKER_URL (Redis), as docker-compose.yml does.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from studio.secret_key import embedded_key, key_problem


def envbool(name: str, default: str = "False") -> bool:
    return os.getenv(name, default).lower() in ("1", "true", "yes", "on")


def envint(name: str, default: str) -> int:
    return int(os.getenv(name, default))


def envstr(name: str, default: str = "") -> str:
    return os.getenv(name, default)


BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(envstr("STUDIO_DATA_DIR", str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

# The production shape (docker-compose.yml, the Dockerfile): a real SECRET_KEY is required and the
# HTTPS settings below default on. The embedded default (`make run`) needs nothing set.
PRODUCTION = envbool("STUDIO_PRODUCTION", "False")
DEBUG = envbool("DEBUG", "False")
# seed_demo (users with known passwords) runs in the production shape only when asked for.
STUDIO_DEMO = envbool("STUDIO_DEMO", "False")
# Who may create projects from the app: staff and superusers, or every signed-in user when on.
ANYONE_CREATES_PROJECTS = envbool("STUDIO_ANYONE_CREATES_PROJECTS", "False")

# A development key is generated once per data dir (0600) so a fresh checkout runs with no set-up.
# With DEBUG off a placeholder ("change-me") is refused, and so is a missing or weak key in the
# production shape: a known key lets anyone forge login cookies.
_key = os.environ.get("SECRET_KEY")
_key_problem = None if DEBUG else key_problem(_key, required=PRODUCTION)
if _key_problem:
    raise ImproperlyConfigured(
        f"{_key_problem}. Set SECRET_KEY to a long random value, e.g. the output of "
        "python -c 'import secrets; print(secrets.token_urlsafe(50))'")
SECRET_KEY = _key or embedded_key(DATA_DIR / "secret_key")

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
    "rl",
]

MIDDLEWARE = [
    # First: the container health check asks on 127.0.0.1 over plain http, whatever the host
    # check and the https redirect below say.
    "studio.middleware.healthz",
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
    # instead of "database is locked" errors when both write at once. A new database gets pages
    # of 16 KB rather than 4 (an existing one keeps its size: the pragma only applies before the
    # first table): an import writes a quarter as many WAL frames and checkpoints them in half the
    # time (a 50,000-trajectory import, alternating runs: 8,426-9,930/s against 7,211-8,507/s).
    # Pages are read through a memory map (mmap_size, 256 MB), else a page read from the OS costs
    # four times the copy and the queue's p95 rose from ~30 to ~40 ms (bench_workbench, 20,000).
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA page_size=16384; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                        "PRAGMA mmap_size=268435456;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"django.contrib.auth.password_validation.{name}"}
    for name in ("UserAttributeSimilarityValidator", "MinimumLengthValidator", "CommonPasswordValidator",
                 "NumericPasswordValidator")
]

# HTTPS, on by default in the production shape (behind a TLS-terminating proxy that sets
# X-Forwarded-Proto), off for the embedded default over plain http. Each can be set on its own.
_https = str(PRODUCTION)
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", _https)
CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", _https)
CSRF_FAILURE_VIEW = "studio.errors.csrf_failure"  # the friendly 403 page, saying what to do
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", _https)
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", str(365 * 24 * 3600) if PRODUCTION else "0")
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", _https)
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", _https)
# Trust the proxy's X-Forwarded-Proto only where a proxy sets it (and strips a client's own).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if envbool("SECURE_PROXY_SSL_HEADER", _https) else None

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "annotate:project-list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(envstr("STATIC_ROOT", str(DATA_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# The embedded default serves files where they lie (no collectstatic step); the production shape
# serves what `collectstatic` gathered (the Dockerfile runs it), compressed.
WHITENOISE_USE_FINDERS = not PRODUCTION
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage" if PRODUCTION
                    else "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Uploads: imports bigger than this are refused with a clear message.
IMPORT_MAX_BYTES = envint("IMPORT_MAX_BYTES", str(200 * 1024 * 1024))
# Processes that read a big JSON Lines import while one writes it (annotate.ingest.sqlite); 0: 2 (1 on a
# single CPU).
IMPORT_READERS = envint("IMPORT_READERS", "0")
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# Models: user-given template, tokenizer and model paths must lie in the data dir's models/,
# runs/ or snapshots/ folders or in one of these admin-set folders (training.roots).
MODEL_ROOTS = [Path(p).resolve() for p in envstr("STUDIO_MODEL_ROOTS").split(os.pathsep) if p.strip()]
# Remote code runs only for model folders an admin grants it to (training.models.TrustedModel);
# the old global switch would silently trust every lead's model, so setting it on is an error.
if envbool("TRUST_REMOTE_CODE", "False"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("TRUST_REMOTE_CODE is no longer a global setting: grant remote code per model "
                               "folder in the admin (Training › Trusted models) and unset TRUST_REMOTE_CODE.")
DEMO_MODEL_DIR = DATA_DIR / "models" / "tiny-qwen3"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # NaN, Infinity and 1e999 are a 400 where the body is read (studio/parsers.py), not a 500 at the database.
    "DEFAULT_PARSER_CLASSES": ["studio.parsers.StrictJSONParser", "rest_framework.parsers.FormParser",
                               "rest_framework.parsers.MultiPartParser"],
    # drf-spectacular's, plus the 400/401/403/404 bodies every view can answer (studio/parsers.py).
    "DEFAULT_SCHEMA_CLASS": "studio.rest.StudioAutoSchema",
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
    # Fields named alike with different choice sets: a name for each set (no generated suffixes).
    "ENUM_NAME_OVERRIDES": {
        "TrajectoryStatusEnum": "annotate.models.Trajectory.STATUS_CHOICES",
        "PairStatusEnum": "annotate.pairs.models.Pair.STATUS_CHOICES",
        "PairSourceEnum": "annotate.pairs.models.Pair.SOURCE_CHOICES",
        "JobStatusEnum": "training.models.JobStatus",
        "SnapshotKindEnum": "training.models.Snapshot.KIND_CHOICES",
        "ModelSourceEnum": "evaluation.models.EvalRun.MODEL_SOURCES",
        "WorkflowActionEnum": "annotate.workbench.workflow.ACTION_NAMES",
        "SuggestionStatusEnum": "annotate.suggestions.models.StepSuggestion.STATUS_CHOICES",
    },
    # The schema is for API clients: a token or a session, as for the API itself.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
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
# JOB_MAX_ATTEMPTS sends in all, then failed with the reason (jobs.queue).
JOB_QUEUED_TIMEOUT = envint("JOB_QUEUED_TIMEOUT", "300")
JOB_MAX_ATTEMPTS = envint("JOB_MAX_ATTEMPTS", "3")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Evaluation endpoints an evaluation may call, besides the admin's list (Admin › Allowed endpoints):
# "HOST[:PORT] [private], ..." (evaluation.outbound.parse_allowlist; checked by `manage.py check`).
ENDPOINT_ALLOWLIST = envstr("STUDIO_ENDPOINT_ALLOWLIST")

# Tool environments for multi-turn evaluation (evaluation.environments): the classes an item may
# name, as dotted paths "package.module.Class, ..." (importing a name from user data would run any
# code, so only these import), and each episode's limits in its child process.
ENVIRONMENT_CLASSES = [p.strip() for p in envstr("STUDIO_ENVIRONMENT_CLASSES").split(",") if p.strip()]
ENVIRONMENT_SECONDS = envint("STUDIO_ENVIRONMENT_SECONDS", "30")  # one tool call
ENVIRONMENT_MEMORY_MB = envint("STUDIO_ENVIRONMENT_MEMORY_MB", "2048")
ENVIRONMENT_NETWORK = envbool("STUDIO_ENVIRONMENT_NETWORK", "False")
