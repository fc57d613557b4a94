"""Holding back what a Celery task would queue, for tests that run the task themselves."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from celery import Task


@contextmanager
def held_back(task: Task) -> Iterator[list[tuple[Any, ...]]]:
    """While open, `task.delay(...)` hands its arguments to the yielded list instead of the
    broker (or of the in-process run when tasks are eager): a test sees what a commit queued,
    and runs it when, and as often as, it chooses."""
    calls: list[tuple[Any, ...]] = []
    with mock.patch.object(task, "delay", side_effect=lambda *args: calls.append(args)):
        yield calls
