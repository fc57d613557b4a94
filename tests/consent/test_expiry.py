from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from freezegun import freeze_time

from consent.ledger import ledger_seal, ledger_verify
from consent.models import ConsentRecord, ConsentState, Purpose
from consent.services import consent_confirm, pending_grants_expire
from consent.tasks import expire_pending_grants, send_double_opt_in_confirmation
from tests.consent.concurrency import run_concurrently
from tests.factories import ContactFactory, PurposeFactory, grant
from tests.queued import held_back

GRANTED_AT = datetime(2026, 3, 2, 10, tzinfo=UTC)


def pending_grants(count: int, purpose: Purpose | None = None) -> list[ConsentRecord]:
    purpose = purpose or PurposeFactory(double_opt_in=True)
    with freeze_time(GRANTED_AT):
        return [grant(ContactFactory(), purpose) for _ in range(count)]


def after_ttl(minutes: int = 1) -> datetime:
    return GRANTED_AT + settings.DOUBLE_OPT_IN_TTL + timedelta(minutes=minutes)


@pytest.mark.django_db
def test_pending_grants_older_than_the_delay_expire():
    pending = pending_grants(3)

    with freeze_time(after_ttl()):
        expired = pending_grants_expire()

    assert expired == 3
    for record in pending:
        state = ConsentState.objects.get(contact=record.contact)
        assert state.status == "expired"
        assert (state.record.action, state.record.source_kind) == ("expire", "system")
        assert state.record.resolves == record
    ledger_seal()  # as the beat job does every minute: these records are old
    assert ledger_verify() == []


@pytest.mark.django_db
def test_pending_grants_within_the_delay_stay_pending():
    pending_grants(2)

    with freeze_time(after_ttl(minutes=-1)):
        expired = pending_grants_expire()

    assert expired == 0
    assert set(ConsentState.objects.values_list("status", flat=True)) == {"pending"}


@pytest.mark.django_db
def test_confirmed_and_withdrawn_grants_do_not_expire():
    confirmed, withdrawn, waiting = pending_grants(3)
    with freeze_time(GRANTED_AT):
        consent_confirm(contact=confirmed.contact, record_uuids=[str(confirmed.uuid)])
        grant(withdrawn.contact, withdrawn.purpose, action="withdraw")

    with freeze_time(after_ttl()):
        pending_grants_expire()

    statuses = dict(ConsentState.objects.values_list("contact_id", "status"))
    assert statuses == {
        confirmed.contact_id: "granted",
        withdrawn.contact_id: "withdrawn",
        waiting.contact_id: "expired",
    }


@pytest.mark.django_db
def test_running_the_expiry_twice_has_the_effect_of_one_run():
    pending_grants(3)

    with freeze_time(after_ttl()):
        first = pending_grants_expire()
        second = pending_grants_expire()

    assert (first, second) == (3, 0)
    assert ConsentRecord.objects.filter(action="expire").count() == 3


@pytest.mark.django_db
def test_expiry_works_through_every_batch():
    pending_grants(5)

    with freeze_time(after_ttl()):
        expired = pending_grants_expire(batch_size=2)

    assert expired == 5
    assert not ConsentState.objects.filter(status="pending").exists()


@pytest.mark.django_db
def test_pending_grant_of_a_retired_purpose_or_dropped_channel_still_expires():
    # given more stuck rows than a batch: a job that retries them forever would never end
    purpose = PurposeFactory(double_opt_in=True, channels=["email", "sms"])
    pending_grants(3, purpose)
    Purpose.objects.filter(pk=purpose.pk).update(is_active=False, channels=["sms"])

    with freeze_time(after_ttl()):
        expired = pending_grants_expire(batch_size=2)

    assert expired == 3
    assert set(ConsentState.objects.values_list("status", flat=True)) == {"expired"}


@pytest.mark.django_db
def test_the_celery_task_expires_pending_grants():
    pending_grants(2)

    with freeze_time(after_ttl()):
        result = expire_pending_grants.apply()

    assert result.successful() and result.get() == 2
    assert ConsentRecord.objects.filter(action="expire", source_kind="system").count() == 2


@pytest.mark.postgres
def test_two_expiry_runs_at_the_same_time_expire_each_grant_once(transactional_db):
    # this test is about expiry: the confirmation emails stay queued here
    with held_back(send_double_opt_in_confirmation):
        pending = pending_grants(6)

    with freeze_time(after_ttl()):
        counts = run_concurrently(pending_grants_expire, times=2)

    assert sum(counts) == 6
    for record in pending:
        assert ConsentRecord.objects.filter(action="expire", resolves=record).count() == 1
    assert set(ConsentState.objects.values_list("status", flat=True)) == {"expired"}
    ledger_seal()  # as the beat job does every minute: these records are old
    assert ledger_verify() == []
