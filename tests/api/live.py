"""Real HTTP against `live_server`, from several threads at once (concurrency tests)."""

import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")

# The server threads only see committed rows, hence a transactional test. No serialized
# rollback anywhere: reloading the migrations' rows clashes with the content types that a plain
# transactional test's flush recreates; the only other such row, the ledger head, is recreated
# on first use.
LIVE_DB = pytest.mark.django_db(transaction=True)


def post_over_http(
    url: str, key: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """One real HTTP request; answers (status, body bytes)."""
    request = urllib.request.Request(  # noqa: S310 - the test server's own URL
        url,
        data=body,
        method="POST",
        headers={
            "Authorization": f"Token {key}",
            "Content-Type": "application/json",
            **(headers or {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def at_the_same_time(work: Callable[[], T], times: int) -> list[T]:
    """Run `work()` in `times` threads released together; return every result."""
    barrier = threading.Barrier(times)
    results: list[T] = []
    failures: list[BaseException] = []

    def target() -> None:
        try:
            barrier.wait(timeout=30)
            results.append(work())
        except BaseException as error:  # noqa: BLE001 - handed back to the test
            failures.append(error)

    threads = [threading.Thread(target=target) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if failures:
        raise failures[0]
    assert len(results) == times, "a request did not finish in time"
    return results
