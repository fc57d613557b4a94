"""The one eligibility rule: who may receive a message for a purpose on a channel."""

from datetime import timedelta

import pytest
from django.utils import timezone

from consent.models import LegalBasis, SourceKind
from consent.selectors import Ineligible, contact_eligibility
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

    assert contact_eligibility(contact, newsletter, "email") == [Ineligible.NO_CONSENT]


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

    assert contact_eligibility(subscriber, offers, "email") == [Ineligible.MINOR_WITHOUT_GUARDIAN]
