"""The preference page reads the database a fixed number of times, however many purposes."""

from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from consent.models import LegalBasis
from consent.services import purpose_wording_update
from contacts.models import Contact
from tests.factories import InterestFactory, PurposeFactory, grant
from tests.preferences.conftest import BROWSER, center_path, read_page

pytestmark = pytest.mark.django_db

# Token, purposes with wordings, states, interests, chosen interests, suppression, and the
# rate limits' cache (not SQL): well under this whatever the number of purposes.
QUERY_BOUND = 12


def add_purposes(contact: Contact, start: int, count: int) -> None:
    """Purposes on two channels each, in every state the page distinguishes."""
    for number in range(start, start + count):
        basis = LegalBasis.LEGITIMATE_INTERESTS if number % 5 == 0 else LegalBasis.CONSENT
        if number % 7 == 0:
            basis = LegalBasis.CONTRACT
        purpose = PurposeFactory(
            slug=f"purpose-{number:02}",
            legal_basis=basis,
            is_profiling=number % 6 == 0,
            double_opt_in=number % 4 == 0,
            channels=["email", "sms"],
        )
        if number % 3 == 0:
            purpose_wording_update(
                purpose=purpose, wording_fr=f"V2 {number}", wording_en=f"V2 {number}"
            )
        if basis == LegalBasis.CONSENT and number % 2 == 0:
            grant(contact, purpose, channel="email")  # granted, or pending (double opt-in)
        if basis != LegalBasis.CONTRACT and number % 3 == 1:
            grant(contact, purpose, channel="sms", action="withdraw", evidence=None)


def page_queries(client: Client, token: str) -> tuple[int, Any]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(center_path(token), **BROWSER)
    assert response.status_code == 200
    return len(queries), response


def test_preference_page_query_count_does_not_grow_with_purposes(
    client: Client,
    camille: Contact,
    token: str,
    django_assert_max_num_queries: Any,
) -> None:
    # given three purposes, interests, and a first visit (nothing cached on the way)
    camille.interests.add(InterestFactory(slug="cycling"))
    InterestFactory(slug="hiking")
    add_purposes(camille, 1, 3)
    client.get(center_path(token), **BROWSER)

    with django_assert_max_num_queries(QUERY_BOUND):
        with_three, page = page_queries(client, token)
    assert len({box.split(":")[0] for box in read_page(page).boxes()}) == 3

    # when there are thirty
    add_purposes(camille, 4, 27)

    with django_assert_max_num_queries(QUERY_BOUND):
        with_thirty, page = page_queries(client, token)

    # then the page reads the database as many times
    assert with_thirty == with_three
    switchable = {box.split(":")[0] for box in read_page(page).boxes()}
    assert len(switchable) == 30 - len([n for n in range(1, 31) if n % 7 == 0])


def test_unsubscribed_page_query_count_does_not_grow_with_purposes(
    client: Client, camille: Contact, token: str
) -> None:
    # the resubscribe banner lists what "unsubscribe from all" withdrew: no query per row
    add_purposes(camille, 1, 3)
    client.post(center_path(token), {"form": "unsubscribe"}, **BROWSER)
    with_three, _page = page_queries(client, token)

    add_purposes(camille, 4, 27)
    client.post(center_path(token), {"form": "unsubscribe"}, **BROWSER)
    with_thirty, page = page_queries(client, token)

    assert with_thirty == with_three <= QUERY_BOUND
    assert 'id="resubscribe"' in page.content.decode()
