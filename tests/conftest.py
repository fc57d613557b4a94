"""Shared fixtures: API clients with scopes, the mailbox, and the real Celery worker."""

import contextlib
import email
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.urls import get_resolver
from django.utils import translation
from rest_framework.test import APIClient

from tests.factories import ApiClientFactory

ROOT = Path(__file__).resolve().parent.parent
USES_REAL_WORKER = not settings.CELERY_TASK_ALWAYS_EAGER
WORKER_QUEUE = settings.CELERY_TASK_DEFAULT_QUEUE


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    on_postgres = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    for item in items:
        if "postgres" in item.keywords and not on_postgres:
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL)"))
        if "worker" in item.keywords and not USES_REAL_WORKER:
            item.add_marker(pytest.mark.skip(reason="needs a broker (set REDIS_URL)"))


@pytest.fixture(scope="session", autouse=True)
def views_imported_before_any_frozen_clock() -> None:
    """Import every view before a test freezes the clock: a module first imported under
    freezegun keeps its fake clock (DRF's throttles bind `time.time` at import), which then
    breaks every later request. Which test first loads the URLs depends on what is run."""
    get_resolver().url_patterns  # noqa: B018 - loading the URLconf imports the views


@pytest.fixture(scope="session", autouse=True)
def flush_past_the_truncate_refusal() -> Iterator[None]:
    """Transactional tests end with `flush`, a TRUNCATE that PostgreSQL refuses on the ledger's
    append-only tables (consent 0011): between tests, the flush runs with triggers off."""
    if connection.vendor != "postgresql":
        yield
        return
    operations = type(connection.ops)
    original = operations.sql_flush

    def sql_flush(self: Any, *args: Any, **kwargs: Any) -> list[str]:
        statements = original(self, *args, **kwargs)
        if not statements:
            return statements
        return ["SET LOCAL session_replication_role = replica", *statements]

    operations.sql_flush = sql_flush  # type: ignore[method-assign]
    yield
    operations.sql_flush = original  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def english_by_default() -> Iterator[None]:
    """Domain messages are asserted in English unless a test chooses a language."""
    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def fresh_rate_limits() -> Iterator[None]:
    """Rate-limit counters live in the (per-process) cache: each test starts from zero."""
    cache.clear()
    yield


@pytest.fixture
def api() -> Callable[..., APIClient]:
    """`api(scopes=[...])`: a DRF test client authenticated as a new API client."""

    def make(scopes: list[str] | None = None, **kwargs: Any) -> APIClient:
        factory_kwargs = {"scopes": scopes} if scopes is not None else {}
        client_record = ApiClientFactory(**factory_kwargs, **kwargs)
        # Integrators' messages are asserted in English; a request may ask for French.
        client = APIClient(HTTP_ACCEPT_LANGUAGE="en")
        client.credentials(HTTP_AUTHORIZATION=f"Token {client_record.plain_key}")
        client.record = client_record
        return client

    return make


class Mailbox:
    """The messages Django's file-based email backend wrote, in this process or the worker."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def clear(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True, exist_ok=True)

    @property
    def messages(self) -> list[Message]:
        found = []
        for path in sorted(self.directory.glob("*.log"), key=lambda p: p.stat().st_mtime):
            for chunk in path.read_bytes().split(b"-" * 79):
                if chunk.strip():
                    found.append(email.message_from_bytes(chunk.strip(b"\n")))
        return found

    def wait(self, count: int = 1, timeout: float = 20.0) -> list[Message]:
        return wait_for(lambda: self.messages if len(self.messages) >= count else None, timeout)


@pytest.fixture
def mailbox(settings: Any) -> Iterator[Mailbox]:
    # pytest-django switches this process to the locmem backend; eager tasks send from here.
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    box = Mailbox(Path(settings.EMAIL_FILE_PATH))
    box.clear()
    yield box
    box.clear()


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Poll until `condition()` is truthy (tasks may run on a separate worker); return it."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def message_text(message: Message) -> str:
    """The plain-text body of an email."""
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            return part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
    return ""


@pytest.fixture(scope="session")
def celery_worker(
    django_db_setup: None, django_db_blocker: Any
) -> Iterator[subprocess.Popen | None]:
    """A real `celery -A config worker` on the test database, when a broker is configured."""
    if not USES_REAL_WORKER:
        yield None
        return
    with django_db_blocker.unblock():
        database_name = connection.settings_dict["NAME"]
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "TEST_MAIL_DIR": settings.EMAIL_FILE_PATH,
        "DATABASE_URL": _database_url(database_name),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "-Q",
            WORKER_QUEUE,
            "-n",
            f"{WORKER_QUEUE}@%h",
        ],
        cwd=ROOT,
        env=environment,
    )
    try:
        from config.celery import app

        wait_for(
            lambda: app.control.ping(
                destination=[f"{WORKER_QUEUE}@{os.uname().nodename}"], timeout=0.5
            ),
            timeout=60,
        )
        _worker_running.append(True)
        yield process
    finally:
        _worker_running.clear()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


# whether the session's worker runs (from the first test that asked for it to the end)
_worker_running: list[bool] = []


@pytest.fixture(autouse=True)
def tasks_done_before_the_flush(
    request: pytest.FixtureRequest, _django_db_marker: None
) -> Iterator[None]:
    """A transactional test ends with a flush (TRUNCATE of every table), which deadlocks with
    a task the session's worker is still running on them (a push queued by a commit, the
    processed marks queued by that push): when the test queued tasks, wait for the worker
    first. Torn down before the database fixture, since it asks for it."""
    marker = request.node.get_closest_marker("django_db")
    transactional = "transactional_db" in request.fixturenames or bool(
        marker and marker.kwargs.get("transaction")
    )
    if not (USES_REAL_WORKER and transactional):
        yield
        return
    from celery.signals import before_task_publish

    published: list[bool] = []

    def noted(**_kwargs: Any) -> None:
        published.append(True)

    before_task_publish.connect(noted, weak=False)
    try:
        yield
    finally:
        before_task_publish.disconnect(noted)
        if published and _worker_running:
            # (a worker the test itself stopped leaves nothing running: no need to wait)
            with contextlib.suppress(AssertionError):
                worker_settled()


def worker_settled(timeout: float = 30.0) -> None:
    """Wait until the real worker has run every task queued so far: its queue is empty and it
    holds none (a solo worker answers `inspect` only between two tasks). A test that queued
    tasks whose effect it cannot see calls this before it ends, so that no task still writes
    while the test's tables are emptied."""
    if not USES_REAL_WORKER:
        return  # tasks ran in this process, each before the call that queued it returned
    from config.celery import app

    name = f"{WORKER_QUEUE}@{os.uname().nodename}"

    def settled() -> bool:
        with app.connection_for_read() as broker:
            try:
                waiting = broker.default_channel.queue_declare(WORKER_QUEUE, passive=True)
            except broker.channel_errors:
                waiting = None  # Redis keeps no empty queue
        if waiting is not None and waiting.message_count:
            return False
        inspect = app.control.inspect(destination=[name], timeout=1.0)
        active, reserved = inspect.active() or {}, inspect.reserved() or {}
        return name in active and not active[name] and not reserved.get(name)

    wait_for(settled, timeout=timeout)


def _database_url(name: str) -> str:
    current = settings.DATABASES["default"]
    user = current.get("USER") or "postgres"
    password = f":{current['PASSWORD']}" if current.get("PASSWORD") else ""
    host = current.get("HOST") or "127.0.0.1"
    port = current.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{name}"
