"""The one consent-status rule (`consent.status`) and what each of its readers does with it.

Before it, each reader had its own copy and they disagreed: eligibility counted only a
granted state and called a pending one `no_consent`; the preference center showed a pending
grant ticked; retention kept data for an unconfirmed grant; a profiling objection kept a
consent-based profiling purpose off on the page but not in eligibility. Each case below states
what the rule answers and what the eligibility rule, the preference center, an unsubscribe, a
web form's unticked box and retention now do with it.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil.relativedelta import relativedelta
from django.test import Client
from django.utils import timezone
from freezegun import freeze_time

from consent.eligibility import contact_eligibility
from consent.models import ConsentRecord, ConsentState, LegalBasis, Purpose
from consent.services import (
    consent_confirm,
    pending_grants_expire,
    purpose_wording_update,
)
from consent.status import consent_problem, holds_usable_grant, state_is_live
from contacts.models import Contact
from contacts.services import contact_profiling_objection_set
from preferences.services import preference_token_issue
from privacy.services import retention_apply
from tests.api.payloads import box, form_body
from tests.factories import ContactFactory, PurposeFactory, grant
from tests.preferences.conftest import (
    BROWSER,
    center_path,
    page_text,
    post_form,
    read_page,
    save_consents,
)

pytestmark = pytest.mark.django_db

PENDING_HINT = "waiting for your confirmation"
RECONSENT_HINT = "the wording changed since you agreed"


def pending(contact: Contact, purpose: Purpose) -> None:
    grant(contact, purpose)  # a double opt-in purpose: waits for the emailed link


def on_replaced_wording(contact: Contact, purpose: Purpose) -> None:
    grant(contact, purpose)
    purpose_wording_update(purpose=purpose, wording_fr="Nouveau.", wording_en="New.")


def on_minor_change(contact: Contact, purpose: Purpose) -> None:
    grant(contact, purpose)
    purpose_wording_update(
        purpose=purpose, wording_fr="Typo corrigée.", wording_en="Typo fixed.", is_material=False
    )


def withdrawn_then_granted(contact: Contact, purpose: Purpose) -> None:
    grant(contact, purpose)
    grant(contact, purpose, action="withdraw", evidence=None)
    grant(contact, purpose)


def expired(contact: Contact, purpose: Purpose) -> None:
    grant(contact, purpose)
    pending_grants_expire(now=timezone.now() + timedelta(days=30))


@dataclass(frozen=True)
class Case:
    build: Callable[[Contact, Purpose], None]
    double_opt_in: bool
    problem: str | None  # the rule's answer, and the eligibility reason
    ticked: bool
    hint: str | None
    live: bool  # an unsubscribe or an unticked form box withdraws it
    retains: bool  # its purpose's retention period keeps the person's data


CASES = {
    "pending grant": Case(pending, True, "pending_confirmation", False, PENDING_HINT, True, False),
    "grant on replaced wording": Case(
        on_replaced_wording, False, "outdated_wording", False, RECONSENT_HINT, True, True
    ),
    "grant before a minor wording change": Case(
        on_minor_change, False, None, True, None, True, True
    ),
    "withdrawn then granted": Case(withdrawn_then_granted, False, None, True, None, True, True),
    "expired grant": Case(expired, True, "no_consent", False, None, False, False),
}


def make(case: Case, **contact_fields: object) -> tuple[Contact, Purpose]:
    purpose = PurposeFactory(
        slug="newsletter", channels=["email"], double_opt_in=case.double_opt_in
    )
    contact = ContactFactory(email="camille@example.fr", **contact_fields)
    case.build(contact, purpose)
    return contact, Purpose.objects.get(pk=purpose.pk)


def the_state(contact: Contact) -> ConsentState:
    return ConsentState.objects.select_related("record").get(contact=contact)


def records_after(record_id: int) -> list[tuple[str, str]]:
    return list(ConsentRecord.objects.filter(id__gt=record_id).values_list("action", "status"))


def last_record_id() -> int:
    return ConsentRecord.objects.order_by("-id").values_list("id", flat=True).first() or 0


@pytest.mark.parametrize("name", CASES)
def test_the_rule_answers_and_eligibility_gives_its_reason(name: str) -> None:
    case = CASES[name]
    contact, purpose = make(case)

    state = the_state(contact)
    assert consent_problem(contact, purpose, state) == case.problem
    assert holds_usable_grant(contact, purpose, state) is (case.problem is None)
    assert state_is_live(state) is case.live
    assert contact_eligibility(contact, purpose, "email") == (
        [case.problem] if case.problem else []
    )


@pytest.mark.parametrize("name", CASES)
def test_the_preference_center_ticks_only_a_usable_grant_and_says_why_not(
    client: Client, name: str
) -> None:
    case = CASES[name]
    contact, _purpose = make(case, language="en")
    token = preference_token_issue(contact=contact)

    response = client.get(center_path(token, lang="en"), **BROWSER)

    assert ("newsletter:email" in read_page(response).checked()) is case.ticked
    text = page_text(response)
    for hint in (PENDING_HINT, RECONSENT_HINT):
        assert (hint in text) is (hint == case.hint), hint

    # and saving the page untouched changes nothing: a pending grant stays pending
    before = last_record_id()
    assert save_consents(client, token, lang="en").status_code == 303
    assert records_after(before) == []


@pytest.mark.parametrize("name", CASES)
def test_unsubscribe_from_all_withdraws_whatever_is_still_live(client: Client, name: str) -> None:
    case = CASES[name]
    contact, _purpose = make(case)
    token = preference_token_issue(contact=contact)
    before = last_record_id()

    post_form(client, token, "unsubscribe")

    assert records_after(before) == ([("withdraw", "withdrawn")] if case.live else [])
    assert the_state(contact).status == ("withdrawn" if case.live else "expired")


@pytest.mark.parametrize("name", CASES)
def test_an_unticked_form_box_withdraws_whatever_is_still_live(api, name: str) -> None:
    case = CASES[name]
    contact, purpose = make(case)
    before = last_record_id()

    response = api().post(
        "/api/v1/forms/submissions/",
        form_body(email=contact.email, boxes=[box(purpose, granted=False)]),
        format="json",
    )

    assert response.status_code == 201, response.json()
    assert records_after(before) == ([("withdraw", "withdrawn")] if case.live else [])


PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2029, 6, 1, 3, 0, tzinfo=PARIS)
SILENT_SINCE = NOW - relativedelta(years=3, days=1)


@pytest.mark.parametrize("name", CASES)
def test_retention_keeps_the_data_for_a_grant_the_person_gave(name: str) -> None:
    # given the case, three years and a day ago, on a purpose kept five years
    case = CASES[name]
    with freeze_time(SILENT_SINCE):
        contact, purpose = make(case, language="en")
        Purpose.objects.filter(pk=purpose.pk).update(retention_days=5 * 365)

    # when the nightly retention job runs
    with freeze_time(NOW):
        asked, erased = retention_apply()

    # then a given grant keeps the five years; a pending or expired one leaves the default
    assert (asked, erased) == ((0, 0) if case.retains else (1, 0))


def test_a_pending_grant_withdrawn_by_unsubscribe_can_no_longer_be_confirmed(
    client: Client,
) -> None:
    contact, _purpose = make(CASES["pending grant"])
    pending_record = the_state(contact).record
    post_form(client, preference_token_issue(contact=contact), "unsubscribe")

    # the link emailed before the unsubscribe is followed afterwards
    confirmed = consent_confirm(contact=contact, record_uuids=[str(pending_record.uuid)])

    assert confirmed == []
    assert the_state(contact).status == "withdrawn"


def test_ticking_a_pending_purpose_again_asks_for_a_new_confirmation(client: Client) -> None:
    contact, _purpose = make(CASES["pending grant"], language="en")
    token = preference_token_issue(contact=contact)
    before = last_record_id()

    save_consents(client, token, tick=["newsletter:email"], lang="en")

    assert records_after(before) == [("grant", "pending")]


def test_an_objection_to_profiling_keeps_a_consent_based_profiling_purpose_off(
    client: Client,
) -> None:
    # given a person who objected to profiling, then ticked personalisation on a web form
    personalisation = PurposeFactory(slug="personalisation", is_profiling=True, channels=["email"])
    contact = ContactFactory(language="en")
    contact_profiling_objection_set(contact=contact, objected=True, source="test")
    grant(contact, personalisation)
    contact.refresh_from_db()

    # then the page and eligibility agree: off, objected, until the objection is lifted
    page = client.get(center_path(preference_token_issue(contact=contact), lang="en"), **BROWSER)
    assert "personalisation:email" not in read_page(page).checked()
    assert contact_eligibility(contact, personalisation, "email") == ["objected"]

    contact_profiling_objection_set(contact=contact, objected=False, source="test")
    contact.refresh_from_db()
    assert contact_eligibility(contact, personalisation, "email") == []


def test_purposes_on_other_legal_bases_hold_no_consent_and_raise_no_problem() -> None:
    account = PurposeFactory(slug="account", legal_basis=LegalBasis.CONTRACT, channels=["email"])
    contact = ContactFactory(relationship="customer")

    assert consent_problem(contact, account, None) is None
    assert contact_eligibility(contact, account, "email") == []
    # a contract's messages need a contract: a prospect has none (issue 12)
    prospect = ContactFactory()
    assert consent_problem(prospect, account, None) is None
    assert contact_eligibility(prospect, account, "email") == ["no_consent"]
