"""Statement budgets: the work a call costs, counted as the workers run it."""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection
from django.test.utils import CaptureQueriesContext

TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")


@contextmanager
def at_most_statements(limit: int) -> Iterator[None]:
    """At most `limit` statements of work. Django also logs the transaction's BEGIN and COMMIT
    (or SAVEPOINT and RELEASE inside a transaction): those are not counted."""
    with CaptureQueriesContext(connection) as context:
        yield
    work = [
        query["sql"]
        for query in context.captured_queries
        if not query["sql"].upper().startswith(TRANSACTION_CONTROL)
    ]
    assert len(work) <= limit, f"{len(work)} statements:\n" + "\n".join(sql[:150] for sql in work)
