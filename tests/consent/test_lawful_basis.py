"""Who may be reached, and on what basis (issue 12, SPEC §3 campaigns): legitimate interest
reaches by email, SMS and push only B2B contacts or customers under soft opt-in, by post anyone
who has not objected, by phone B2B contacts or current customers; and the legal calling hours
(Consumer Code D. 223-9, décret 2022-1313)."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from consent.eligibility import (
    Ineligible,
    channel_quiet_at,
    contact_eligibility,
    eligible_contacts,
    french_public_holidays,
    ineligible_counts,
    phone_call_allowed,
    send_time_problem,
)
from consent.models import LegalBasis, MessageSent, Purpose
from consent.services import Evidence
from contacts.models import Contact
from privacy.models import PrivacyRequestType
from privacy.services import privacy_request_carry_out, privacy_request_file
from tests.factories import ContactFactory, PurposeFactory, grant

pytestmark = pytest.mark.django_db

INTERESTS = LegalBasis.LEGITIMATE_INTERESTS
EVERY_CHANNEL = ["email", "sms", "postal", "phone", "push"]
# The wording a soft opt-in shows at collection: the refusal offered (CPCE L34-5).
REFUSAL_OFFER = (
    "We will send you offers for products similar to those you bought. Tick here if you do "
    "not want them; you can refuse them at any time, free of charge."
)


def person(**fields) -> Contact:
    defaults = {
        "phone": "+33612345678",
        "address_line1": "1 rue Haute",
        "city": "Lyon",
        "country": "FR",
    }
    return ContactFactory(**{**defaults, **fields})


def reasons(contact: Contact, purpose: Purpose, channel: str) -> list[str]:
    """Both forms of the rule, which must agree: the explanation and the audience in SQL."""
    contact = Contact.objects.get(pk=contact.pk)
    explained = contact_eligibility(contact, purpose, channel)
    in_audience = eligible_contacts(purpose, channel).filter(pk=contact.pk).exists()
    assert in_audience is (explained == [])
    return explained


@pytest.fixture
def news() -> Purpose:
    """Marketing on legitimate interest, not about products the person bought."""
    return PurposeFactory(slug="news", legal_basis=INTERESTS, channels=EVERY_CHANNEL)


@pytest.fixture
def similar() -> Purpose:
    """Offers of similar products or services (soft opt-in)."""
    return PurposeFactory(
        slug="similar", legal_basis=INTERESTS, similar_products=True, channels=EVERY_CHANNEL
    )


def soft_opt_in(contact: Contact, purpose: Purpose, channel: str = "email") -> None:
    """The refusal offered at collection, recorded through the one write path."""
    evidence = Evidence(wording=REFUSAL_OFFER, unticked_by_default=True, policy_version="2026-01")
    grant(contact, purpose, channel, evidence=evidence)


def test_a_consumer_prospect_is_not_reached_by_legitimate_interest_email(news):
    prospect = person()

    assert reasons(prospect, news, "email") == [Ineligible.NO_CONSENT]
    assert ineligible_counts(news, "email") == {"no_consent": 1}
    assert not eligible_contacts(news, "email").exists()


def test_legitimate_interest_reaches_a_b2b_contact_on_every_channel_until_they_object(news):
    professional = person(b2b=True)

    for channel in EVERY_CHANNEL:
        assert reasons(professional, news, channel) == [], channel

    request = privacy_request_file(
        contact=professional,
        type=PrivacyRequestType.OBJECTION,
        source_kind="api",
        verified=True,
    )
    privacy_request_carry_out(request_id=str(request.id))
    for channel in EVERY_CHANNEL:
        assert reasons(professional, news, channel) == [Ineligible.OBJECTED], channel


def test_by_post_legitimate_interest_reaches_anyone_who_has_not_objected(news):
    assert reasons(person(), news, "postal") == []
    assert reasons(person(relationship="customer"), news, "postal") == []


def test_a_customer_is_reached_electronically_only_for_similar_products_with_the_refusal_on_file(
    news, similar
):
    customer = person(relationship="customer", customer_since=date(2024, 1, 1))

    # no refusal offered at collection on file: no soft opt-in
    for channel in ("email", "sms", "push"):
        assert reasons(customer, similar, channel) == [Ineligible.NO_CONSENT], channel

    soft_opt_in(customer, similar, "email")
    soft_opt_in(customer, news, "email")

    assert reasons(customer, similar, "email") == []
    assert reasons(customer, similar, "sms") == [Ineligible.NO_CONSENT]  # offered by email only
    # a purpose not about similar products never rests on soft opt-in
    assert reasons(customer, news, "email") == [Ineligible.NO_CONSENT]


def test_a_former_customer_keeps_the_soft_opt_in_until_they_refuse(similar):
    former = person(
        relationship="customer", customer_since=date(2020, 1, 1), customer_until=date(2024, 1, 1)
    )
    soft_opt_in(former, similar, "sms")

    assert reasons(former, similar, "sms") == []

    grant(former, similar, "sms", action="withdraw", evidence=None)
    assert reasons(former, similar, "sms") == [Ineligible.OBJECTED]


def test_a_prospect_with_a_soft_opt_in_record_is_still_not_reached(similar):
    prospect = person()
    soft_opt_in(prospect, similar, "email")

    assert reasons(prospect, similar, "email") == [Ineligible.NO_CONSENT]


def test_by_phone_legitimate_interest_reaches_b2b_contacts_and_current_customers_only(news):
    today = timezone.localdate()
    current = person(relationship="customer", customer_until=None)
    ending = person(relationship="customer", customer_until=today + timedelta(days=10))
    ended = person(relationship="customer", customer_until=today - timedelta(days=1))
    consumer = person()
    professional = person(b2b=True)

    assert reasons(current, news, "phone") == []
    assert reasons(ending, news, "phone") == []
    assert reasons(ended, news, "phone") == [Ineligible.NO_CONSENT]
    assert reasons(consumer, news, "phone") == [Ineligible.NO_CONSENT]
    assert reasons(professional, news, "phone") == []
    assert ineligible_counts(news, "phone") == {"no_consent": 2}
    # and once the contract ends, the current customer's calls stop too
    later = timezone.now() + timedelta(days=30)
    assert contact_eligibility(ending, news, "phone", at=later) == [Ineligible.NO_CONSENT]


def test_consumers_are_called_on_consent_as_before():
    calls = PurposeFactory(slug="calls", channels=["phone"])
    consumer = person()

    assert reasons(consumer, calls, "phone") == [Ineligible.NO_CONSENT]
    grant(consumer, calls, "phone")
    assert reasons(consumer, calls, "phone") == []


def test_a_contract_purpose_reaches_only_current_customers():
    account = PurposeFactory(slug="account", legal_basis=LegalBasis.CONTRACT, channels=["email"])
    customer = person(relationship="customer")
    prospect = person()

    assert reasons(customer, account, "email") == []
    assert reasons(prospect, account, "email") == [Ineligible.NO_CONSENT]


# --- at the moment of sending -----------------------------------------------------------------


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo("Europe/Paris"))


@pytest.mark.parametrize(
    ("moment", "allowed"),
    [
        (paris(2026, 11, 24, 10, 0), True),  # a Tuesday, opening time
        (paris(2026, 11, 24, 9, 59), False),
        (paris(2026, 11, 24, 12, 59), True),
        (paris(2026, 11, 24, 13, 30), False),  # the lunch break
        (paris(2026, 11, 24, 14, 0), True),
        (paris(2026, 11, 24, 19, 59), True),
        (paris(2026, 11, 24, 20, 0), False),
        (paris(2026, 11, 28, 11, 0), False),  # Saturday
        (paris(2026, 11, 29, 11, 0), False),  # Sunday
        (paris(2026, 11, 11, 11, 0), False),  # Armistice Day, a Wednesday
        (paris(2026, 4, 6, 11, 0), False),  # Easter Monday
        (paris(2026, 5, 14, 11, 0), False),  # Ascension Day
        (paris(2026, 5, 25, 11, 0), False),  # Whit Monday
    ],
)
def test_a_consumer_is_called_only_within_the_legal_hours(moment, allowed):
    consumer = person()

    assert phone_call_allowed(consumer, moment) is allowed
    expected = None if allowed else Ineligible.QUIET_HOURS
    assert send_time_problem(consumer, "phone", moment) == expected


def test_the_calling_hours_are_the_recipients_own():
    # 10:30 in Paris is 05:30 in Martinique
    tuesday = paris(2026, 11, 24, 10, 30)
    assert phone_call_allowed(person(country="FR"), tuesday)
    assert not phone_call_allowed(person(country="MQ"), tuesday)
    assert phone_call_allowed(person(country="MQ"), tuesday + timedelta(hours=6))


def test_b2b_calls_are_not_held_to_the_consumer_hours():
    assert phone_call_allowed(person(b2b=True), paris(2026, 11, 28, 9, 0))


def test_sms_only_between_8_and_21_30_local_time():
    consumer = person()

    assert channel_quiet_at(consumer, "sms", paris(2026, 11, 28, 7, 59))
    assert not channel_quiet_at(consumer, "sms", paris(2026, 11, 28, 8, 0))
    assert not channel_quiet_at(consumer, "sms", paris(2026, 11, 28, 21, 29))
    assert channel_quiet_at(consumer, "sms", paris(2026, 11, 28, 21, 30))
    assert not channel_quiet_at(consumer, "email", datetime(2026, 11, 28, 3, 0, tzinfo=UTC))


def test_a_consumer_gets_at_most_four_calls_in_thirty_days(settings):
    settings.MARKETING_CAPS = {"day": 0, "week": 0}  # the legal cap alone
    calls = PurposeFactory(slug="calls", channels=["phone"])
    consumer, professional = person(), person(b2b=True)
    now = timezone.now()
    for contact in (consumer, professional):
        grant(contact, calls, "phone")
        for days in (1, 5, 10):
            MessageSent.objects.create(
                contact=contact, purpose=calls, channel="phone", sent_at=now - timedelta(days)
            )
    assert reasons(consumer, calls, "phone") == []

    for contact in (consumer, professional):
        MessageSent.objects.create(
            contact=contact, purpose=calls, channel="phone", sent_at=now - timedelta(days=29)
        )

    assert reasons(consumer, calls, "phone") == [Ineligible.FREQUENCY]
    assert ineligible_counts(calls, "phone") == {"frequency": 1}
    assert reasons(professional, calls, "phone") == []  # not a consumer
    later = now + timedelta(days=2)  # the oldest call is past 30 days
    assert contact_eligibility(consumer, calls, "phone", at=later) == []


def test_the_public_holidays_follow_easter():
    assert {date(2025, 4, 21), date(2025, 5, 29), date(2025, 6, 9)} <= french_public_holidays(2025)
    assert len(french_public_holidays(2027)) == 11


@pytest.mark.parametrize(
    "basis", [LegalBasis.LEGAL_OBLIGATION, LegalBasis.VITAL_INTERESTS, LegalBasis.PUBLIC_TASK]
)
def test_a_purpose_on_another_basis_reaches_nobody_even_stored_with_channels(basis):
    # given a purpose saved with channels before `Purpose.clean` refused them on this basis
    purpose = PurposeFactory(legal_basis=basis, channels=EVERY_CHANNEL)
    adult, b2b = person(), person(b2b=True)

    for channel in EVERY_CHANNEL:
        assert reasons(adult, purpose, channel) == [Ineligible.NO_CONSENT]
        assert reasons(b2b, purpose, channel) == [Ineligible.NO_CONSENT]
        assert ineligible_counts(purpose, channel) == {"no_consent": 2}
