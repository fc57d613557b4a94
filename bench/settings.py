"""The production settings plus a trivial view, for the benchmarks only (never deployed)."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"

# mail is built as SMTP would build it, counted and dropped (the checks refuse a dummy backend)
EMAIL_BACKEND = "bench.harness.CountingBackend"
