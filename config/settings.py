"""Settings, read from the environment (django-environ).

With nothing set but `DEBUG=true`, the app runs on the embedded default: SQLite and Celery on
kombu's filesystem transport. With `DEBUG=false`, `SECRET_KEY` and `ALLOWED_HOSTS` set and
nothing else, the settings are production-safe (`manage.py check --deploy` is clean).
"""

import base64
import binascii
import ipaddress
from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
# ENV_FILE names another file, or none with ENV_FILE=/dev/null (tests/core/test_deploy_settings).
ENV_FILE = Path(env.str("ENV_FILE", default=str(BASE_DIR / ".env")))
if ENV_FILE.is_file():
    environ.Env.read_env(ENV_FILE, overwrite=False)

# The embedded default (neither DATABASE_URL nor REDIS_URL set) is a developer's machine:
# DEBUG defaults to true there, so that a fresh clone's `manage.py ...` works as printed.
# A deployment always names its database or broker (docker-compose.yml does), so it starts
# with DEBUG off unless told otherwise.
EMBEDDED_DEFAULT = not env.str("DATABASE_URL", default="") and not env.str("REDIS_URL", default="")
DEBUG = env.bool("DEBUG", default=EMBEDDED_DEFAULT)
_HOW_TO_MAKE_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
_GENERATE_FERNET_KEY = (
    "python -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'"
)


def _required(name: str, how: str) -> str:
    """A setting a production process (DEBUG=false) must not start without."""
    value = env.str(name, default="")
    if not value:
        raise ImproperlyConfigured(f"{name} is required when DEBUG=false: {how}")
    return value


if DEBUG:
    SECRET_KEY = env.str("SECRET_KEY", default="dev-only-insecure-key-" + "x" * 40)
else:
    # Fails loudly: a production process must never start on a guessable key.
    SECRET_KEY = _required("SECRET_KEY", f"50+ random characters, e.g. from `{_HOW_TO_MAKE_KEY}`")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Who the person deals with (GDPR Art. 13(1)(a)-(b)): named on every recipient page and at
# the foot of every message, in receipts and in access answers. DPO_CONTACT falls back to
# CONTROLLER_CONTACT, its name before issue 12, when only that one is set.
_DPO_CONTACT = env.str("DPO_CONTACT", default="") or env.str("CONTROLLER_CONTACT", default="")
if DEBUG:
    CONTROLLER_NAME = env.str("CONTROLLER_NAME", default="Consent Desk demo")
    CONTROLLER_ADDRESS = env.str("CONTROLLER_ADDRESS", default="1 rue de la Paix, 75002 Paris")
    DPO_CONTACT = _DPO_CONTACT or "dpo@example.fr"
else:
    CONTROLLER_NAME = _required(
        "CONTROLLER_NAME", "the legal name of the controller, e.g. 'Exemple SAS' (GDPR Art. 13)"
    )
    CONTROLLER_ADDRESS = _required(
        "CONTROLLER_ADDRESS",
        "the controller's postal address, e.g. '1 rue de la Paix, 75002 Paris' (GDPR Art. 13)",
    )
    if not _DPO_CONTACT:
        raise ImproperlyConfigured(
            "DPO_CONTACT is required when DEBUG=false: how to reach the data protection "
            "officer, e.g. dpo@example.fr (GDPR Art. 13(1)(b); CONTROLLER_CONTACT is read "
            "when DPO_CONTACT is not set)"
        )
    DPO_CONTACT = _DPO_CONTACT
# The privacy notice's address when no version is stored yet (consent.PrivacyNotice); the
# current stored version's URL wins. Required in production, so that no page or message ever
# goes out without a notice link (GDPR Art. 13).
if DEBUG:
    PRIVACY_NOTICE_URL = env.str("PRIVACY_NOTICE_URL", default="")
else:
    PRIVACY_NOTICE_URL = _required(
        "PRIVACY_NOTICE_URL",
        "the address of your privacy notice, e.g. https://www.example.fr/confidentialite "
        "(GDPR Art. 13; a version stored in the admin then takes over)",
    )
# Where a person complains to the supervisory authority (GDPR Art. 13(2)(d), 77).
COMPLAINT_AUTHORITY_NAME = "CNIL"
COMPLAINT_AUTHORITY_URL = env.str(
    "COMPLAINT_AUTHORITY_URL", default="https://www.cnil.fr/fr/plaintes"
)
if DEBUG:
    SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
    # Secret of the HMAC keys of the suppression list; kept apart from SECRET_KEY in
    # production so that rotating the session key never orphans the list.
    SUPPRESSION_HMAC_KEY = env.str("SUPPRESSION_HMAC_KEY", default=SECRET_KEY)
    # Key of the consent ledger's seals.
    LEDGER_SEAL_KEY = env.str("LEDGER_SEAL_KEY", default="dev-only-ledger-seal-key-" + "x" * 40)
    # Fernet key (32 url-safe base64 bytes) encrypting the CRM credentials.
    FIELD_ENCRYPTION_KEY = env.str(
        "FIELD_ENCRYPTION_KEY", default="ZGV2LW9ubHktZmllbGQtZW5jcnlwdGlvbi1rZXkhISE="
    )
else:
    SITE_URL = _required(
        "SITE_URL", "the public base URL of the links in emails, e.g. https://consent.example.fr"
    ).rstrip("/")
    SUPPRESSION_HMAC_KEY = _required(
        "SUPPRESSION_HMAC_KEY",
        f"a secret of its own, never changed once addresses are suppressed: `{_HOW_TO_MAKE_KEY}`",
    )
    LEDGER_SEAL_KEY = _required("LEDGER_SEAL_KEY", f"a secret of its own: `{_HOW_TO_MAKE_KEY}`")
    FIELD_ENCRYPTION_KEY = _required(
        "FIELD_ENCRYPTION_KEY", f"a Fernet key (32 url-safe base64 bytes): `{_GENERATE_FERNET_KEY}`"
    )
try:
    _fernet_key_ok = len(base64.urlsafe_b64decode(FIELD_ENCRYPTION_KEY.encode("ascii"))) == 32
except (ValueError, binascii.Error):
    _fernet_key_ok = False
if not _fernet_key_ok:
    raise ImproperlyConfigured(
        "FIELD_ENCRYPTION_KEY is not a Fernet key (32 url-safe base64 bytes): generate one with "
        f"`{_GENERATE_FERNET_KEY}`"
    )
# Keys FIELD_ENCRYPTION_KEY replaced, still read (never written with) until re-encrypted:
# rotation (core.encryption.field_cipher, `manage.py rotate_proof_archive` and
# `manage.py rotate_crm_credentials`).
FIELD_ENCRYPTION_PREVIOUS_KEYS = env.list("FIELD_ENCRYPTION_PREVIOUS_KEYS", default=[])

INSTALLED_APPS = [
    "core.admin_config.ConsentDeskAdminConfig",  # django.contrib.admin, with two-factor login
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "core",
    "contacts",
    "consent",
    "crmsync",
    "campaigns",
    "preferences",
    "privacy",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "django.template.context_processors.i18n",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one SQLite file: wait for locks instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # No JIT: the product's statements are short, and PostgreSQL compiles one as soon as its
    # estimated cost is high (a batch's lock statement, an audience count): the compilation
    # took 365 ms of a 410 ms statement at a million contacts (bench/README.md).
    options = DATABASES["default"].setdefault("OPTIONS", {})
    options["options"] = " ".join(filter(None, [options.get("options", ""), "-c jit=off"]))
DATABASES["default"].setdefault("TEST", {})
# Each process keeps its database connection between requests: opening one costs more than
# all the queries of a recipient page (issue 11, bench/README.md "Recipient pages"). A kept
# connection is checked before its first use in a request, so a database restart fails none.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["CONN_MAX_AGE"] < 0:
    raise ImproperlyConfigured("DATABASE_CONN_MAX_AGE cannot be negative (0: no kept connection).")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# django-axes first: it refuses a locked-out login before the password is even checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Staff two-factor authentication (TOTP, core/admin_site.py): every admin role sees personal
# data, so every staff user needs it wherever it is required.
STAFF_OTP_REQUIRED = env.bool("STAFF_OTP_REQUIRED", default=not DEBUG)
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="Consent Desk")
# A device's key never shows in the admin: whoever reads it can make that user's codes.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
# django-axes: after AXES_FAILURE_LIMIT failed logins (a wrong password or a wrong code) for a
# username from one IP, that pair is locked out for AXES_COOLOFF_MINUTES. Keying on the pair
# stops guessing without letting anyone lock a colleague out from elsewhere.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "core.http.client_ip"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "fr"
LANGUAGES = [("fr", _("French")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Europe/Paris"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = env.path("MEDIA_ROOT", default=VAR_DIR / "media")
MEDIA_URL = "media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Access and portability exports: readable by the DPO through the admin only.
    "private": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": env.path("PRIVATE_ROOT", default=VAR_DIR / "private")},
    },
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
if not DEBUG and EMAIL_CONFIG["EMAIL_BACKEND"].rsplit(".", 2)[-2] in {"console", "locmem", "dummy"}:
    # Confirmation links and the DPO's reminders would be lost without anyone noticing.
    raise ImproperlyConfigured(
        "EMAIL_URL must name a real mail backend when DEBUG=false, e.g. "
        "smtp+tls://user:password@smtp.example.com:587 (console, memory and dummy lose mail)"
    )
globals().update(EMAIL_CONFIG)
# Seconds an SMTP connection may stall: well under a campaign batch's claim lease (15 min),
# so a hung server ends the batch (retried) instead of outliving its claim.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=60)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Consent Desk <no-reply@localhost>")
# Marketing emails name it in `List-Unsubscribe` next to the one-click link, for mail clients
# that unsubscribe by email (an address whose mail the ESP or a person turns into unsubscribes).
LIST_UNSUBSCRIBE_MAILTO = env.str("LIST_UNSUBSCRIBE_MAILTO", default="")

# SMS (core/sms.py): console://, file:///folder, or twilio://SID:TOKEN@api.twilio.com/?from=+33...
SMS_URL = env.str("SMS_URL", default="console://")
# The short number a STOP goes to ("STOP au 36xxx"), and the whole instruction to use instead
# of the translated one; both optional.
SMS_STOP_NUMBER = env.str("SMS_STOP_NUMBER", default="")
SMS_STOP_INSTRUCTION = env.str("SMS_STOP_INSTRUCTION", default="")

# django-anymail's tracking webhooks (/anymail/<esp>/tracking/, contacts/webhooks.py): the
# basic-auth secret ("user:password") the ESP's webhook URL carries, and the ESP's own signing
# key where it signs its webhooks.
ANYMAIL = {
    name: value
    for name, value in {
        "WEBHOOK_SECRET": env.str("ANYMAIL_WEBHOOK_SECRET", default=""),
        "MAILGUN_WEBHOOK_SIGNING_KEY": env.str("MAILGUN_WEBHOOK_SIGNING_KEY", default=""),
    }.items()
    if value
}

# Security: safe unless the environment says otherwise.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Load balancers probe over plain HTTP inside the network: answer them instead of a 301.
SECURE_REDIRECT_EXEMPT = [r"^health/$"]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
# A refused form gets a page in the person's language saying what to do (core/error_views.py).
CSRF_FAILURE_VIEW = "core.error_views.csrf_failure"
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if env.bool("USE_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Content-Security-Policy of every page (django-csp): scripts and styles from the site only.
# The API docs add what Swagger UI needs (config/urls.py); the recipient pages narrow it to no
# script at all (preferences/views.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        # the one inline <style> of Django's admin (change_list.html, lists without actions)
        "style-src": ["'self'", "'sha256-blvLUW3UscWqsXGByNOqdBboM+ShWAuugp2mC/wbafU='"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# Reverse proxies (addresses or networks) whose X-Forwarded-For names the client (core/http.py).
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
for _proxy in TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError as _error:
        raise ImproperlyConfigured(
            f"TRUSTED_PROXIES: {_proxy!r} is not an IP address or network"
        ) from _error
# django-ratelimit's "ip" key: the same client IP as evidence and the audit log.
RATELIMIT_IP_META_KEY = "core.http.client_ip"

# Celery: Redis when REDIS_URL is set, else kombu's filesystem transport (no service needed).
CELERY_BROKER_URL = REDIS_URL or "filesystem://"
CELERY_BROKER_TRANSPORT_OPTIONS = (
    # Redis hands a task whose worker died unacknowledged to another worker after this delay.
    {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)}
    if REDIS_URL
    else {
        "data_folder_in": str(VAR_DIR / "celery" / "queue"),
        "data_folder_out": str(VAR_DIR / "celery" / "queue"),
        "control_folder": str(VAR_DIR / "celery" / "control"),
        "processed_folder": str(VAR_DIR / "celery" / "processed"),
        "store_processed": False,
    }
)
# The folders the embedded default writes to exist before anything opens them, so that a
# fresh clone's first `manage.py migrate` works without `bin/run`.
if not env.str("DATABASE_URL", default=""):
    VAR_DIR.mkdir(parents=True, exist_ok=True)
if not REDIS_URL:
    for _folder in ("queue", "control"):
        (VAR_DIR / "celery" / _folder).mkdir(parents=True, exist_ok=True)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="celery")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "core.beat:Scheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Touched by beat at every pass of its loop (core/beat.py) when set; docker-compose.yml's
# health check of beat reads its age.
BEAT_HEARTBEAT_FILE = env.str("BEAT_HEARTBEAT_FILE", default="")
# Task names are stable: the privacy tasks keep their consent.* and preferences.* names, which
# existing databases' periodic-task rows hold (privacy/tasks.py).
CELERY_BEAT_SCHEDULE = {
    "expire-pending-double-opt-ins": {
        "task": "consent.tasks.expire_pending_grants",
        "schedule": timedelta(minutes=15),
    },
    "verify-ledger": {"task": "consent.tasks.verify_ledger", "schedule": timedelta(hours=24)},
    # the consent rates' history of the DPO's dashboard (consent.rates)
    "snapshot-consent-rates": {
        "task": "consent.tasks.snapshot_consent_rates",
        "schedule": crontab(hour=23, minute=50),
    },
    "seal-ledger": {"task": "consent.tasks.seal_ledger", "schedule": timedelta(minutes=1)},
    # the admin home's dashboards: their counts over whole tables, read by the requests
    # (core.dashboard, whose REFRESH_EVERY says this interval)
    "refresh-dashboards": {
        "task": "core.tasks.refresh_dashboards",
        "schedule": timedelta(minutes=5),
    },
    "send-seal-head": {
        "task": "consent.tasks.send_seal_head",
        "schedule": crontab(hour=0, minute=15),
    },
    "carry-out-pending-privacy-requests": {
        "task": "consent.tasks.carry_out_pending_privacy_requests",
        "schedule": timedelta(minutes=5),
    },
    "end-pauses": {"task": "consent.tasks.end_pauses", "schedule": timedelta(hours=1)},
    "scan-sales-alerts": {
        "task": "crmsync.tasks.scan_sales_alerts",
        "schedule": timedelta(minutes=1),
    },
    "retry-erasure-acknowledgements": {
        "task": "privacy.tasks.retry_erasure_acknowledgements",
        "schedule": timedelta(minutes=1),
    },
    "privacy-deadline-reminders": {
        "task": "consent.tasks.send_deadline_reminders",
        "schedule": crontab(hour=8, minute=0),
    },
    "apply-retention": {
        "task": "preferences.tasks.apply_retention",
        "schedule": crontab(hour=3, minute=0),
    },
    "expire-proof-archive": {
        "task": "privacy.tasks.expire_proof_archive",
        "schedule": crontab(hour=2, minute=30),
    },
    # the registers of processing activities and processors kept in step (privacy.registers)
    "sync-registers": {
        "task": "privacy.tasks.sync_registers",
        "schedule": crontab(hour=2, minute=45),
    },
    "purge-privacy-exports": {
        "task": "consent.tasks.purge_privacy_exports",
        "schedule": timedelta(hours=6),
    },
    "purge-idempotency-keys": {
        "task": "core.tasks.purge_idempotency_keys",
        "schedule": timedelta(hours=1),
    },
    "forget-previous-emails": {
        "task": "preferences.tasks.forget_previous_emails",
        "schedule": timedelta(hours=1),
    },
    "purge-import-uploads": {
        "task": "contacts.tasks.purge_import_uploads",
        "schedule": timedelta(hours=1),
    },
    "advance-campaigns": {
        "task": "campaigns.tasks.advance_campaigns",
        "schedule": timedelta(minutes=1),
    },
    "purge-deliverability-events": {
        "task": "contacts.tasks.purge_deliverability_events",
        "schedule": timedelta(days=1),
    },
    # re-permission requests whose deadline passed: the purpose withdrawn from those who
    # did not confirm (campaigns.repermission)
    "apply-repermission-deadlines": {
        "task": "campaigns.tasks.apply_repermission_deadlines",
        "schedule": timedelta(hours=1),
    },
    # the safety net of the CRM push, which each commit queues at once (crmsync.push)
    "push-crm-connections": {
        "task": "crmsync.tasks.push_connections",
        "schedule": timedelta(minutes=1),
    },
    # the events every connection received marked processed (also queued after each push)
    "mark-outbox-processed": {
        "task": "crmsync.tasks.mark_outbox_processed",
        "schedule": timedelta(minutes=1),
    },
    # each CRM connection's changes read back once its pull interval passed (crmsync.pull)
    "pull-crm-connections": {
        "task": "crmsync.tasks.pull_connections",
        "schedule": timedelta(minutes=1),
    },
    # the DPO reminded of a breach 24 and 48 hours after awareness (privacy.breaches)
    "send-breach-reminders": {
        "task": "privacy.tasks.send_breach_reminders",
        "schedule": timedelta(minutes=15),
    },
}
# How long a provider's event id is remembered so that a retried webhook is applied once
# (ESPs retry for hours or a few days).
DELIVERABILITY_EVENT_TTL = timedelta(days=env.int("DELIVERABILITY_EVENT_TTL_DAYS", default=30))

# Domain settings.
DOUBLE_OPT_IN_TTL = timedelta(hours=env.int("DOUBLE_OPT_IN_TTL_HOURS", default=72))
HEALTH_WORKER_TIMEOUT = env.float("HEALTH_WORKER_TIMEOUT", default=2.0)
# /health/ reuses its broker and worker checks this many seconds (one process pings at a time).
HEALTH_CACHE_SECONDS = env.int("HEALTH_CACHE_SECONDS", default=5)
# Retention (CNIL: prospects' data three years after the last contact), per purpose in the
# admin; this is the default. Without an answer to the re-permission email, the contact is
# anonymised after the grace period.
RETENTION_DEFAULT = timedelta(days=env.int("RETENTION_DEFAULT_DAYS", default=3 * 365))
RETENTION_GRACE = timedelta(days=env.int("RETENTION_GRACE_DAYS", default=30))
# A prospect who opted out of everything keeps only the suppression hash and the proofs: the
# retention job erases the profile this long after the last refusal (time to change one's
# mind from the links already held; CNIL référentiel gestion commerciale).
RETENTION_OPT_OUT_GRACE = timedelta(days=env.int("RETENTION_OPT_OUT_GRACE_DAYS", default=30))
# Marketing messages one person may receive per channel in a day and in 7 days (SPEC §4;
# 0: no cap): the defaults of the channels staff have not set caps for in the admin
# (consent.models.FrequencyCap). Read by the eligibility rule's `frequency` reason, with the
# person's own choice.
MARKETING_CAPS = {
    "day": env.int("MARKETING_CAP_DAY", default=1),
    "week": env.int("MARKETING_CAP_WEEK", default=3),
}
if min(MARKETING_CAPS.values()) < 0:
    raise ImproperlyConfigured("MARKETING_CAP_DAY and MARKETING_CAP_WEEK cannot be negative.")
# Campaign sending: recipients per batch task, and batch tasks queued at once per step (each
# queues the next while rows are left).
CAMPAIGN_BATCH_SIZE = env.int("CAMPAIGN_BATCH_SIZE", default=200)
CAMPAIGN_PARALLEL_BATCHES = env.int("CAMPAIGN_PARALLEL_BATCHES", default=4)
# A message leaves at most this many seconds after its recipient was last checked.
CAMPAIGN_RESERVATION_SECONDS = env.float("CAMPAIGN_RESERVATION_SECONDS", default=1.0)
if CAMPAIGN_BATCH_SIZE < 1 or CAMPAIGN_PARALLEL_BATCHES < 1:
    raise ImproperlyConfigured("CAMPAIGN_BATCH_SIZE and CAMPAIGN_PARALLEL_BATCHES must be >= 1.")
# Erasure (privacy.services): people erased together in one transaction (retention, bulk
# requests); a batch that fails is retried person by person.
ERASURE_BATCH_SIZE = env.int("ERASURE_BATCH_SIZE", default=200)
if ERASURE_BATCH_SIZE < 1:
    raise ImproperlyConfigured("ERASURE_BATCH_SIZE must be >= 1.")
# CRM push (crmsync.push): failures in a row before a batch is parked as dead letters; the
# backoff after a failure (doubling from the base, with jitter, up to the cap) unless the CRM
# says Retry-After; how long a worker's claim on a connection lasts (longer than one batch
# call: a dead worker's claim expires after it); how long one push task runs before it hands
# over to a new one; and how long a queued push stands for the changes committed meanwhile.
CRM_PUSH_MAX_FAILURES = env.int("CRM_PUSH_MAX_FAILURES", default=8)
CRM_PUSH_BACKOFF_BASE = env.float("CRM_PUSH_BACKOFF_BASE", default=2.0)
CRM_PUSH_BACKOFF_CAP = env.float("CRM_PUSH_BACKOFF_CAP", default=600.0)
CRM_PUSH_LEASE = env.int("CRM_PUSH_LEASE_SECONDS", default=600)
CRM_PUSH_TIME_BUDGET = env.int("CRM_PUSH_TIME_BUDGET_SECONDS", default=60)
# The debounce needs a cache the web and the workers share (Redis): without REDIS_URL each
# process has its own, and a commit could wait for a push another process already started.
CRM_PUSH_DEBOUNCE = env.int("CRM_PUSH_DEBOUNCE_SECONDS", default=2 if REDIS_URL else 0)
if CRM_PUSH_MAX_FAILURES < 1 or CRM_PUSH_LEASE < 1 or CRM_PUSH_BACKOFF_CAP <= 0:
    raise ImproperlyConfigured(
        "CRM_PUSH_MAX_FAILURES and CRM_PUSH_LEASE_SECONDS must be >= 1, "
        "CRM_PUSH_BACKOFF_CAP above 0."
    )
# A pull's claim on its connection, how long one pull goes on, and how many records a page.
CRM_PULL_LEASE = env.int("CRM_PULL_LEASE_SECONDS", default=600)
CRM_PULL_TIME_BUDGET = env.int("CRM_PULL_TIME_BUDGET_SECONDS", default=120)
CRM_PULL_PAGE_SIZE = env.int("CRM_PULL_PAGE_SIZE", default=200)
# The processed marks queued after a push stand for the pushes of the next seconds.
CRM_PROCESSED_DEBOUNCE = env.int("CRM_PROCESSED_DEBOUNCE_SECONDS", default=2 if REDIS_URL else 0)
# a change notification's pull that found another at work comes back after this many seconds
CRM_PULL_BUSY_RETRY = env.int("CRM_PULL_BUSY_RETRY_SECONDS", default=10)
# A list uploaded in the admin is kept this long for staff to choose its mapping (then deleted).
IMPORT_UPLOAD_TTL = timedelta(hours=env.int("IMPORT_UPLOAD_TTL_HOURS", default=24))
# Access and portability exports stay downloadable by the DPO this long (then deleted).
PRIVACY_EXPORT_TTL = timedelta(days=env.int("PRIVACY_EXPORT_TTL_DAYS", default=7))
# How long the proof of an erased person's consents (identity key and evidence, encrypted) is
# kept before the archive entry and their ledger records are deleted (EDPB 05/2020 para 107:
# the limitation period of a claim; 0: deleted at once, nothing archived).
PROOF_RETENTION_YEARS = env.int("PROOF_RETENTION_YEARS", default=5)
if PROOF_RETENTION_YEARS < 0:
    raise ImproperlyConfigured("PROOF_RETENTION_YEARS cannot be negative.")
# The privacy notice version recorded with a preference-center consent while no version is
# stored (consent.PrivacyNotice): the current stored version wins.
PRIVACY_POLICY_VERSION = env.str("PRIVACY_POLICY_VERSION", default="2026-01")
# The processors a person's data goes to (GDPR Art. 13(1)(e), 15(1)(c)), told in access
# answers and receipts (core/recipients.py): a JSON list of {"name", "role", "country",
# "outside_eu" (bool), "safeguard" (required when outside_eu: e.g. "SCCs 2021/914")}.
DATA_RECIPIENTS = env.json(
    "DATA_RECIPIENTS",
    default=[
        {"name": "Demo hosting", "role": "hosting", "country": "FR", "outside_eu": False},
        {"name": "Demo ESP", "role": "email delivery", "country": "FR", "outside_eu": False},
    ]
    if DEBUG
    else [],
)
for _recipient in DATA_RECIPIENTS if isinstance(DATA_RECIPIENTS, list) else [None]:
    if not isinstance(_recipient, dict) or not all(
        str(_recipient.get(key) or "").strip() for key in ("name", "role", "country")
    ):
        raise ImproperlyConfigured(
            "DATA_RECIPIENTS: give a JSON list of objects with name, role and country, e.g. "
            '[{"name": "Brevo", "role": "email delivery", "country": "FR", "outside_eu": false}]'
        )
    if _recipient.get("outside_eu") and not str(_recipient.get("safeguard") or "").strip():
        raise ImproperlyConfigured(
            f"DATA_RECIPIENTS: {_recipient['name']} is outside the EU: name its safeguard "
            '(GDPR Art. 46), e.g. "safeguard": "SCCs 2021/914"'
        )
# Confirmation links of the preference center (email change, data download, erasure).
PREFERENCES_LINK_TTL = timedelta(hours=env.int("PREFERENCES_LINK_TTL_HOURS", default=24))
# django-ratelimit rates ("count/period": s, m, h) for the recipient pages, in the cache.
PREFERENCES_RATE_PER_TOKEN = env.str("PREFERENCES_RATE_PER_TOKEN", default="30/m")
PREFERENCES_RATE_PER_IP = env.str("PREFERENCES_RATE_PER_IP", default="120/m")
# An API write's first answer is replayed for its Idempotency-Key this long, then forgotten
# (the stored answers name people: they are not kept for ever).
IDEMPOTENCY_KEY_TTL = timedelta(hours=env.int("IDEMPOTENCY_KEY_TTL_HOURS", default=7 * 24))

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["core.authentication.ApiClientTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["core.permissions.HasScope"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.parsers.JSONParser"],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["core.throttling.ApiClientRateThrottle"],
}
# Requests per API client ("count/period": s, m, h, d), counted in the cache; empty: no limit.
API_THROTTLE_RATE = env.str("API_THROTTLE_RATE", default="1200/m")
_count, _, _period = API_THROTTLE_RATE.partition("/")
if API_THROTTLE_RATE and not (_count.isdigit() and _period[:1] in ("s", "m", "h", "d")):
    raise ImproperlyConfigured("API_THROTTLE_RATE: give count/period, e.g. 1200/m (s, m, h, d).")
# Erasure requests one API client may file a day before the next ones wait for the DPO.
API_ERASURE_DAILY_LIMIT = env.int("API_ERASURE_DAILY_LIMIT", default=100)
SPECTACULAR_SETTINGS = {
    "TITLE": "Consent Desk API",
    "DESCRIPTION": "Contacts, consents with evidence, and privacy requests.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "consent.api.schema.one_or_many_consents",
    ],
    "ENUM_NAME_OVERRIDES": {
        "ContactStatusEnum": "contacts.models.ContactStatus",
        "ConsentStatusEnum": "consent.models.ConsentStatus",
        "PrivacyRequestStatusEnum": "privacy.models.PrivacyRequestStatus",
        "ChannelEnum": "consent.models.Channel",
        "ConsentRecordActionEnum": "consent.models.ConsentAction",
        "ActorEnum": "consent.models.Actor",
        "ConsentInputActorEnum": "consent.api.serializers.API_ACTORS",
        "StepChannelEnum": "campaigns.models.StepChannel",
        "LifecycleStageEnum": "contacts.models.LifecycleStage",
        "LanguageEnum": "contacts.models.Language",
        "DeliverabilityEventTypeEnum": "contacts.models.DeliverabilityEventType",
        "PrivacyRequestTypeEnum": "privacy.models.PrivacyRequestType",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # the tokens of the recipient pages never reach a log (preferences/logging.py)
    "filters": {"secret_paths": {"()": "preferences.logging.SecretPathFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["secret_paths"]}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # Django's own loggers (4xx paths, runserver's request lines) through the same handler
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
