"""The CRM pull benchmark (bench/crm_sync.py pull) compares like with like: its bare loop
asks the HubSpot emulator (in its own process) the same searches as `connection_pull`, and
ends with the same contacts, links and withdrawals in our database; the check that every
run is complete refuses an incomplete one."""

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection, transaction

from bench.crm_sync import (
    PULLED,
    PullEmulator,
    baseline_pull,
    product_pull,
    pull_check,
    pull_expected,
    pull_fixture,
    pull_since,
)
from consent.models import ConsentState, ConsentStatus
from contacts.models import Contact
from crmsync.models import ContactLink

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

# three pages of 200, three contacts to a millisecond (the cursor's ids at one time)
CONTACTS = 450


@pytest.fixture(scope="module")
def emulator() -> Iterator[PullEmulator]:
    running = PullEmulator()
    try:
        running.load(contacts=CONTACTS, since=pull_since())
        yield running
    finally:
        running.stop()


def ours() -> dict[str, Any]:
    """Our contacts' mapped fields, their links and the withdrawn newsletter consents."""
    return {
        "contacts": sorted(Contact.objects.values_list(*(o for o, _t in PULLED))),
        "links": sorted(ContactLink.objects.values_list("contact__email", "remote_id")),
        "withdrawn": sorted(
            ConsentState.objects.filter(status=ConsentStatus.WITHDRAWN).values_list(
                "contact__email", "purpose__slug", "channel"
            )
        ),
    }


def run_undone(emulator: PullEmulator, work: Callable[[], dict[str, Any]], side: str) -> Any:
    """Run a side from the fixture, checked, then rolled back: what it did and asked."""
    emulator.counters_reset()
    with transaction.atomic():
        result = work()
        checked = pull_check(side, CONTACTS, connection_id(), result)
        state = ours()
        transaction.set_rollback(True)
    return result, emulator.stats(), checked, state


def connection_id() -> int:
    from crmsync.models import Connection

    return int(Connection.objects.get(name="hubspot-pull-bench").pk)


def test_the_baseline_asks_the_same_searches_and_ends_with_the_same_contacts_and_withdrawals(
    emulator: PullEmulator,
) -> None:
    pulled = pull_fixture(CONTACTS, emulator.url)

    product, by_product, product_checked, product_state = run_undone(
        emulator, lambda: product_pull(pulled), "product"
    )
    baseline, by_baseline, baseline_checked, baseline_state = run_undone(
        emulator, lambda: baseline_pull(emulator.url, pulled), "baseline"
    )

    expected = pull_expected(CONTACTS)
    assert expected == {
        "fetched": 450,
        "created": 315,
        "updated": 45,
        "unchanged": 90,
        "consents": 45,
    }
    assert {name: product[name] for name in expected} == expected
    assert product["pages"] == baseline["pages"] == 3
    assert baseline["fetched"] == CONTACTS and baseline["consents"] == expected["consents"]
    # the same request bodies, the same pages served
    for name in ("searches", "served", "search_bytes", "statuses"):
        assert by_product[name] == by_baseline[name], name
    assert by_product["searches"] == 3 and by_product["served"] == CONTACTS + 4
    assert product_state == baseline_state
    assert len(product_state["withdrawn"]) == expected["consents"]
    assert product_checked["ledger_problems"] == 0
    assert product_checked["crm_records"] == baseline_checked["baseline_withdrawals"] == 45


def test_the_check_refuses_a_run_that_lost_a_contact_s_link(emulator: PullEmulator) -> None:
    pulled = pull_fixture(CONTACTS, emulator.url)

    with transaction.atomic():
        result = baseline_pull(emulator.url, pulled)
        pull_check("baseline", CONTACTS, pulled, result)  # complete: passes
        ContactLink.objects.filter(remote_id="1001").delete()
        with pytest.raises(RuntimeError, match="links"):
            pull_check("baseline", CONTACTS, pulled, result)
        transaction.set_rollback(True)


def test_the_check_refuses_a_withdrawal_left_out(emulator: PullEmulator) -> None:
    pulled = pull_fixture(CONTACTS, emulator.url)

    with transaction.atomic():
        result = baseline_pull(emulator.url, pulled)
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM bench_pull_withdrawal WHERE contact_id IN "
                "(SELECT id FROM contacts_contact WHERE email = %s)",
                ["person0@bench-pull.example"],
            )
        with pytest.raises(RuntimeError, match="baseline withdrawals"):
            pull_check("baseline", CONTACTS, pulled, result)
        transaction.set_rollback(True)
