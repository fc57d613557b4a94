"""The recipient pages' SQL budgets (issue 11): the preference page in at most 5 queries, a
first one-click unsubscribe in at most 15, counted outside any test transaction (as in
production: no savepoints), through the HTTP client, from a plain preference link and from the
one-click link of a campaign message (whose campaign the unsubscribe is attributed to).

The person is the benchmark's (bench/preference_pages.py): five marketing purposes on email
and SMS (four consent, one of them profiling, one legitimate interest), four interests, two
chosen, three grants with full evidence. A first one-click withdraws the three grants and
objects on the two channels of the legitimate interest: five ledger records; and attributes the
unsubscribe to the campaign message that carried the link, if one did (one UPDATE, issue 13).
The withdrawals' timeline moments and outbox events go in the same statements as the
unsubscribe's own (`consent.services.Announcements`).
"""

from collections import Counter
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.test.utils import CaptureQueriesContext

from consent.models import ConsentRecord, ConsentStatus, LegalBasis, Purpose
from contacts.models import Contact, Suppression, TimelineKind
from crmsync.models import OutboxEvent, OutboxTopic
from preferences.services import preference_token_issue
from tests.campaigns.test_feedback_attribution import row, sent, unsubscribe_token
from tests.factories import (
    ContactFactory,
    InterestFactory,
    PurposeFactory,
    campaign_make,
    email_step,
    grant,
)
from tests.preferences.conftest import BROWSER, center_path, read_page, unsubscribe_path

pytestmark = pytest.mark.django_db(transaction=True)

PAGE_BUDGET = 5
ONE_CLICK_BUDGET = 15
ONE_CLICK = {"List-Unsubscribe": "One-Click"}
MAIL_PROVIDER = {"REMOTE_ADDR": "192.0.2.9", "HTTP_USER_AGENT": "Mail provider one-click"}


def _bench_person() -> tuple[Contact, str]:
    purposes = [
        PurposeFactory(
            slug=slug, legal_basis=basis, is_profiling=profiling, channels=["email", "sms"]
        )
        for slug, basis, profiling in (
            ("newsletter", LegalBasis.CONSENT, False),
            ("offers", LegalBasis.CONSENT, False),
            ("events", LegalBasis.CONSENT, False),
            ("recommendations", LegalBasis.CONSENT, True),
            ("customer-news", LegalBasis.LEGITIMATE_INTERESTS, False),
        )
    ]
    slugs = ("cycling", "hiking", "running", "swimming")
    interests = [InterestFactory(slug=slug) for slug in slugs]
    contact = ContactFactory(email="camille.martin@example.fr", language="fr")
    contact.interests.set(interests[:2])
    newsletter, offers, events = purposes[:3]
    for purpose, channel in ((newsletter, "email"), (offers, "sms"), (events, "email")):
        grant(contact, purpose, channel=channel)
    return contact, preference_token_issue(contact=contact)


def by_table(queries: CaptureQueriesContext) -> Counter[str]:
    """How many statements touched each table first named (a reading aid in failures)."""
    counts: Counter[str] = Counter()
    for query in queries.captured_queries:
        sql = query["sql"]
        for marker in ('FROM "', 'INTO "', 'UPDATE "'):
            if marker in sql:
                counts[sql.split(marker, 1)[1].split('"', 1)[0]] += 1
                break
        else:
            counts[sql.split(" ", 1)[0]] += 1
    return counts


def test_preference_page_reads_the_database_at_most_five_times(
    client: Client, django_assert_max_num_queries: Any
) -> None:
    # given the benchmark's person, and a first visit (nothing cached on the way)
    _contact, token = _bench_person()
    client.get(center_path(token), **BROWSER)

    # when the page is shown again
    with django_assert_max_num_queries(PAGE_BUDGET):
        response = client.get(center_path(token), **BROWSER)

    # then it is the whole page: every purpose, the ticks, the topics, the frequency
    assert response.status_code == 200
    page = read_page(response)
    # (the legitimate interest is on until the person objects)
    assert page.checked() == {
        "newsletter:email",
        "offers:sms",
        "events:email",
        "customer-news:email",
        "customer-news:sms",
    }
    assert len(page.boxes()) == 10
    assert page.checked("interests") == {"cycling", "hiking"}
    assert set(page.boxes("interests")) == {"cycling", "hiking", "running", "swimming"}
    assert len(page.boxes("frequency")) > 1


def _first_one_click(client: Client, contact: Contact, token: str, budget: Any) -> None:
    client.get(unsubscribe_path(token), **MAIL_PROVIDER)  # the button page: nothing written

    with budget(ONE_CLICK_BUDGET) as queries:
        response = client.post(unsubscribe_path(token), ONE_CLICK, **MAIL_PROVIDER)

    assert response.status_code == 200, by_table(queries)
    # three withdrawals and two objections, the address suppressed
    records = ConsentRecord.objects.filter(contact=contact, action="withdraw")
    assert records.count() == 5
    assert not contact.consent_states.exclude(status=ConsentStatus.WITHDRAWN).exists()
    assert Suppression.objects.count() == 1
    contact.refresh_from_db()
    assert contact.marketing_objected_at is not None
    assert Purpose.objects.count() == 5
    # told everywhere: the five changes and the unsubscribe, in the timeline and to the CRMs
    moments = list(contact.timeline.order_by("id").values_list("kind", flat=True))
    assert moments[-6:] == [TimelineKind.CONSENT_CHANGED] * 5 + [TimelineKind.UNSUBSCRIBED]
    topics = list(OutboxEvent.objects.order_by("created_at").values_list("topic", flat=True))
    assert topics[-6:] == [OutboxTopic.CONSENT_RECORDED] * 5 + [OutboxTopic.CONTACT_UNSUBSCRIBED]


def test_first_one_click_unsubscribe_costs_at_most_fifteen_queries(
    client: Client, django_assert_max_num_queries: Any
) -> None:
    contact, token = _bench_person()

    _first_one_click(client, contact, token, django_assert_max_num_queries)


def test_first_one_click_from_a_campaign_message_costs_at_most_fifteen_queries(
    client: Client, django_assert_max_num_queries: Any
) -> None:
    # given the benchmark's person, sent a campaign message on the newsletter
    contact, _token = _bench_person()
    newsletter = Purpose.objects.get(slug="newsletter")
    campaign = campaign_make(newsletter, steps=[email_step()])
    mail.outbox.clear()
    sent(campaign)
    token = unsubscribe_token(contact)

    _first_one_click(client, contact, token, django_assert_max_num_queries)

    # and the unsubscribe is the campaign's
    assert row(campaign, contact).unsubscribed_at is not None
