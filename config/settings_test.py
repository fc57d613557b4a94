"""Test settings: the production settings with test-only environment defaults.

Without `REDIS_URL`, Celery tasks run in-process (the embedded default); with it, a real
worker started by the test session executes them (see tests/conftest.py).
"""

import os
from pathlib import Path

_mail_dir = Path(__file__).resolve().parent.parent / "var" / "test-mail" / str(os.getpid())
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-that-is-long-enough-1234567890")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
# Tests run with production settings (DEBUG off), so with every secret production requires.
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SITE_URL", "http://127.0.0.1:8000")
os.environ.setdefault("SUPPRESSION_HMAC_KEY", "test-only-suppression-hmac-key-1234567890")
os.environ.setdefault("LEDGER_SEAL_KEY", "test-only-ledger-seal-key-1234567890")
os.environ.setdefault("FIELD_ENCRYPTION_KEY", "dGVzdC1vbmx5LWZpZWxkLWVuY3J5cHRpb24ta2V5ISE=")
os.environ.setdefault("EMAIL_URL", f"filemail://{_mail_dir}")
os.environ.setdefault("CONTROLLER_NAME", "Vélos Martin SAS")
os.environ.setdefault("CONTROLLER_ADDRESS", "12 rue des Cyclistes, 69002 Lyon")
os.environ.setdefault("DPO_CONTACT", "dpo@velos-martin.example")
os.environ.setdefault("PRIVACY_NOTICE_URL", "https://www.velos-martin.example/confidentialite")
os.environ.setdefault("TEST_MAIL_DIR", str(_mail_dir))
# exports written by tests never mix with (nor are swept from) a development server's
os.environ.setdefault("PRIVATE_ROOT", str(_mail_dir.parent.parent / "test-private"))
os.environ.setdefault("CELERY_QUEUE", f"test-{os.getpid()}")
os.environ.setdefault(
    "CELERY_TASK_ALWAYS_EAGER", "false" if os.environ.get("REDIS_URL") else "true"
)

from config.settings import *  # noqa: E402,F403

# Every test process and the worker it starts write mail as files, read by the mailbox fixture.
EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
EMAIL_FILE_PATH = os.environ["TEST_MAIL_DIR"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# The rate limits count in the cache: a per-process cache that tests can clear without touching
# Redis, where the Celery broker keeps its queues.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
