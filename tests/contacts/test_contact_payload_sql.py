"""The outbox payload of a contact written by the database (`contact_payload_sql`, used by
imports on PostgreSQL) is the one `contact_payload` builds in Python, value for value."""

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from django.db import connection

from contacts.models import Contact
from contacts.services import CONTACT_PAYLOAD_FIELDS, contact_payload, contact_payload_sql
from tests.factories import ContactFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def _payload_by_sql(contact: Contact) -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {contact_payload_sql('c')} FROM {Contact._meta.db_table} AS c "  # noqa: S608
            "WHERE c.id = %s",
            [contact.pk],
        )
        (payload,) = cursor.fetchone()
    return json.loads(payload)  # Django leaves jsonb to its fields to decode


@pytest.mark.parametrize(
    "values",
    [
        {},
        {
            "first_name": "Zoé",
            "last_name": 'O\'Neil "le" Grand',
            "phone": "+33612345678",
            "company": "Ça & Là",
            "country": "FR",
            "language": "fr",
            "b2b": True,
            "customer_since": date(999, 1, 2),
            "customer_until": date(2026, 12, 31),
            "paused_until": datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC),
            "profiling_objected_at": datetime(2026, 1, 1, tzinfo=UTC),
        },
        {
            "b2b": False,
            "paused_until": datetime(2027, 2, 3, 4, 5, 6, 7, tzinfo=UTC),
            "marketing_objected_at": datetime(2026, 5, 5, 5, 5, 5, 123456, tzinfo=UTC),
        },
    ],
    ids=["defaults", "every-field-set", "microseconds"],
)
def test_the_payload_written_by_the_database_is_the_one_python_builds(
    values: dict[str, Any],
) -> None:
    contact = ContactFactory(**values)
    contact.refresh_from_db()

    assert _payload_by_sql(contact) == contact_payload(contact)


def test_the_payload_reads_every_field_it_declares() -> None:
    sql = contact_payload_sql("c")

    for name in CONTACT_PAYLOAD_FIELDS:
        column = Contact._meta.get_field(name).column
        assert f'c."{column}"' in sql
