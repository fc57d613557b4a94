"""Celery workers a test starts, kills and replaces, on a queue and a Redis database of its own.

Unacknowledged messages live in Redis under keys shared by every queue of a database
(`unacked`, `unacked_index`), and a worker with a short visibility timeout hands back every one
older than that timeout: on a database of their own, these workers never redeliver a message
that another test process's worker is still running.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis
from celery import Task
from django.conf import settings
from django.db import connection
from kombu import Exchange, Queue

from config.celery import app
from tests.conftest import _database_url

ROOT = Path(__file__).resolve().parents[2]
# kombu's Redis transport keeps the messages delivered and not yet acknowledged here.
UNACKED = "unacked"
UNACKED_INDEX = "unacked_index"
MAILBOX_BINDINGS = "_kombu.binding.celery.pidbox"


class Workers:
    """Worker processes on one queue; `close()` ends those still running and purges the queue."""

    def __init__(
        self,
        *,
        queue: str,
        redis_database: int,
        visibility_timeout: int,
        environment: dict[str, str] | None = None,
    ) -> None:
        self.queue = queue
        self.visibility_timeout = visibility_timeout
        # more variables for the workers' environment (they win over the defaults below)
        self.environment = environment or {}
        self.broker_url = _redis_url_with_database(settings.REDIS_URL, redis_database)
        self.redis = redis.Redis.from_url(self.broker_url)
        self.processes: list[subprocess.Popen] = []

    def start(self) -> subprocess.Popen:
        """A `celery -A config worker` process (solo pool) on the test database and this queue."""
        environment = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings_test",
            "DATABASE_URL": _database_url(connection.settings_dict["NAME"]),
            "REDIS_URL": self.broker_url,
            "CELERY_QUEUE": self.queue,
            "CELERY_VISIBILITY_TIMEOUT": str(self.visibility_timeout),
            **self.environment,
        }
        number = len(self.processes) + 1
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
                "--without-heartbeat",
                "-Q",
                self.queue,
                "-n",
                f"{self.queue}-{number}@%h",
            ],
            cwd=ROOT,
            env=environment,
        )
        self.processes.append(process)
        return process

    def send(self, task: Task) -> str:
        """Queue `task` (no arguments) for these workers; answer the message's task id."""
        with app.connection_for_write(self.broker_url) as broker:
            return task.apply_async(queue=self.queue, connection=broker).id

    def unacknowledged_since(self, task_id: str) -> float | None:
        """When the broker handed out the message of `task_id` still unacknowledged (epoch)."""
        for tag, stored in self.redis.hgetall(UNACKED).items():
            message, _exchange, _routing_key = json.loads(stored)
            if message["headers"]["id"] == task_id:
                return self.redis.zscore(UNACKED_INDEX, tag)
        return None

    def queued(self) -> int:
        """Messages waiting in the queue, not yet handed to a worker."""
        return self.redis.llen(self.queue)

    def kill(self, process: subprocess.Popen) -> None:
        """SIGKILL, as the OOM killer or a lost machine would: no shutdown, no acknowledgement."""
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def close(self) -> None:
        """Stop the workers still running (warm shutdown), then purge and drop the queue."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in self.processes:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with app.connection_for_write(self.broker_url) as broker:
            queue = Queue(self.queue, Exchange(self.queue), routing_key=self.queue)(broker)
            queue.declare()  # known to this connection, so that delete() drops its binding too
            queue.purge()
            queue.delete()
        # A killed worker leaves its remote-control mailbox bound; a warm shutdown unbinds it.
        for member in self.redis.smembers(MAILBOX_BINDINGS):
            if f"{self.queue}-".encode() in member:
                self.redis.srem(MAILBOX_BINDINGS, member)
        self.redis.close()


def _redis_url_with_database(url: str, database: int) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))
