"""Retention by relationship (issue 12; CNIL référentiel gestion commerciale, délib. 2021-131):
prospects three years after their last contact, customers three years after the end of their
contract, and a prospect who opted out of everything keeps only the suppression hash and the
proofs (erased `RETENTION_OPT_OUT_GRACE` after the last refusal, without an email). An
unsubscribe does not restart the clock."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.test import Client
from freezegun import freeze_time

from consent.ledger import ledger_seal, ledger_verify
from consent.models import ConsentRecord, LegalBasis, Purpose
from contacts.models import Contact
from contacts.selectors import suppression_reason
from contacts.services import contact_touch, contact_update
from preferences.services import preference_token_issue
from privacy.models import PrivacyRequestType
from privacy.services import privacy_request_file, retention_apply
from tests.conftest import Mailbox
from tests.factories import ContactFactory, PurposeFactory, grant
from tests.preferences.conftest import BROWSER, center_path, post_form, unsubscribe_path

pytestmark = pytest.mark.django_db

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2029, 6, 1, 3, 0, tzinfo=PARIS)  # the nightly run
SILENT_SINCE = NOW - relativedelta(years=3, days=1)
OPT_OUT_GRACE = settings.RETENTION_OPT_OUT_GRACE


def contact_active_at(moment: datetime, **kwargs: object) -> Contact:
    """A contact whose last activity (and creation) was at `moment`."""
    with freeze_time(moment):
        contact = ContactFactory(language="en", **kwargs)
        contact_touch(contact=contact)
    return contact


def run_at(moment: datetime) -> tuple[int, int]:
    """One run of the nightly job at `moment`: (emails sent, contacts erased)."""
    with freeze_time(moment):
        return retention_apply()


def reload(contact: Contact) -> Contact:
    return Contact.objects.get(pk=contact.pk)


@pytest.fixture
def newsletter() -> Purpose:
    return PurposeFactory(slug="newsletter", channels=["email", "sms"])


def one_click_unsubscribe(contact: Contact, at: datetime) -> None:
    """The mailbox provider's RFC 8058 POST, at `at`."""
    with freeze_time(at - timedelta(days=1)):
        token = preference_token_issue(contact=contact)
    with freeze_time(at):
        response = Client(enforce_csrf_checks=True).post(
            unsubscribe_path(token),
            data="List-Unsubscribe=One-Click",
            content_type="application/x-www-form-urlencoded",
        )
    assert response.status_code == 200


# --- the clock per relationship ---------------------------------------------------------------


def test_a_prospect_b2b_or_not_is_asked_three_years_after_the_last_contact(mailbox: Mailbox):
    consumer = contact_active_at(SILENT_SINCE, email="lea@example.fr")
    professional = contact_active_at(SILENT_SINCE, email="jordan@northwind.example", b2b=True)
    recent = contact_active_at(NOW - relativedelta(years=2), email="recent@example.fr")

    assert run_at(NOW) == (2, 0)
    assert {message["To"] for message in mailbox.messages} == {consumer.email, professional.email}
    assert reload(recent).repermission_sent_at is None


def test_a_current_customer_is_kept_however_long_silent(mailbox: Mailbox):
    customer = contact_active_at(
        NOW - relativedelta(years=8), relationship="customer", customer_since=date(2021, 1, 1)
    )

    assert run_at(NOW) == (0, 0)
    assert run_at(NOW + relativedelta(years=2)) == (0, 0)
    assert reload(customer).status == "active"


def test_a_former_customer_is_kept_three_years_after_the_end_of_the_contract(mailbox: Mailbox):
    # silent for five years, but the contract ended two years ago
    customer = contact_active_at(
        NOW - relativedelta(years=5),
        relationship="customer",
        customer_since=date(2020, 1, 1),
        customer_until=(NOW - relativedelta(years=2)).date(),
    )
    assert run_at(NOW) == (0, 0)

    # three years and a day after the end: asked, then erased without an answer
    later = NOW + relativedelta(years=1, days=2)
    assert run_at(later) == (1, 0)
    assert run_at(later + settings.RETENTION_GRACE + timedelta(days=1)) == (0, 1)
    assert reload(customer).status == "erased"


def test_a_contract_renewed_after_the_question_keeps_the_customer(mailbox: Mailbox):
    customer = contact_active_at(
        NOW - relativedelta(years=5),
        relationship="customer",
        customer_since=date(2020, 1, 1),
        customer_until=(SILENT_SINCE - timedelta(days=1)).date(),
    )
    assert run_at(NOW) == (1, 0)

    # the CRM says the contract was extended, without the person answering the email
    with freeze_time(NOW + timedelta(days=3)):
        contact_update(contact=customer, fields={"customer_until": "2031-12-31"})
    Contact.objects.filter(pk=customer.pk).update(last_activity_at=SILENT_SINCE)

    assert run_at(NOW + settings.RETENTION_GRACE + timedelta(days=1)) == (0, 0)
    assert reload(customer).status == "active"


def test_a_grant_relayed_by_a_crm_after_the_question_keeps_the_prospect(
    newsletter, mailbox: Mailbox
):
    prospect = contact_active_at(SILENT_SINCE)
    assert run_at(NOW) == (1, 0)

    # the person opts in on a partner's form; the CRM relays it, which is not their own
    # activity here, but it answers the question
    with freeze_time(NOW + timedelta(days=5)):
        grant(prospect, newsletter, source_kind="crm", source_reference="hubspot")
    assert reload(prospect).last_activity_at < reload(prospect).repermission_sent_at

    assert run_at(NOW + settings.RETENTION_GRACE + timedelta(days=1)) == (0, 0)
    assert reload(prospect).status == "active"


# --- an opt-out no longer restarts the clock --------------------------------------------------


def test_an_unsubscribe_does_not_count_as_a_contact_from_the_person(newsletter, client: Client):
    contact = contact_active_at(SILENT_SINCE, email="lea@example.fr")
    with freeze_time(SILENT_SINCE):
        grant(contact, newsletter)
        token = preference_token_issue(contact=contact)
    assert reload(contact).last_activity_at == SILENT_SINCE

    with freeze_time(NOW - timedelta(days=3)):
        assert post_form(client, token, "unsubscribe").status_code == 303
    one_click_unsubscribe(contact, NOW - timedelta(days=2))
    assert reload(contact).last_activity_at == SILENT_SINCE

    # while a "yes" from the person is one
    with freeze_time(NOW - timedelta(days=1)):
        page = client.get(center_path(token, lang="en"), **BROWSER)
        assert page.status_code == 200
        assert post_form(client, token, "resubscribe").status_code == 303
    assert reload(contact).last_activity_at == NOW - timedelta(days=1)


def test_a_prospect_who_opted_out_is_erased_after_the_grace_without_an_email(
    mailbox: Mailbox, newsletter
):
    # given a prospect, active last week, who unsubscribes from everything today
    contact = contact_active_at(NOW - timedelta(days=7), email="lea@example.fr")
    with freeze_time(NOW - timedelta(days=7)):
        grant(contact, newsletter)
    one_click_unsubscribe(contact, NOW)

    # when the job runs within the grace: nothing yet (they may change their mind)
    assert run_at(NOW + timedelta(days=1)) == (0, 0)
    assert run_at(NOW + OPT_OUT_GRACE - timedelta(hours=1)) == (0, 0)

    # then after it: erased through the one erasure path, and never emailed
    assert run_at(NOW + OPT_OUT_GRACE + timedelta(days=1)) == (0, 1)
    erased = reload(contact)
    assert erased.status == "erased"
    assert mailbox.messages == []
    assert erased.timeline.get().summary == "retention"
    # what stays: the suppression hash and the ledger's proofs, which still verify
    assert suppression_reason(kind="email", value="lea@example.fr") is not None
    records = ConsentRecord.objects.filter(contact=contact)
    assert [record.action for record in records] == ["grant", "withdraw"]
    ledger_seal()
    assert ledger_verify() == []

    # and a second run has nothing left to do
    assert run_at(NOW + OPT_OUT_GRACE + timedelta(days=2)) == (0, 0)


def test_a_prospect_who_withdrew_every_purpose_one_by_one_has_opted_out(mailbox, newsletter):
    contact = contact_active_at(NOW - timedelta(days=60), email="lea@example.fr")
    with freeze_time(NOW - timedelta(days=60)):
        grant(contact, newsletter, "email")
        grant(contact, newsletter, "sms")
        grant(contact, newsletter, "sms", action="withdraw", evidence=None)
    with freeze_time(NOW - timedelta(days=40)):
        grant(contact, newsletter, "email", action="withdraw", evidence=None)

    assert run_at(NOW) == (0, 1)
    assert reload(contact).status == "erased"


def test_a_prospect_holding_one_grant_or_a_legitimate_interest_has_not_opted_out(
    mailbox, newsletter
):
    offers = PurposeFactory(slug="offers", channels=["email"])
    partly = contact_active_at(NOW - timedelta(days=90), email="partly@example.fr")
    with freeze_time(NOW - timedelta(days=90)):
        grant(partly, newsletter)
        grant(partly, offers)
        grant(partly, offers, action="withdraw", evidence=None)
    # a legitimate interest the person has not objected to still reaches them by post
    PurposeFactory(
        slug="catalogue", legal_basis=LegalBasis.LEGITIMATE_INTERESTS, channels=["postal"]
    )
    by_post = contact_active_at(NOW - timedelta(days=90), email="post@example.fr")
    with freeze_time(NOW - timedelta(days=90)):
        grant(by_post, newsletter)
        grant(by_post, newsletter, action="withdraw", evidence=None)
    never = contact_active_at(NOW - timedelta(days=90), email="never@example.fr")

    assert run_at(NOW) == (0, 0)
    assert {reload(c).status for c in (partly, by_post, never)} == {"active"}


def test_a_prospect_who_changes_their_mind_within_the_grace_is_kept(
    mailbox: Mailbox, newsletter, client: Client
):
    contact = contact_active_at(NOW - timedelta(days=7), email="lea@example.fr")
    with freeze_time(NOW - timedelta(days=7)):
        grant(contact, newsletter)
        token = preference_token_issue(contact=contact)
    one_click_unsubscribe(contact, NOW)

    with freeze_time(NOW + timedelta(days=10)):
        assert post_form(client, token, "resubscribe").status_code == 303
        grant(contact, newsletter, source_kind="preference_center")

    assert run_at(NOW + OPT_OUT_GRACE + timedelta(days=1)) == (0, 0)
    assert reload(contact).status == "active"


def test_an_opted_out_prospect_with_an_open_request_is_answered_first(mailbox, newsletter):
    contact = contact_active_at(NOW - timedelta(days=90), email="lea@example.fr")
    with freeze_time(NOW - timedelta(days=90)):
        grant(contact, newsletter)
        grant(contact, newsletter, action="withdraw", evidence=None)
        privacy_request_file(
            contact=contact, type=PrivacyRequestType.RECTIFICATION, source_kind="api"
        )

    assert run_at(NOW) == (0, 0)
    assert reload(contact).status == "active"


def test_a_customer_who_opted_out_keeps_the_profile_until_three_years_after_the_contract(
    mailbox: Mailbox, newsletter
):
    customer = contact_active_at(
        NOW - timedelta(days=7),
        email="client@example.fr",
        relationship="customer",
        customer_since=date(2022, 1, 1),
        customer_until=(NOW - timedelta(days=1)).date(),
    )
    with freeze_time(NOW - timedelta(days=7)):
        grant(customer, newsletter)
    one_click_unsubscribe(customer, NOW)

    # kept past the opt-out grace
    assert run_at(NOW + OPT_OUT_GRACE + timedelta(days=1)) == (0, 0)
    assert reload(customer).status == "active"

    # three years after the contract: not emailed (they said no), erased after the grace
    later = NOW + relativedelta(years=3, days=1)
    assert run_at(later) == (1, 0)
    assert mailbox.messages == []
    assert run_at(later + settings.RETENTION_GRACE + timedelta(days=1)) == (0, 1)
    assert reload(customer).status == "erased"
