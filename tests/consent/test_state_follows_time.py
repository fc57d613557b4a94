"""State follows time, not arrival (SPEC §3 consent): a grant or withdrawal older than the
change behind the current state is kept in the ledger but does not change the state."""

from datetime import timedelta

import pytest
from django.utils import timezone

from consent.eligibility import contact_eligibility
from consent.ledger import ledger_verify
from consent.models import ConsentRecord, ConsentState
from consent.services import Evidence, consents_withdraw_all
from contacts.models import TimelineEvent
from crmsync.models import OutboxEvent
from tests.api.payloads import consent_body
from tests.factories import ContactFactory, EvidenceFactory, PurposeFactory, grant

CONSENTS = "/api/v1/consents/"


def days_ago(days: float):
    return timezone.now() - timedelta(days=days)


def crm_grant(contact, purpose, given_at, **kwargs):
    evidence = EvidenceFactory(purpose=purpose)
    return grant(
        contact, purpose, source_kind="crm", evidence=evidence, given_at=given_at, **kwargs
    )


@pytest.mark.django_db
def test_an_old_grant_after_a_newer_withdrawal_is_kept_but_changes_nothing():
    contact, purpose = ContactFactory(), PurposeFactory()
    grant(contact, purpose, given_at=days_ago(3))
    withdrawal = grant(contact, purpose, action="withdraw", given_at=days_ago(1))
    timeline_before = TimelineEvent.objects.count()

    replayed = crm_grant(contact, purpose, given_at=days_ago(2))

    assert ConsentRecord.objects.filter(pk=replayed.pk).exists()
    assert (replayed.action, replayed.status) == ("grant", "withdrawn")
    state = ConsentState.objects.get(contact=contact)
    assert (state.status, state.record) == ("withdrawn", withdrawal)
    assert contact_eligibility(contact, purpose, "email") == ["no_consent"]
    assert ledger_verify() == []
    # nothing claims a change that did not happen
    assert TimelineEvent.objects.count() == timeline_before
    [event] = [
        e for e in OutboxEvent.objects.all() if e.payload.get("record") == str(replayed.uuid)
    ]
    assert event.topic == "consent.superseded"
    assert (event.payload["status"], event.payload["current_record"]) == (
        "withdrawn",
        str(withdrawal.uuid),
    )


@pytest.mark.django_db
def test_an_old_withdrawal_after_a_newer_grant_is_kept_but_changes_nothing():
    contact, purpose = ContactFactory(), PurposeFactory()
    granted = grant(contact, purpose, given_at=days_ago(1))

    replayed = grant(contact, purpose, action="withdraw", source_kind="crm", given_at=days_ago(2))

    assert (replayed.action, replayed.status) == ("withdraw", "granted")
    state = ConsentState.objects.get(contact=contact)
    assert (state.status, state.record) == ("granted", granted)
    assert contact_eligibility(contact, purpose, "email") == []
    assert ConsentRecord.objects.filter(contact=contact).count() == 2


@pytest.mark.django_db
def test_at_equal_times_the_later_arrival_wins():
    contact, purpose = ContactFactory(), PurposeFactory()
    at = days_ago(1)
    grant(contact, purpose, given_at=at)

    withdrawal = grant(contact, purpose, action="withdraw", given_at=at)

    assert ConsentState.objects.get(contact=contact).record == withdrawal


@pytest.mark.django_db
def test_a_newer_change_still_changes_the_state():
    contact, purpose = ContactFactory(), PurposeFactory()
    grant(contact, purpose, action="withdraw", given_at=days_ago(2))

    record = crm_grant(contact, purpose, given_at=days_ago(1))

    assert record.status == "granted"
    assert ConsentState.objects.get(contact=contact).record == record


@pytest.mark.django_db
def test_a_grant_dated_in_the_future_cannot_outlast_the_persons_withdrawal():
    contact, purpose = ContactFactory(), PurposeFactory()
    # within the clock skew a client may have: counted as of its arrival
    grant(contact, purpose, given_at=timezone.now() + timedelta(minutes=4))

    [withdrawal] = consents_withdraw_all(
        contact=contact, source_kind="preference_center", evidence=Evidence()
    )

    assert withdrawal.status == "withdrawn"
    assert ConsentState.objects.get(contact=contact).status == "withdrawn"


@pytest.mark.django_db
def test_an_old_grant_on_a_double_opt_in_purpose_sends_no_confirmation(
    django_capture_on_commit_callbacks,
):
    contact, purpose = ContactFactory(), PurposeFactory(double_opt_in=True)
    grant(contact, purpose, action="withdraw", given_at=days_ago(1))

    with django_capture_on_commit_callbacks() as callbacks:
        replayed = crm_grant(contact, purpose, given_at=days_ago(2))

    assert replayed.status == "withdrawn"
    assert callbacks == []


@pytest.mark.django_db
def test_confirming_a_pending_grant_is_not_held_back_by_an_older_time():
    from consent.services import consent_confirm

    contact, purpose = ContactFactory(), PurposeFactory(double_opt_in=True)
    pending = grant(contact, purpose)

    [confirmed] = consent_confirm(contact=contact, record_uuids=[str(pending.uuid)])

    assert confirmed.status == "granted"
    assert ConsentState.objects.get(contact=contact).status == "granted"


@pytest.mark.django_db
def test_a_crm_replaying_an_old_opt_in_through_the_api_is_answered_with_the_current_status(
    api,
):
    contact, purpose = ContactFactory(), PurposeFactory(slug="newsletter")
    grant(contact, purpose, given_at=days_ago(3))
    grant(contact, purpose, action="withdraw", given_at=days_ago(1))

    response = api().post(
        CONSENTS,
        consent_body(
            purpose,
            contact=str(contact.public_id),
            kind="crm",
            given_at=days_ago(2).isoformat(),
        ),
        format="json",
    )

    assert response.status_code == 201, response.json()
    assert (response.json()["action"], response.json()["status"]) == ("grant", "withdrawn")
    assert ConsentState.objects.get(contact=contact).status == "withdrawn"
    assert ConsentRecord.objects.filter(contact=contact).count() == 3
