from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection
from django.utils import timezone

from consent.ledger import ledger_verify
from consent.models import (
    ConsentEvidence,
    ConsentRecord,
    ConsentState,
    Purpose,
)
from consent.services import ConsentWrite, Evidence, consent_record
from contacts.models import Contact, TimelineEvent
from contacts.services import suppression_add
from crmsync.models import OutboxEvent
from tests.factories import ContactFactory, PurposeFactory, grant

pytestmark = pytest.mark.django_db


def ledger_snapshot() -> tuple[int, int, int, int, int, str]:
    """Everything one consent write touches, to show that a failed write left nothing."""
    return (
        ConsentRecord.objects.count(),
        ConsentState.objects.count(),
        ConsentEvidence.objects.count(),
        TimelineEvent.objects.count(),
        OutboxEvent.objects.count(),
        "".join(Contact.objects.order_by("id").values_list("ledger_hash", flat=True)),
    )


def test_grant_records_who_what_and_how_in_the_ledger():
    contact, purpose = ContactFactory(), PurposeFactory()

    record = grant(contact, purpose, channel="sms")

    assert (record.action, record.status, record.channel) == ("grant", "granted", "sms")
    assert record.purpose_version == purpose.current_version
    assert record.source_kind == "web_form"
    assert record.wording == purpose.current_version.wording_fr
    assert record.unticked_by_default is True and record.policy_version == "2026-01"
    assert TimelineEvent.objects.filter(contact=contact, kind="consent_changed").count() == 1
    event = OutboxEvent.objects.get(topic="consent.recorded")
    assert event.payload["record"] == str(record.uuid) and event.payload["status"] == "granted"


def test_channel_the_purpose_does_not_use_is_an_error_on_channel():
    contact, purpose = ContactFactory(), PurposeFactory(channels=["email"])

    with pytest.raises(ValidationError) as error:
        grant(contact, purpose, channel="sms")

    assert list(error.value.message_dict) == ["channel"]


def test_consent_given_in_the_future_is_an_error_on_given_at():
    contact, purpose = ContactFactory(), PurposeFactory()

    with pytest.raises(ValidationError) as error:
        grant(contact, purpose, given_at=timezone.now() + timedelta(hours=1))

    assert list(error.value.message_dict) == ["given_at"]


def test_consent_given_earlier_keeps_its_date():
    contact, purpose = ContactFactory(), PurposeFactory()
    given_at = timezone.now() - timedelta(days=3)

    record = grant(contact, purpose, given_at=given_at)

    assert record.given_at == given_at and record.recorded_at > given_at


def test_pre_ticked_box_is_not_valid_consent():
    contact, purpose = ContactFactory(), PurposeFactory()
    evidence = Evidence(wording="J'accepte.", unticked_by_default=False)

    with pytest.raises(ValidationError) as error:
        grant(contact, purpose, evidence=evidence)

    assert list(error.value.message_dict) == ["evidence"]
    assert not ConsentRecord.objects.exists()


def test_web_form_grant_without_the_wording_shown_is_refused():
    contact, purpose = ContactFactory(), PurposeFactory()

    with pytest.raises(ValidationError) as error:
        grant(contact, purpose, evidence=Evidence(unticked_by_default=True, ip="203.0.113.7"))

    assert list(error.value.message_dict) == ["evidence"]


def test_paper_form_grant_without_the_signed_document_is_refused():
    contact, purpose = ContactFactory(), PurposeFactory()

    with pytest.raises(ValidationError) as error:
        grant(contact, purpose, source_kind="paper_form", evidence=Evidence(wording="J'accepte."))

    assert list(error.value.message_dict) == ["evidence"]


def test_invalid_ip_address_in_the_evidence_is_an_error_on_evidence():
    contact, purpose = ContactFactory(), PurposeFactory()
    evidence = Evidence(wording="J'accepte.", unticked_by_default=True, ip="not-an-ip")

    with pytest.raises(ValidationError) as error:
        grant(contact, purpose, evidence=evidence)

    assert list(error.value.message_dict) == ["evidence"]
    assert not ConsentRecord.objects.exists()


def test_too_long_policy_version_is_an_error_on_evidence():
    contact, purpose = ContactFactory(), PurposeFactory()
    evidence = Evidence(wording="J'accepte.", unticked_by_default=True, policy_version="v" * 51)

    with pytest.raises(ValidationError) as error:
        grant(contact, purpose, evidence=evidence)

    assert list(error.value.message_dict) == ["evidence"]


def test_unknown_action_and_source_are_errors_on_their_fields():
    contact, purpose = ContactFactory(), PurposeFactory()

    with pytest.raises(ValidationError) as error:
        grant(contact, purpose, action="maybe", source_kind="carrier-pigeon")

    assert sorted(error.value.message_dict) == ["action", "source"]


def test_withdraw_after_grant_makes_the_state_withdrawn():
    contact, purpose = ContactFactory(), PurposeFactory()
    granted = grant(contact, purpose)

    withdrawn = grant(
        contact, purpose, action="withdraw", source_kind="preference_center", evidence=Evidence()
    )

    state = ConsentState.objects.get(contact=contact, purpose=purpose, channel="email")
    assert state.status == "withdrawn" and state.record == withdrawn
    assert withdrawn.previous_hash == granted.hash
    assert ledger_verify() == []


def test_withdraw_stays_possible_after_the_purpose_dropped_the_channel_or_was_retired():
    # the right to withdraw must never be harder to use than giving consent (GDPR Art. 7(3))
    contact, purpose = ContactFactory(), PurposeFactory(channels=["email", "sms"])
    grant(contact, purpose, channel="sms")
    Purpose.objects.filter(pk=purpose.pk).update(channels=["email"], is_active=False)
    purpose.refresh_from_db()

    grant(contact, purpose, channel="sms", action="withdraw", evidence=Evidence())

    assert ConsentState.objects.get(contact=contact, channel="sms").status == "withdrawn"


def test_grant_on_a_retired_purpose_is_refused():
    contact = ContactFactory()
    purpose = PurposeFactory(is_active=False)

    with pytest.raises(ValidationError) as error:
        grant(contact, purpose)

    assert list(error.value.message_dict) == ["purpose"]


def test_failure_on_a_purpose_without_wording_leaves_the_ledger_untouched():
    contact = ContactFactory()
    grant(contact, PurposeFactory())
    unworded = Purpose.objects.create(slug="unworded", name_fr="x", name_en="x", channels=["email"])
    before = ledger_snapshot()

    with pytest.raises(ValidationError) as error:
        consent_record(
            write=ConsentWrite(
                contact=contact,
                purpose=unworded,
                channel="email",
                action="grant",
                source_kind="admin",
            )
        )

    assert list(error.value.message_dict) == ["purpose"]
    assert ledger_snapshot() == before


def test_suppression_refusal_after_the_ledger_lock_leaves_the_ledger_untouched():
    contact, purpose = ContactFactory(), PurposeFactory()
    grant(contact, purpose, channel="sms")
    suppression_add(reason="complaint", email=contact.email)
    before = ledger_snapshot()

    with pytest.raises(ValidationError):
        grant(
            contact,
            purpose,
            source_kind="import",
            evidence=Evidence(wording="J'accepte.", unticked_by_default=True),
        )

    assert ledger_snapshot() == before


def test_database_failure_after_the_record_insert_rolls_back_record_evidence_and_state():
    # given a database that refuses the outbox insert, the last write of a consent
    contact, purpose = ContactFactory(), PurposeFactory()
    grant(contact, purpose, channel="sms")
    before = ledger_snapshot()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION test_outbox_down() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'outbox down'; END; $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                "CREATE TRIGGER test_outbox_down BEFORE INSERT ON crmsync_outboxevent "
                "FOR EACH ROW EXECUTE FUNCTION test_outbox_down()"
            )
        else:
            cursor.execute(
                "CREATE TRIGGER test_outbox_down BEFORE INSERT ON crmsync_outboxevent "
                "BEGIN SELECT RAISE(ABORT, 'outbox down'); END"
            )

    # when
    with pytest.raises(DatabaseError, match="outbox down"):
        grant(contact, purpose)

    # then
    assert ledger_snapshot() == before
    assert not ConsentState.objects.filter(channel="email").exists()
    assert ledger_verify() == []
