"""An audience count never scans the suppression list once per contact, however long the list:
`NOT IN (SELECT ...)` hashed the list once per query only while it fitted `work_mem`, then
scanned all of it for every contact (at a million contacts and 120,000 suppressions the count
had not finished after ten minutes). Each digest is an anti-join (the list read once, hashed
in batches) or, run per contact, one look-up of the digest in the list's index."""

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from consent.eligibility import eligible_contacts
from contacts.models import Contact, Suppression
from tests.factories import ContactFactory, PurposeFactory, grant

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def test_the_suppression_list_is_never_scanned_per_contact_even_when_it_outgrows_memory() -> None:
    purpose = PurposeFactory(channels=["email"])
    for contact in ContactFactory.create_batch(3):
        grant(contact, purpose, "email")
    Suppression.objects.bulk_create(
        Suppression(digest=f"{n:064x}", kind="email", reason="global_unsubscribe")
        for n in range(3000)
    )
    audience = eligible_contacts(purpose, "email", timezone.now())
    sql, params = audience.values("pk").query.sql_with_params()

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE contacts_suppression")
        cursor.execute("SET LOCAL work_mem = '64kB'")  # the list no longer fits
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        (plan,) = cursor.fetchone()

    reads = list(_suppression_reads(json.loads(plan) if isinstance(plan, str) else plan))
    # the email, its quoted spelling and the phone
    assert len(reads) == 3, reads
    for in_sub_plan, condition in reads:
        # read once for the query (a join), or per contact as one look-up of its digest
        assert not in_sub_plan or "digest =" in condition, reads
    assert audience.count() == 3


@pytest.mark.parametrize("channel", ["email", "sms", "phone"])
def test_the_audience_count_tests_only_columns_of_the_contacts_audience_index(
    channel: str,
) -> None:
    """Every column the count tests of a contact is in `contact_audience`, and the count keeps
    to the contacts the index holds, so PostgreSQL can read them from the index alone, no row
    of the table (at a million contacts, 0.72 s against 1.0 s; bench/README.md). A condition
    on a column left out of the index fails here."""
    purpose = PurposeFactory(channels=[channel])
    audience = eligible_contacts(purpose, channel, timezone.now())
    sql, params = audience.values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        sql = cursor.mogrify(sql, params).decode()

    (index,) = [index for index in Contact._meta.indexes if index.name == "contact_audience"]
    covered = {Contact._meta.get_field(name).column for name in [*index.fields, *index.include]}
    # the outer contact's columns, in its own conditions and in the correlated subqueries
    tested = set(re.findall(r'"contacts_contact"\."(\w+)"', sql))
    assert tested - covered == set()
    # the index's condition, which the count's must imply
    assert "NOT (\"contacts_contact\".\"status\" IN ('erased', 'merged'))" in sql
    assert '"contacts_contact"."processing_restricted_at" IS NULL' in sql


def _suppression_reads(
    nodes: list[dict[str, Any]], *, in_sub_plan: bool = False
) -> Iterator[tuple[bool, str]]:
    """(run per outer row, its index condition) of each read of the suppression list."""
    for node in nodes:
        plan = node.get("Plan", node)
        under = in_sub_plan or plan.get("Parent Relationship") == "SubPlan"
        if plan.get("Relation Name") == "contacts_suppression":
            yield under, plan.get("Index Cond", "")
        yield from _suppression_reads(plan.get("Plans", []), in_sub_plan=under)
