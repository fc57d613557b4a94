"""`core.bulk.bulk_update_rows`: each row's own values and the constants shared by all, in
one statement on PostgreSQL (arrays), through `update` and `bulk_update` elsewhere; the
rows not named are left as they were."""

from datetime import UTC, date, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from contacts.models import Contact
from core.bulk import bulk_update_rows
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def test_each_row_gets_its_values_and_every_row_the_constants() -> None:
    first, second, untouched = ContactFactory.create_batch(3, city="Lyon", country="FR")
    paused = datetime(2027, 1, 2, 3, 4, 5, 600, tzinfo=UTC)

    bulk_update_rows(
        Contact,
        [
            {"id": first.pk, "first_name": 'Zoé "la" Grande', "customer_since": date(2020, 1, 2)},
            {"id": second.pk, "first_name": "", "customer_since": None},
        ],
        constants={"city": "", "paused_until": paused, "b2b": True},
    )

    first.refresh_from_db()
    second.refresh_from_db()
    untouched.refresh_from_db()
    assert (first.first_name, first.customer_since) == ('Zoé "la" Grande', date(2020, 1, 2))
    assert (second.first_name, second.customer_since) == ("", None)
    for contact in (first, second):
        assert (contact.city, contact.paused_until, contact.b2b, contact.country) == (
            "",
            paused,
            True,
            "FR",
        )
    assert (untouched.city, untouched.paused_until) == ("Lyon", None)


@pytest.mark.postgres
def test_on_postgresql_many_rows_are_one_statement() -> None:
    contacts = ContactFactory.create_batch(50)
    rows = [{"id": c.pk, "last_name": f"N{c.pk}"} for c in contacts]

    with CaptureQueriesContext(connection) as queries:
        bulk_update_rows(Contact, rows, constants={"city": "Paris"})

    assert len(queries) == 1
    assert sorted(Contact.objects.values_list("last_name", "city")) == sorted(
        (f"N{c.pk}", "Paris") for c in contacts
    )


def test_no_rows_write_nothing() -> None:
    contact = ContactFactory(city="Lyon")

    with CaptureQueriesContext(connection) as queries:
        bulk_update_rows(Contact, [], constants={"city": ""})

    assert len(queries) == 0
    contact.refresh_from_db()
    assert contact.city == "Lyon"
