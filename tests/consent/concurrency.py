"""Run the same work in several threads at once, as concurrent requests or job runs would."""

import threading
from collections.abc import Callable
from typing import TypeVar

from django.db import connection

T = TypeVar("T")


def run_concurrently(work: Callable[[], T], *, times: int) -> list[T]:
    """Start `times` threads, release them together, return their results (re-raise errors).

    Each thread has its own database connection, closed when it is done: the test needs
    `transactional_db` so the threads see each other's commits.
    """
    barrier = threading.Barrier(times)
    results: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            barrier.wait(timeout=30)
            results.append(work())
        except BaseException as error:  # noqa: BLE001 - handed back to the test below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=target) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        raise errors[0]
    assert len(results) == times, "a thread did not finish in time"
    return results
