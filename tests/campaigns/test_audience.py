"""The audience preview: per step, the eligible count and the count excluded per reason
among the segment's contacts, agreeing with the eligibility rule's explanation."""

from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns.models import Segment
from campaigns.selectors import campaign_audience, segment_contacts
from consent.eligibility import contact_eligibility, eligible_contacts
from consent.models import LegalBasis, MessageSent
from contacts.models import Contact
from contacts.services import suppression_add
from tests.factories import (
    ContactFactory,
    InterestFactory,
    PurposeFactory,
    campaign_make,
    email_step,
    grant,
)

pytestmark = pytest.mark.django_db


def varied_contacts(purpose):
    """Contacts covering the reasons of the rule, all French speakers in France, and two
    outside the segment (English speakers) with a grant."""
    now = timezone.now()
    granted = [ContactFactory(country="FR") for _ in range(3)]
    for contact in granted:
        grant(contact, purpose, "email")
        grant(contact, purpose, "sms")
    ContactFactory(country="FR")  # no consent at all
    withdrawn = ContactFactory(country="FR")
    grant(withdrawn, purpose, "email")
    grant(withdrawn, purpose, "email", action="withdraw", evidence=None)
    paused = ContactFactory(country="FR", paused_until=now + timedelta(days=3))
    grant(paused, purpose, "email")
    restricted = ContactFactory(country="FR", processing_restricted_at=now)
    grant(restricted, purpose, "email")
    suppressed = ContactFactory(country="FR")
    grant(suppressed, purpose, "email")
    suppression_add(reason="unsubscribed", email=suppressed.email)
    bounced = ContactFactory(country="FR", email_deliverability="hard_bounce")
    grant(bounced, purpose, "email")
    capped = ContactFactory(country="FR", phone="+33612345678")
    grant(capped, purpose, "email")
    grant(capped, purpose, "sms")
    MessageSent.objects.create(
        contact=capped, purpose=purpose, channel="email", sent_at=now - timedelta(hours=2)
    )
    ContactFactory(country="FR", status="erased", email="erased-1@invalid")
    for _ in range(2):
        outside = ContactFactory(country="GB", language="en")
        grant(outside, purpose, "email")
    return granted


def expected(campaign, channel):
    """The per-contact explanation summed over the segment, each contact under its first
    reason (as the step's row will record it): what the preview must say."""
    counts: Counter[str] = Counter()
    eligible = 0
    for contact in segment_contacts(campaign.segment):
        reasons = contact_eligibility(contact, campaign.purpose, channel)
        counts.update(reasons[:1])
        eligible += not reasons
    return eligible, dict(counts)


def test_the_preview_agrees_with_the_explanation_of_each_contact_per_step() -> None:
    purpose = PurposeFactory(channels=["email", "sms"])
    varied_contacts(purpose)
    segment = Segment.objects.create(name="France", countries=["FR"], languages=["fr"])
    campaign = campaign_make(
        purpose,
        segment=segment,
        steps=[email_step(), {"channel": "sms", "delay_hours": 24, "sms_text_fr": "Offres"}],
    )

    email, sms = campaign_audience(campaign)

    assert (email.eligible, email.excluded) == expected(campaign, "email")
    assert (sms.eligible, sms.excluded) == expected(campaign, "sms")
    assert email.eligible == 3  # the three granted; the capped one was written to today
    assert email.excluded["frequency"] == 1
    assert sms.eligible == 1  # the capped one, capped by email only, the one with a phone
    assert email.excluded["suppressed"] == 1
    assert email.excluded["undeliverable"] == 1
    assert email.excluded["paused"] == 1
    assert email.excluded["restricted"] == 1
    assert email.excluded["erased"] == 1
    assert "not_in_segment" not in email.excluded


def test_the_eligible_count_is_the_audience_the_eligibility_queryset_selects() -> None:
    purpose = PurposeFactory(channels=["email", "sms"])
    varied_contacts(purpose)
    segment = Segment.objects.create(name="France", countries=["FR"])
    campaign = campaign_make(purpose, segment=segment)

    (audience,) = campaign_audience(campaign)

    selected = eligible_contacts(purpose, "email", queryset=segment_contacts(segment))
    assert audience.eligible == selected.count()


def test_the_frequency_cap_of_the_channel_excludes_who_was_just_written_to(settings) -> None:
    settings.MARKETING_CAPS = {"day": 1, "week": 3}
    purpose = PurposeFactory(channels=["email"])
    contact = ContactFactory()
    grant(contact, purpose, "email")
    MessageSent.objects.create(contact=contact, purpose=purpose, channel="email")

    (audience,) = campaign_audience(campaign_make(purpose))

    assert audience.eligible == 0
    assert audience.excluded == {"frequency": 1}


def test_legitimate_interest_reaches_customers_without_consent() -> None:
    purpose = PurposeFactory(channels=["postal"], legal_basis=LegalBasis.LEGITIMATE_INTERESTS)
    ContactFactory(address_line1="1 rue de la Paix", postal_code="75002", city="Paris")
    ContactFactory()  # no address: undeliverable by post

    (audience,) = campaign_audience(
        campaign_make(purpose, steps=[{"channel": "postal", "body_text_fr": "Lettre"}])
    )

    assert audience.eligible == 1
    assert audience.excluded == {"undeliverable": 1}


def test_the_preview_takes_one_query_per_step() -> None:
    purpose = PurposeFactory(channels=["email", "sms"])
    varied_contacts(purpose)
    campaign = campaign_make(
        purpose,
        steps=[email_step(), {"channel": "sms", "delay_hours": 1, "sms_text_fr": "x"}],
    )

    with CaptureQueriesContext(connection) as queries:
        campaign_audience(campaign)

    # one pass over the contacts per step (besides small reads: the steps, the wording)
    over_contacts = [q for q in queries.captured_queries if "contacts_contact" in q["sql"]]
    assert len(over_contacts) == 2
    assert all("COUNT(" in query["sql"] for query in over_contacts)


def test_every_criterion_of_a_segment_must_match() -> None:
    velo, rando = InterestFactory(slug="velo"), InterestFactory(slug="rando")
    match = ContactFactory(country="FR", language="fr", lifecycle_stage="customer", source="salon")
    match.interests.set([velo, rando])  # two interests: still one row
    ContactFactory(country="FR", language="fr", lifecycle_stage="customer", source="salon")
    other = ContactFactory(country="BE", language="fr", lifecycle_stage="customer")
    other.interests.set([velo])
    old = ContactFactory(country="FR", language="fr", lifecycle_stage="customer", source="salon")
    old.interests.set([rando])
    Contact.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=400))
    segment = Segment.objects.create(
        name="Cyclistes",
        countries=["fr"],
        languages=["fr"],
        lifecycle_stages=["customer"],
        sources=["salon"],
        created_from=(timezone.now() - timedelta(days=30)).date(),
    )
    segment.interests.set([velo, rando])

    assert list(segment_contacts(segment)) == [match]
    assert segment_contacts(None).count() == Contact.objects.count()
