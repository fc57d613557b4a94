"""The one eligibility rule: who may receive a message for a purpose on a channel."""

from datetime import timedelta

import pytest
from django.utils import timezone

from consent.eligibility import (
    Ineligible,
    contact_eligibility,
    eligible_contacts,
    ineligible_counts,
)
from consent.models import LegalBasis, MessageSent, SourceKind
from consent.selectors import frequency_caps_in_force, purposes_with_versions
from consent.services import purpose_wording_update
from contacts.models import SuppressionReason
from contacts.services import contact_pause, contact_restriction_set, suppression_add
from privacy.models import PrivacyRequestType
from privacy.services import privacy_request_carry_out, privacy_request_file
from tests.factories import ContactFactory, PurposeFactory, grant

pytestmark = pytest.mark.django_db


@pytest.fixture
def offers():
    return PurposeFactory(slug="offers", channels=["email", "sms"])


@pytest.fixture
def personalisation():
    return PurposeFactory(
        slug="personalisation",
        legal_basis=LegalBasis.LEGITIMATE_INTERESTS,
        channels=["email"],
        is_profiling=True,
    )


@pytest.fixture
def subscriber(offers):
    contact = ContactFactory(phone="+33612345678")
    grant(contact, offers, "email")
    return contact


def carried_out(contact, type):
    request = privacy_request_file(
        contact=contact, type=type, source_kind=SourceKind.API, verified=True
    )
    privacy_request_carry_out(request_id=str(request.id))
    contact.refresh_from_db()


def test_a_confirmed_grant_makes_the_contact_eligible(subscriber, offers):
    assert contact_eligibility(subscriber, offers, "email") == []


def test_without_a_grant_the_contact_is_not_eligible(subscriber, offers):
    assert contact_eligibility(subscriber, offers, "sms") == [Ineligible.NO_CONSENT]


def test_a_pending_double_opt_in_grant_does_not_count():
    newsletter = PurposeFactory(slug="newsletter", double_opt_in=True, channels=["email"])
    contact = ContactFactory()
    grant(contact, newsletter)

    assert contact_eligibility(contact, newsletter, "email") == [Ineligible.PENDING_CONFIRMATION]


def test_restriction_makes_the_contact_ineligible_until_lifted(subscriber, offers):
    # when the person asks for restriction (Art. 18)
    carried_out(subscriber, PrivacyRequestType.RESTRICTION)

    # then nothing may be sent
    assert Ineligible.RESTRICTED in contact_eligibility(subscriber, offers, "email")

    # until the DPO lifts it
    contact_restriction_set(contact=subscriber, restricted=False, source="test")
    subscriber.refresh_from_db()
    assert contact_eligibility(subscriber, offers, "email") == []


def test_objection_stops_legitimate_interest_but_not_consent(subscriber, offers, personalisation):
    # a professional address: legitimate interest reaches it by email until the objection
    subscriber.b2b = True
    subscriber.save()
    assert contact_eligibility(subscriber, personalisation, "email") == []

    carried_out(subscriber, PrivacyRequestType.OBJECTION)

    assert contact_eligibility(subscriber, personalisation, "email") == [Ineligible.OBJECTED]
    assert contact_eligibility(subscriber, offers, "email") == []


def test_a_pause_makes_the_contact_ineligible_until_it_ends(subscriber, offers):
    contact_pause(contact=subscriber, months=1)
    subscriber.refresh_from_db()

    assert contact_eligibility(subscriber, offers, "email") == [Ineligible.PAUSED]
    later = timezone.now() + timedelta(days=40)
    assert contact_eligibility(subscriber, offers, "email", at=later) == []


def test_a_suppressed_address_is_never_eligible(subscriber, offers):
    suppression_add(reason=SuppressionReason.HARD_BOUNCE, email=subscriber.email)

    assert Ineligible.SUPPRESSED in contact_eligibility(subscriber, offers, "email")


def test_an_erased_contact_is_never_eligible(subscriber, offers):
    carried_out(subscriber, PrivacyRequestType.ERASURE)

    assert contact_eligibility(subscriber, offers, "email") == [Ineligible.ERASED]


def test_a_material_wording_change_needs_re_consent_but_a_minor_one_does_not(subscriber, offers):
    purpose_wording_update(
        purpose=offers, wording_fr="Typo corrigée", wording_en="Typo fixed", is_material=False
    )
    assert contact_eligibility(subscriber, offers, "email") == []

    purpose_wording_update(purpose=offers, wording_fr="Nouveau", wording_en="New")
    assert contact_eligibility(subscriber, offers, "email") == [Ineligible.OUTDATED_WORDING]


def test_a_minor_needs_the_guardians_consent(subscriber, offers):
    subscriber.is_minor = True
    subscriber.save()

    assert contact_eligibility(subscriber, offers, "email") == [Ineligible.MINOR]


# --- frequency: the global caps and the person's own choice -----------------------------------


def sent(contact, purpose, channel="email", **ago):
    MessageSent.objects.create(
        contact=contact, purpose=purpose, channel=channel, sent_at=timezone.now() - timedelta(**ago)
    )


def test_one_marketing_message_a_day_per_channel_is_the_default_cap(subscriber, offers):
    grant(subscriber, offers, "sms")
    sent(subscriber, offers, "email", hours=3)

    assert contact_eligibility(subscriber, offers, "email") == [Ineligible.FREQUENCY]
    assert contact_eligibility(subscriber, offers, "sms") == []  # another channel
    tomorrow = timezone.now() + timedelta(hours=22)
    assert contact_eligibility(subscriber, offers, "email", at=tomorrow) == []


def test_three_marketing_messages_in_seven_days_reach_the_weekly_cap(subscriber, offers):
    sent(subscriber, offers, days=2)
    sent(subscriber, offers, days=4)
    assert contact_eligibility(subscriber, offers, "email") == []

    sent(subscriber, offers, days=6)
    assert contact_eligibility(subscriber, offers, "email") == [Ineligible.FREQUENCY]


@pytest.mark.parametrize(
    ("frequency", "days_ago", "capped"),
    [("weekly", 5, True), ("weekly", 8, False), ("monthly", 20, True), ("monthly", 40, False)],
)
def test_the_persons_own_frequency_is_kept(subscriber, offers, frequency, days_ago, capped):
    subscriber.frequency = frequency
    subscriber.save()
    sent(subscriber, offers, days=days_ago)

    expected = [Ineligible.FREQUENCY] if capped else []
    assert contact_eligibility(subscriber, offers, "email") == expected


def test_staff_set_the_caps_and_messages_on_other_bases_are_not_capped(
    settings, subscriber, offers
):
    account = PurposeFactory(slug="account", legal_basis=LegalBasis.CONTRACT, channels=["email"])
    # a contract's messages reach the customers under it
    subscriber.relationship = "customer"
    subscriber.save()
    sent(subscriber, offers, hours=1)
    assert contact_eligibility(subscriber, account, "email") == []

    settings.MARKETING_CAPS = {"day": 2, "week": 0}
    assert contact_eligibility(subscriber, offers, "email") == []
    sent(subscriber, offers, hours=2)
    assert contact_eligibility(subscriber, offers, "email") == [Ineligible.FREQUENCY]


def test_without_caps_only_the_persons_own_choice_limits_them(settings, subscriber, offers):
    settings.MARKETING_CAPS = {"day": 0, "week": 0}
    sent(subscriber, offers, hours=1)
    sent(subscriber, offers, hours=2)

    assert contact_eligibility(subscriber, offers, "email") == []
    assert subscriber in eligible_contacts(offers, "email")
    subscriber.frequency = "weekly"
    subscriber.save()
    assert contact_eligibility(subscriber, offers, "email") == [Ineligible.FREQUENCY]
    assert subscriber not in eligible_contacts(offers, "email")


# --- the audience in SQL ----------------------------------------------------------------------


def test_the_audience_and_its_exclusions_per_reason_are_counted_in_sql(
    subscriber, offers, django_assert_max_num_queries
):
    # given the subscriber, a person without consent, one paused and suppressed
    ContactFactory()
    paused = ContactFactory(phone="+33698765432")
    grant(paused, offers, "email")
    contact_pause(contact=paused, months=1)
    suppression_add(reason=SuppressionReason.COMPLAINT, phone="+33698765432")

    # then, the purpose loaded with its wording versions as senders load it and the channel's
    # caps read (then cached), one query each answers who is eligible and how many each
    # reason excludes
    offers = purposes_with_versions().get(pk=offers.pk)
    frequency_caps_in_force("email")
    with django_assert_max_num_queries(1):
        audience = list(eligible_contacts(offers, "email"))
    with django_assert_max_num_queries(1):
        counts = ineligible_counts(offers, "email")

    assert audience == [subscriber]
    assert counts == {"no_consent": 1, "paused": 1, "suppressed": 1}
