"""A large import on PostgreSQL ends by refreshing the planner's statistics of the tables it
grew (with autovacuum late, a planner that believes a table small reads all of it: a send or
an erasure right after the import); a small one leaves them to autovacuum."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connection

import contacts.imports
from tests.contacts.imports import csv_bytes, run_import
from tests.factories import PurposeFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

LINES = [
    "email,first_name,consent_date,consent_wording,consent_source",
    "ana@example.fr,Ana,2026-03-14,J'accepte les offres.,salon",
    "bo@example.fr,Bo,2026-03-14,J'accepte les offres.,salon",
    "cy@example.fr,Cy,2026-03-14,J'accepte les offres.,salon",
]


@contextmanager
def statements() -> Iterator[list[str]]:
    seen: list[str] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        yield seen


def _analyzed(seen: list[str]) -> list[str]:
    return [sql for sql in seen if sql.startswith("ANALYZE")]


def test_a_large_import_refreshes_the_statistics_of_the_tables_it_grew(monkeypatch) -> None:
    monkeypatch.setattr(contacts.imports, "BATCH_SIZE", 3)  # "large": a batch's worth
    PurposeFactory(slug="offers", channels=["email"])

    with statements() as seen:
        done = run_import(
            csv_bytes(LINES), consent={"purpose": "offers", "channel": "email"}, batch_size=2
        )

    assert (done.status, done.created, done.consents_recorded) == ("done", 3, 3)
    (analyze,) = _analyzed(seen)
    for table in (
        "contacts_contact",
        "contacts_timelineevent",
        "crmsync_outboxevent",
        "consent_consentrecord",
        "consent_consentevidence",
        "consent_consentstate",
    ):
        assert f'"{table}"' in analyze


def test_a_small_import_leaves_the_statistics_to_autovacuum() -> None:
    with statements() as seen:
        done = run_import(csv_bytes([line.split(",", 2)[0] for line in LINES]))

    assert (done.status, done.created) == ("done", 3)
    assert _analyzed(seen) == []
