"""Handling data-subject requests (GDPR Art. 12-21): deadlines, history, what each type does.

Requests filed as verified are carried out by the workers: access and portability produce the
export files, restriction stops marketing, objection withdraws legitimate interests, erasure
goes through `contact_erase`. Rectification always waits for a person.
"""

import csv
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import transaction
from freezegun import freeze_time
from rest_framework.test import APIClient

import privacy.services as privacy_module
from consent.ledger import ledger_verify
from consent.models import ConsentRecord, ConsentState, LegalBasis
from contacts.models import Contact
from core.models import AuditAction, AuditEvent
from crmsync.models import OutboxEvent
from privacy.models import PrivacyRequest, PrivacyRequestEvent
from privacy.services import (
    privacy_exports_purge,
    privacy_request_carry_out,
    privacy_request_extend,
    privacy_request_file,
    privacy_request_transition,
    privacy_requests_carry_out_pending,
)
from privacy.tasks import carry_out_privacy_request
from tests.conftest import wait_for
from tests.consent.concurrency import run_concurrently
from tests.factories import ContactFactory, InterestFactory, PurposeFactory, grant
from tests.queued import held_back

PARIS = ZoneInfo("Europe/Paris")
REQUESTS = "/api/v1/privacy-requests/"
CARRIED_OUT_AT = datetime(2026, 3, 10, 9, 30, tzinfo=PARIS)


@pytest.fixture
def camille(db: None) -> Contact:
    """A person with interests and consents whose evidence carries her IP."""
    contact = ContactFactory(
        email="camille@example.fr", first_name="Camille", last_name="Durand", city="Lyon"
    )
    contact.interests.set([InterestFactory(slug="cloud")])
    grant(contact, PurposeFactory(slug="newsletter", channels=["email", "sms"]))
    return contact


@pytest.fixture
def no_export_left_behind(db: None) -> Iterator[None]:
    """Export files live on the private storage, outside the test database: remove them."""
    yield
    for request in PrivacyRequest.objects.exclude(export_json="", export_archive=""):
        for export in (request.export_json, request.export_archive):
            if export:
                export.delete(save=False)


def file_request(contact: Contact, type: str, *, verified: bool = True) -> PrivacyRequest:
    return privacy_request_file(contact=contact, type=type, source_kind="api", verified=verified)


def carry_out(request: PrivacyRequest) -> PrivacyRequest | None:
    done = privacy_request_carry_out(request_id=str(request.id))
    request.refresh_from_db()
    return done


def statuses(request: PrivacyRequest) -> list[str]:
    return list(request.history.values_list("status", flat=True))


# --- filing -----------------------------------------------------------------------------------


@pytest.mark.django_db
@freeze_time("2026-03-31T12:00:00+02:00")
def test_a_request_filed_through_the_api_records_receipt_deadline_and_history(
    api: Callable[..., APIClient], camille: Contact
) -> None:
    # given
    client = api()

    # when
    response = client.post(REQUESTS, {"email": camille.email, "type": "access"}, format="json")

    # then
    assert response.status_code == 201, response.json()
    request = PrivacyRequest.objects.get(id=response.json()["id"])
    assert request.received_at == datetime(2026, 3, 31, 12, tzinfo=PARIS)
    # one calendar month on the local calendar: 31 March -> 30 April
    assert request.due_at == datetime(2026, 4, 30, 12, tzinfo=PARIS)
    assert (request.status, request.source_kind) == ("verified", "api")
    [event] = request.history.all()
    assert (event.status, event.at, event.by) == (
        "verified",
        request.received_at,
        f"api:{client.record.name}",
    )


# --- access and portability -------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("type", ["access", "portability"])
@pytest.mark.usefixtures("no_export_left_behind")
def test_access_and_portability_produce_the_json_and_the_csv_archive(
    camille: Contact, type: str
) -> None:
    # given
    request = file_request(camille, type)

    # when
    with freeze_time(CARRIED_OUT_AT):
        carry_out(request)

    # then
    assert request.status == "completed"
    assert request.export_expires_at == CARRIED_OUT_AT + settings.PRIVACY_EXPORT_TTL
    with request.export_json.open("rb") as export:
        data = json.load(export)
    assert data["contact"]["id"] == str(camille.public_id)
    assert (data["contact"]["email"], data["contact"]["city"]) == ("camille@example.fr", "Lyon")
    assert [interest["slug"] for interest in data["interests"]] == ["cloud"]
    assert [(row["purpose"], row["status"]) for row in data["consents"]] == [
        ("newsletter", "granted")
    ]
    assert [row["ip"] for row in data["consent_history"]] == ["203.0.113.7"]
    assert [row["id"] for row in data["privacy_requests"]] == [str(request.id)]
    with request.export_archive.open("rb") as export:
        archive = zipfile.ZipFile(io.BytesIO(export.read()))
    assert set(archive.namelist()) == {
        "contact.csv",
        "interests.csv",
        "consents.csv",
        "consent_history.csv",
        "timeline.csv",
        "notes.csv",
        "privacy_requests.csv",
        # what Art. 15(1)(a)-(h) adds (tests/privacy/test_access_answer.py)
        "controller.csv",
        "purposes.csv",
        "recipients.csv",
        "retention.csv",
        "sources.csv",
        "rights.csv",
        "complaint.csv",
    }
    [row] = csv.DictReader(io.StringIO(archive.read("contact.csv").decode()))
    assert (row["id"], row["email"], row["last_name"]) == (
        str(camille.public_id),
        "camille@example.fr",
        "Durand",
    )
    [history] = csv.DictReader(io.StringIO(archive.read("consent_history.csv").decode()))
    assert (history["purpose"], history["ip"]) == ("newsletter", "203.0.113.7")


@pytest.mark.django_db
@pytest.mark.usefixtures("no_export_left_behind")
def test_exports_are_purged_once_their_availability_is_over(camille: Contact) -> None:
    # given
    request = file_request(camille, "access")
    with freeze_time(CARRIED_OUT_AT):
        carry_out(request)
    files = [request.export_json, request.export_archive]
    expiry = CARRIED_OUT_AT + settings.PRIVACY_EXPORT_TTL

    # when the availability is not over yet
    with freeze_time(expiry - timedelta(minutes=1)):
        assert privacy_exports_purge() == 0

    # then the files are still there
    assert all(file.storage.exists(file.name) for file in files)

    # when it is over
    with freeze_time(expiry + timedelta(minutes=1)):
        purged = privacy_exports_purge()
        purged_again = privacy_exports_purge()

    # then they are gone, once
    assert (purged, purged_again) == (1, 0)
    assert not any(file.storage.exists(file.name) for file in files)
    request.refresh_from_db()
    assert (request.export_json.name, request.export_archive.name) == ("", "")
    assert request.export_expires_at is None
    assert request.status == "completed"


# --- restriction, objection, rectification ----------------------------------------------------


@pytest.mark.django_db
def test_restriction_marks_the_contact_as_restricted(camille: Contact) -> None:
    # given
    request = file_request(camille, "restriction")

    # when
    with freeze_time(CARRIED_OUT_AT):
        carry_out(request)

    # then
    camille.refresh_from_db()
    assert camille.processing_restricted_at == CARRIED_OUT_AT
    assert request.status == "completed"
    kinds = list(camille.timeline.order_by("id").values_list("kind", flat=True))
    assert kinds[-2:] == ["restriction", "request_completed"]
    assert OutboxEvent.objects.filter(
        contact_public_id=camille.public_id, payload__changed=["processing_restriction"]
    ).exists()


@pytest.mark.django_db
def test_objection_withdraws_every_legitimate_interest_purpose_and_keeps_consents(
    camille: Contact,
) -> None:
    # given a consent (newsletter), two legitimate interests (one never touched) and a contract
    interests = LegalBasis.LEGITIMATE_INTERESTS
    news = PurposeFactory(slug="product-news", legal_basis=interests, channels=["email", "sms"])
    surveys = PurposeFactory(slug="surveys", legal_basis=interests, channels=["email"])
    billing = PurposeFactory(slug="billing", legal_basis=LegalBasis.CONTRACT, channels=["email"])
    grant(camille, surveys)
    grant(camille, billing)
    request = file_request(camille, "objection")

    # when
    carry_out(request)

    # then
    assert request.status == "completed"
    states = {
        (state.purpose.slug, state.channel): state.status
        for state in ConsentState.objects.filter(contact=camille).select_related("purpose")
    }
    assert states == {
        ("newsletter", "email"): "granted",
        ("billing", "email"): "granted",
        ("product-news", "email"): "withdrawn",
        ("product-news", "sms"): "withdrawn",
        ("surveys", "email"): "withdrawn",
    }
    withdrawals = ConsentRecord.objects.filter(contact=camille, action="withdraw")
    assert set(withdrawals.values_list("purpose", flat=True)) == {news.id, surveys.id}
    assert set(withdrawals.values_list("source_reference", flat=True)) == {
        f"privacy-request:{request.id}"
    }
    assert camille.timeline.filter(kind="objection").count() == 1
    assert ledger_verify() == []


@pytest.mark.django_db
def test_rectification_is_never_carried_out_automatically(
    api: Callable[..., APIClient], camille: Contact, django_capture_on_commit_callbacks: Any
) -> None:
    # given
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = api().post(
            REQUESTS,
            {"email": camille.email, "type": "rectification", "details": "I live in Paris now."},
            format="json",
        )
    request = PrivacyRequest.objects.get(id=response.json()["id"])

    # when the workers run
    done = carry_out(request)
    pending = privacy_requests_carry_out_pending()

    # then a person still has to read it
    assert callbacks == []
    assert (done, pending) == (None, 0)
    assert (request.status, statuses(request)) == ("verified", ["verified"])
    camille.refresh_from_db()
    assert camille.city == "Lyon"

    # and the DPO completes it by hand
    privacy_request_transition(request=request, status="completed", by="dpo", note="Updated.")
    request.refresh_from_db()
    assert (request.status, request.handled_by) == ("completed", "dpo")
    assert request.completed_at is not None


# --- transitions ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_verifying_a_request_queues_its_carry_out_after_commit(
    camille: Contact, django_capture_on_commit_callbacks: Any
) -> None:
    # given
    request = file_request(camille, "restriction", verified=False)

    # when
    with django_capture_on_commit_callbacks() as callbacks:
        privacy_request_transition(request=request, status="verified", by="dpo")

    # then
    request.refresh_from_db()
    assert (request.status, request.handled_by) == ("verified", "dpo")
    assert statuses(request) == ["received", "verified"]
    assert len(callbacks) == 1


def test_a_verified_request_is_carried_out_by_the_worker(
    transactional_db: None, celery_worker: Any
) -> None:
    # given (a real worker on Redis when REDIS_URL is set, in-process after commit otherwise)
    contact = ContactFactory()
    request = file_request(contact, "restriction", verified=False)
    assert request.status == "received"

    # when
    privacy_request_transition(request=request, status="verified", by="dpo")

    # then
    wait_for(lambda: PrivacyRequest.objects.get(pk=request.pk).status == "completed", 30)
    contact.refresh_from_db()
    assert contact.processing_restricted_at is not None
    assert statuses(request) == ["received", "verified", "completed"]


@pytest.mark.django_db
@pytest.mark.parametrize("note", ["", "   "])
def test_rejecting_without_a_note_is_refused(camille: Contact, note: str) -> None:
    request = file_request(camille, "erasure", verified=False)

    with pytest.raises(ValidationError) as error:
        privacy_request_transition(request=request, status="rejected", by="dpo", note=note)

    assert list(error.value.message_dict) == ["note"]
    request.refresh_from_db()
    assert (request.status, statuses(request)) == ("received", ["received"])


@pytest.mark.django_db
def test_rejecting_with_a_note_keeps_the_note_in_the_history(
    camille: Contact, django_capture_on_commit_callbacks: Any
) -> None:
    request = file_request(camille, "erasure", verified=False)

    with django_capture_on_commit_callbacks() as callbacks:
        privacy_request_transition(
            request=request, status="rejected", by="dpo", note="Identity not proven."
        )

    request.refresh_from_db()
    assert (request.status, request.handled_by) == ("rejected", "dpo")
    event = request.history.last()
    assert (event.status, event.by, event.note) == ("rejected", "dpo", "Identity not proven.")
    # nothing carried out; only the email telling the person why (GDPR Art. 12(4))
    assert len(callbacks) == 1
    assert Contact.objects.get(pk=camille.pk).status == "active"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("current", "wanted"),
    [
        ("received", "completed"),
        ("received", "in_progress"),
        ("received", "received"),
        ("verified", "received"),
        ("completed", "verified"),
        ("completed", "rejected"),
        ("rejected", "verified"),
        ("received", "finished"),
    ],
)
def test_an_illegal_transition_is_refused(camille: Contact, current: str, wanted: str) -> None:
    request = file_request(camille, "rectification", verified=False)
    PrivacyRequest.objects.filter(pk=request.pk).update(status=current)
    events = PrivacyRequestEvent.objects.count()

    with pytest.raises(ValidationError) as error:
        privacy_request_transition(request=request, status=wanted, by="dpo", note="why")

    assert list(error.value.message_dict) == ["status"]
    request.refresh_from_db()
    assert request.status == current
    assert PrivacyRequestEvent.objects.count() == events


# --- extension --------------------------------------------------------------------------------


@pytest.fixture
def received_mid_january(camille: Contact) -> PrivacyRequest:
    with freeze_time("2026-01-15T10:00:00+01:00"):
        return file_request(camille, "access", verified=False)


@pytest.mark.django_db
def test_an_extension_moves_the_deadline_and_records_its_reason(
    received_mid_january: PrivacyRequest,
) -> None:
    # when
    extended = privacy_request_extend(
        request=received_mid_january, months=2, reason="Many systems to search.", by="dpo"
    )

    # then
    extended.refresh_from_db()
    assert extended.due_at == datetime(2026, 4, 15, 10, tzinfo=PARIS)
    assert (extended.extension_reason, extended.handled_by) == ("Many systems to search.", "dpo")
    event = extended.history.last()
    assert (event.status, event.by) == ("received", "dpo")
    assert "2026-04-15" in event.note and "Many systems to search." in event.note


@pytest.mark.django_db
@pytest.mark.parametrize("reason", ["", "  \n"])
def test_an_extension_needs_its_reason(received_mid_january: PrivacyRequest, reason: str) -> None:
    with pytest.raises(ValidationError) as error:
        privacy_request_extend(request=received_mid_january, months=1, reason=reason, by="dpo")

    assert list(error.value.message_dict) == ["extension_reason"]
    received_mid_january.refresh_from_db()
    assert received_mid_january.due_at == datetime(2026, 2, 15, 10, tzinfo=PARIS)


@pytest.mark.django_db
@pytest.mark.parametrize("months", [0, 3, -1])
def test_an_extension_is_of_one_or_two_months(
    received_mid_january: PrivacyRequest, months: int
) -> None:
    with pytest.raises(ValidationError) as error:
        privacy_request_extend(request=received_mid_january, months=months, reason="x", by="dpo")

    assert list(error.value.message_dict) == ["months"]


@pytest.mark.django_db
@pytest.mark.parametrize("steps", [[2, 1], [1, 1, 1], [1, 2]])
def test_extensions_cannot_add_up_to_more_than_two_months(
    received_mid_january: PrivacyRequest, steps: list[int]
) -> None:
    # given every extension but the last one
    *allowed, too_many = steps
    for months in allowed:
        privacy_request_extend(
            request=received_mid_january, months=months, reason=f"+{months}", by="dpo"
        )
    received_mid_january.refresh_from_db()
    due_at, events = received_mid_january.due_at, received_mid_january.history.count()

    # when
    with pytest.raises(ValidationError) as error:
        privacy_request_extend(
            request=received_mid_january, months=too_many, reason="more", by="dpo"
        )

    # then
    assert list(error.value.message_dict) == ["months"]
    received_mid_january.refresh_from_db()
    assert received_mid_january.due_at == due_at <= datetime(2026, 4, 15, 10, tzinfo=PARIS)
    assert received_mid_january.history.count() == events


@pytest.mark.django_db
def test_two_one_month_extensions_keep_both_reasons(
    received_mid_january: PrivacyRequest,
) -> None:
    for reason in ("Archives offline.", "Still searching."):
        privacy_request_extend(request=received_mid_january, months=1, reason=reason, by="dpo")

    received_mid_january.refresh_from_db()
    assert received_mid_january.due_at == datetime(2026, 4, 15, 10, tzinfo=PARIS)
    assert received_mid_january.extension_reason == "Archives offline.\nStill searching."
    assert statuses(received_mid_january) == ["received", "received", "received"]


@pytest.mark.django_db
def test_a_closed_request_cannot_be_extended(camille: Contact) -> None:
    request = file_request(camille, "restriction")
    carry_out(request)

    with pytest.raises(ValidationError) as error:
        privacy_request_extend(request=request, months=1, reason="late", by="dpo")

    assert list(error.value.message_dict) == ["status"]


# --- carrying out once ------------------------------------------------------------------------


def erasure_to_carry_out(contact: Contact) -> PrivacyRequest:
    """A verified erasure request, committed with its queued carry-out held back (tests do it)."""
    with held_back(carry_out_privacy_request):
        return file_request(contact, "erasure")


@pytest.mark.django_db
def test_carrying_out_twice_has_the_effect_of_once(camille: Contact) -> None:
    # given
    request = erasure_to_carry_out(camille)

    # when
    first = carry_out(request)
    records, events = ConsentRecord.objects.count(), OutboxEvent.objects.count()
    second = carry_out(request)

    # then
    assert (first is not None, second) == (True, None)
    assert statuses(request) == ["verified", "completed"]
    assert ConsentRecord.objects.filter(contact=camille, action="withdraw").count() == 1
    assert (ConsentRecord.objects.count(), OutboxEvent.objects.count()) == (records, events)


@pytest.mark.django_db
@pytest.mark.usefixtures("no_export_left_behind")
def test_the_pending_job_carries_out_verified_requests_oldest_first(camille: Contact) -> None:
    # given requests filed out of order, plus some the job must leave alone
    later, earlier = ContactFactory(), ContactFactory()
    with freeze_time("2026-03-02T10:00:00+01:00"):
        second = file_request(later, "restriction")
    with freeze_time("2026-03-01T10:00:00+01:00"):
        first = file_request(earlier, "restriction")
    with freeze_time("2026-03-03T10:00:00+01:00"):
        third = file_request(camille, "access")
    unverified = file_request(ContactFactory(), "restriction", verified=False)
    rectification = file_request(ContactFactory(), "rectification")

    # when
    done_first_batch = privacy_requests_carry_out_pending(batch_size=2)
    done_second_batch = privacy_requests_carry_out_pending(batch_size=2)
    done_nothing_left = privacy_requests_carry_out_pending()

    # then
    assert (done_first_batch, done_second_batch, done_nothing_left) == (2, 1, 0)
    completions = PrivacyRequestEvent.objects.filter(status="completed").order_by("id")
    assert [event.request_id for event in completions] == [first.id, second.id, third.id]
    for request in (unverified, rectification):
        request.refresh_from_db()
        assert request.status in ("received", "verified")
        assert request.completed_at is None


@pytest.mark.postgres
def test_two_carry_outs_of_the_same_erasure_at_the_same_time_erase_once(
    transactional_db: None,
) -> None:
    # given
    contact = ContactFactory()
    newsletter = PurposeFactory(slug="newsletter", channels=["email", "sms"])
    with transaction.atomic():
        grant(contact, newsletter)
        grant(contact, newsletter, channel="sms")
    request = erasure_to_carry_out(contact)

    # when
    results = run_concurrently(
        lambda: privacy_request_carry_out(request_id=str(request.id)), times=2
    )

    # then
    assert sorted(result is not None for result in results) == [False, True]
    assert statuses(request) == ["verified", "completed"]
    withdrawals = ConsentRecord.objects.filter(contact=contact, action="withdraw")
    assert sorted(withdrawals.values_list("channel", flat=True)) == ["email", "sms"]
    assert OutboxEvent.objects.filter(topic="contact.erased").count() == 1
    assert Contact.objects.get(pk=contact.pk).timeline.get().kind == "erased"
    assert ledger_verify() == []


# --- completing by hand, and requests about a person erased in the meantime --------------------


def test_completing_an_erasure_by_hand_erases_the_person_not_only_the_status(
    camille: Contact,
) -> None:
    # given a verified erasure the workers have not reached yet
    request = file_request(camille, "erasure", verified=False)
    privacy_request_transition(request=request, status="verified", by="dpo")

    # when the DPO marks it completed in the admin
    privacy_request_transition(request=request, status="completed", by="dpo")

    # then the person is erased in the same step, and a worker run later does nothing more
    request.refresh_from_db()
    camille.refresh_from_db()
    assert (request.status, request.handled_by) == ("completed", "dpo")
    assert camille.status == "erased"
    assert carry_out(request) is None


def test_a_request_about_a_person_erased_meanwhile_is_closed_and_never_blocks_the_job(
    camille: Contact,
) -> None:
    # given a verified restriction filed first, then an erasure carried out before it
    restriction = file_request(camille, "restriction")
    erasure = file_request(camille, "erasure")
    carry_out(erasure)
    later = file_request(ContactFactory(email="louis@example.fr"), "erasure")

    # when the pending job runs
    done = privacy_requests_carry_out_pending()

    # then the restriction is closed with a note saying why, and the next request is carried out
    restriction.refresh_from_db()
    later.refresh_from_db()
    assert done == 2
    assert restriction.status == "rejected"
    assert "erased before" in restriction.history.order_by("-id").first().note
    assert later.status == "completed"


def test_one_failing_request_does_not_hold_back_the_others(
    camille: Contact, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the oldest verified request fails every time it is carried out
    first = file_request(camille, "objection")
    second = file_request(ContactFactory(email="louis@example.fr"), "erasure")

    def fail(request: PrivacyRequest) -> None:
        raise RuntimeError("the storage is down")

    monkeypatch.setitem(privacy_module.CARRY_OUT, "objection", fail)

    # when the pending job runs
    done = privacy_requests_carry_out_pending()

    # then the failure is left for the next run, and the other request is carried out
    first.refresh_from_db()
    second.refresh_from_db()
    assert done == 1
    assert (first.status, second.status) == ("verified", "completed")


def test_erasure_scrubs_the_staff_notes_about_the_person_and_the_admin_history(
    camille: Contact,
) -> None:
    # given a rejection note and an extension reason naming the person, and an admin edit
    rejected = file_request(camille, "rectification", verified=False)
    privacy_request_transition(
        request=rejected, status="rejected", by="dpo", note="Camille Durand sent no proof"
    )
    pending = file_request(camille, "access", verified=False)
    privacy_request_extend(
        request=pending, months=1, reason="Camille Durand's many files", by="dpo"
    )
    dpo = User.objects.create(username="dpo")
    LogEntry.objects.create(
        user=dpo,
        content_type=ContentType.objects.get_for_model(Contact),
        object_id=str(camille.pk),
        object_repr=str(camille),
        action_flag=CHANGE,
    )
    AuditEvent.objects.create(
        user=dpo,
        username="dpo",
        action=AuditAction.REQUEST_CHANGE,
        contact=camille,
        details={"request": str(rejected.pk), "note": "Camille Durand sent no proof"},
    )

    # when she is erased
    erasure = file_request(camille, "erasure")
    carry_out(erasure)

    # then no note, reason or history entry still names her
    texts = [
        *PrivacyRequestEvent.objects.filter(request__contact=camille).values_list(
            "note", flat=True
        ),
        *PrivacyRequest.objects.filter(contact=camille).values_list("extension_reason", flat=True),
        *LogEntry.objects.values_list("object_repr", flat=True),
        *[str(details) for details in AuditEvent.objects.values_list("details", flat=True)],
    ]
    assert texts and not [text for text in texts if "Camille" in text or "camille@" in text]
