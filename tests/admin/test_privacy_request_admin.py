"""The DPO's register of privacy requests in the admin: deadlines, handling, exports."""

import io
import json
import re
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.contrib.messages import get_messages
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from freezegun import freeze_time

from consent.models import SourceKind
from contacts.models import Contact, ContactStatus, TimelineEvent
from contacts.selectors import suppression_reason
from core.models import AuditEvent
from privacy.models import PrivacyRequest
from privacy.services import (
    privacy_request_carry_out,
    privacy_request_extend,
    privacy_request_transition,
)
from tests.admin.forms import submitted_form
from tests.api.live import LIVE_DB
from tests.conftest import wait_for
from tests.factories import ContactFactory, PrivacyRequestFactory

CHANGELIST = reverse("admin:privacy_privacyrequest_changelist")
ADD = reverse("admin:privacy_privacyrequest_add")
CONTACTS = reverse("admin:contacts_contact_changelist")


def change_url(request: PrivacyRequest) -> str:
    return reverse("admin:privacy_privacyrequest_change", args=[request.pk])


def export_url(request: PrivacyRequest, kind: str) -> str:
    return reverse("admin:privacy_privacyrequest_export", args=[request.pk, kind])


def filed(days_ago: int = 0, *, type: str = "rectification", **kwargs: object) -> PrivacyRequest:
    """A request received `days_ago` days ago by email (due one month after)."""
    at = timezone.now() - timedelta(days=days_ago)
    return PrivacyRequestFactory(at=at, type=type, source_kind=SourceKind.WEB_FORM, **kwargs)


def closed(days_ago: int) -> PrivacyRequest:
    request = filed(days_ago, verified=True)
    return privacy_request_transition(request=request, status="completed", by="dpo", note="Done.")


def listed(client: Client, **query: str) -> list[PrivacyRequest]:
    response = client.get(CHANGELIST, query)
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def handle(client: Client, request: PrivacyRequest, **changes: object) -> HttpResponse:
    """Open the request's page and submit its handling form with `changes`."""
    page = client.get(change_url(request))
    assert page.status_code == 200
    return client.post(change_url(request), submitted_form(page, **changes))


def admin_messages(response: HttpResponse) -> list[tuple[str, str]]:
    return [(message.level_tag, str(message)) for message in get_messages(response.wsgi_request)]


def offered_actions(client: Client) -> list[str]:
    """The actions of the contact list's drop-down for this user."""
    form = client.get(CONTACTS).context["action_form"]
    return [name for name, _label in form.fields["action"].choices]


def statuses(request: PrivacyRequest) -> list[tuple[str, str]]:
    return list(request.history.values_list("status", "by"))


@pytest.fixture
def no_export_left_behind(db: None) -> Iterator[None]:
    """Export files live on the private storage, outside the test database: remove them."""
    yield
    for request in PrivacyRequest.objects.exclude(export_json="", export_archive=""):
        for export in (request.export_json, request.export_archive):
            if export:
                export.delete(save=False)


@pytest.fixture
def exported(no_export_left_behind: None) -> PrivacyRequest:
    """An access request carried out: its JSON and CSV archive wait for the DPO."""
    contact = ContactFactory(email="ines.moreau@example.fr", first_name="Inès", city="Lyon")
    request = filed(type="access", contact=contact, verified=True)
    privacy_request_carry_out(request_id=str(request.id))
    request.refresh_from_db()
    assert request.export_json and request.export_archive
    return request


# --- the register -----------------------------------------------------------------------------


@pytest.fixture
def register(db: None) -> dict[str, PrivacyRequest]:
    """Requests at every point of their deadline; the closed one had the earliest deadline."""
    return {
        "later": filed(1),  # due in about 29 days
        "closed": closed(60),  # was due a month ago, but completed
        "soon": filed(26),  # due in 4 or 5 days
        "late": filed(40),  # was due 9 or 10 days ago
        "latest": filed(45),  # the longest overdue
    }


@pytest.mark.django_db
def test_open_requests_come_first_most_overdue_on_top_and_closed_ones_last(
    as_dpo: Client, register: dict[str, PrivacyRequest]
) -> None:
    rows = listed(as_dpo)

    assert rows == [
        register["latest"],
        register["late"],
        register["soon"],
        register["later"],
        register["closed"],
    ]


@pytest.mark.django_db
def test_late_and_due_soon_columns_flag_open_requests_only(
    as_dpo: Client, register: dict[str, PrivacyRequest]
) -> None:
    response = as_dpo.get(CHANGELIST)

    model_admin = response.context["cl"].model_admin
    flags = {
        name: (model_admin.is_late(request), model_admin.due_soon(request))
        for name, request in register.items()
    }
    assert flags == {
        "latest": (True, False),
        "late": (True, False),
        "soon": (False, True),
        "later": (False, False),
        "closed": (False, False),  # a closed request is never late, whatever its due date
    }
    assert "Late" in response.content.decode()
    assert "Due within 7 days" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("deadline", "expected"),
    [
        ("late", ["latest", "late"]),
        ("week", ["soon"]),
        ("later", ["later"]),
        ("closed", ["closed"]),
    ],
)
def test_deadline_filter_shows_the_requests_of_that_deadline(
    as_dpo: Client, register: dict[str, PrivacyRequest], deadline: str, expected: list[str]
) -> None:
    assert listed(as_dpo, deadline=deadline) == [register[name] for name in expected]


# --- filing from the admin --------------------------------------------------------------------


@LIVE_DB
def test_request_filed_in_the_admin_counts_as_verified_and_is_carried_out(
    as_dpo: Client, celery_worker: Any
) -> None:
    # given a person who asked the DPO by letter to stop all processing
    contact = ContactFactory(email="ines.moreau@example.fr")
    page = as_dpo.get(ADD)
    assert page.status_code == 200

    # when the DPO files it (committed: in-process or on the real worker, after commit)
    response = as_dpo.post(
        ADD,
        submitted_form(page, contact=contact.pk, type="restriction", details="Letter of 2 May"),
    )

    # then it was filed as verified by the DPO, and carried out at once
    assert response.status_code == 302
    request = PrivacyRequest.objects.get(contact=contact)
    assert (request.source_kind, request.source_reference) == ("admin", "dpo-persona")
    assert request.details == "Letter of 2 May"
    wait_for(lambda: PrivacyRequest.objects.get(pk=request.pk).status == "completed")
    assert statuses(request) == [("verified", "dpo-persona"), ("completed", "worker")]
    contact.refresh_from_db()
    assert contact.processing_restricted_at is not None


@pytest.mark.django_db
def test_a_request_cannot_be_filed_for_an_erased_contact(as_dpo: Client) -> None:
    contact = ContactFactory(status=ContactStatus.ERASED)
    page = as_dpo.get(ADD)

    response = as_dpo.post(ADD, submitted_form(page, contact=contact.pk, type="access"))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"contact": ["This contact was erased."]}
    assert not PrivacyRequest.objects.filter(contact=contact).exists()


# --- handling: verify, reject, complete -------------------------------------------------------


@pytest.mark.django_db
def test_dpo_verifies_then_completes_a_request_with_history_and_handler(as_dpo: Client) -> None:
    # given a rectification received by email
    request = filed(2)

    # when the DPO verifies the identity, then completes it
    verified = handle(as_dpo, request, next_status="verified", note="ID card checked")
    completed = handle(as_dpo, request, next_status="completed", note="City corrected")

    # then each step is in the history, with who did it and why
    assert (verified.status_code, completed.status_code) == (302, 302)
    request.refresh_from_db()
    assert (request.status, request.handled_by) == ("completed", "dpo-persona")
    assert request.completed_at is not None
    history = list(request.history.values_list("status", "by", "note"))
    assert history == [
        ("received", "", ""),
        ("verified", "dpo-persona", "ID card checked"),
        ("completed", "dpo-persona", "City corrected"),
    ]
    assert AuditEvent.objects.filter(action="request_change", contact=request.contact).count() == 2


@pytest.mark.django_db
def test_only_allowed_transitions_are_offered(as_dpo: Client) -> None:
    request = filed(2)

    page = as_dpo.get(change_url(request))

    choices = [
        value for value, _label in page.context["adminform"].form.fields["next_status"].choices
    ]
    assert choices == ["", "verified", "rejected"]


@pytest.mark.django_db
def test_dpo_rejects_a_request_with_its_reason(as_dpo: Client) -> None:
    request = filed(2)

    response = handle(as_dpo, request, next_status="rejected", note="Identity not confirmed")

    assert response.status_code == 302
    request.refresh_from_db()
    assert (request.status, request.handled_by) == ("rejected", "dpo-persona")
    assert request.history.last().note == "Identity not confirmed"


@pytest.mark.django_db
def test_rejecting_without_a_note_is_refused_next_to_the_note_field(as_dpo: Client) -> None:
    request = filed(2)

    response = handle(as_dpo, request, next_status="rejected", note="  ")

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "note": ["Say why the request is rejected."]
    }
    page = response.content.decode()
    row = re.search(r'<div class="form-row errors field-note">(.*?)</textarea>', page, re.S)
    assert row, "no error row around the note field"
    assert '<ul class="errorlist" id="id_note_error"><li>Say why' in row.group(1)
    assert 'aria-describedby="id_note_error"' in row.group(1)
    request.refresh_from_db()
    assert request.status == "received"
    assert statuses(request) == [("received", "")]


# --- extensions -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_extension_with_its_reason_moves_the_deadline_and_is_logged(as_dpo: Client) -> None:
    request = filed(2)
    due_before = request.due_at

    response = handle(
        as_dpo, request, extend_months="1", new_extension_reason="Several systems to search"
    )

    assert response.status_code == 302
    request.refresh_from_db()
    assert request.due_at == timezone.localtime(due_before) + relativedelta(months=1)
    assert request.extension_reason == "Several systems to search"
    assert request.handled_by == "dpo-persona"
    last = request.history.last()
    assert (last.status, last.by) == ("received", "dpo-persona")
    assert "Several systems to search" in last.note
    assert timezone.localtime(request.due_at).date().isoformat() in last.note


@pytest.mark.django_db
def test_extension_without_a_reason_is_refused_next_to_the_reason_field(as_dpo: Client) -> None:
    request = filed(2)

    response = handle(as_dpo, request, extend_months="2", new_extension_reason="")

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "new_extension_reason": ["An extension needs its reason."]
    }
    assert PrivacyRequest.objects.get(pk=request.pk).due_at == request.due_at


@pytest.mark.django_db
def test_extension_beyond_two_months_in_all_is_an_error_and_changes_nothing(
    as_dpo: Client,
) -> None:
    # given a request already extended by two months
    request = privacy_request_extend(
        request=filed(2), months=2, reason="Many requests this month", by="dpo"
    )
    history_before = statuses(request)

    # when the DPO tries one more month, and to verify it in the same form
    response = handle(
        as_dpo,
        request,
        extend_months="1",
        new_extension_reason="Still busy",
        next_status="verified",
    )

    # then the error shows next to the field, and nothing changed (the status neither)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "extend_months": ["The deadline can be extended by two months at most in all."]
    }
    after = PrivacyRequest.objects.get(pk=request.pk)
    assert (after.due_at, after.extension_reason) == (request.due_at, "Many requests this month")
    assert statuses(after) == history_before
    assert not AuditEvent.objects.filter(action="request_change").exists()


# --- exports ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_dpo_downloads_the_exports_from_the_request_page(
    as_dpo: Client, exported: PrivacyRequest
) -> None:
    # given the links on the request's page
    page = as_dpo.get(change_url(exported)).content.decode()
    assert export_url(exported, "json") in page
    assert export_url(exported, "zip") in page

    # when the DPO downloads both
    as_json = as_dpo.get(export_url(exported, "json"), REMOTE_ADDR="192.0.2.44")
    as_zip = as_dpo.get(export_url(exported, "zip"), REMOTE_ADDR="192.0.2.44")

    # then they hold the person's data, as attachments
    assert as_json.status_code == 200
    assert "attachment" in as_json["Content-Disposition"]
    assert "ines.moreau@example.fr" in json.dumps(json.loads(b"".join(as_json.streaming_content)))
    assert as_zip.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(as_zip.streaming_content)))
    assert archive.namelist()
    assert all(name.endswith(".csv") for name in archive.namelist())


@pytest.mark.django_db
def test_every_export_download_is_in_the_audit_log(
    as_dpo: Client, dpo: AbstractUser, exported: PrivacyRequest
) -> None:
    as_dpo.get(export_url(exported, "json"), REMOTE_ADDR="192.0.2.44")
    as_dpo.get(export_url(exported, "zip"), REMOTE_ADDR="192.0.2.44")

    events = AuditEvent.objects.filter(action="export").order_by("id")
    assert [(e.user, e.contact, e.ip, e.details["format"]) for e in events] == [
        (dpo, exported.contact, "192.0.2.44", "json"),
        (dpo, exported.contact, "192.0.2.44", "zip"),
    ]
    assert {e.details["request"] for e in events} == {str(exported.pk)}


@pytest.mark.django_db
def test_an_export_is_404_once_expired_and_the_attempt_is_not_logged(
    as_dpo: Client, exported: PrivacyRequest
) -> None:
    with freeze_time(exported.export_expires_at + timedelta(minutes=1)):
        responses = [as_dpo.get(export_url(exported, kind)) for kind in ("json", "zip")]

    assert [response.status_code for response in responses] == [404, 404]
    assert not AuditEvent.objects.filter(action="export").exists()


@pytest.mark.django_db
def test_an_export_is_available_until_its_expiry(as_dpo: Client, exported: PrivacyRequest) -> None:
    assert exported.export_expires_at > timezone.now() + settings.PRIVACY_EXPORT_TTL - timedelta(
        minutes=5
    )

    with freeze_time(exported.export_expires_at - timedelta(minutes=1)):
        response = as_dpo.get(export_url(exported, "json"))

    assert response.status_code == 200


@pytest.mark.django_db
def test_an_unknown_export_format_is_404(as_dpo: Client, exported: PrivacyRequest) -> None:
    assert as_dpo.get(export_url(exported, "pdf")).status_code == 404


# --- what a marketer may not do ---------------------------------------------------------------


@pytest.mark.django_db
def test_marketer_cannot_download_an_export(as_marketer: Client, exported: PrivacyRequest) -> None:
    responses = [as_marketer.get(export_url(exported, kind)) for kind in ("json", "zip")]

    assert [response.status_code for response in responses] == [403, 403]
    assert not AuditEvent.objects.filter(action="export").exists()


@pytest.mark.django_db
def test_marketer_cannot_see_the_register_of_requests(
    as_marketer: Client, register: dict[str, PrivacyRequest]
) -> None:
    assert as_marketer.get(CHANGELIST).status_code == 403
    assert as_marketer.get(change_url(register["late"])).status_code == 403


@pytest.mark.django_db
def test_marketer_is_not_offered_the_erasure_action(as_marketer: Client, as_dpo: Client) -> None:
    ContactFactory()

    assert "erase_contacts" not in offered_actions(as_marketer)
    assert "erase_contacts" in offered_actions(as_dpo)


@pytest.mark.django_db
def test_marketer_cannot_erase_a_contact_even_by_posting_the_action(as_marketer: Client) -> None:
    contact = ContactFactory(email="ines.moreau@example.fr")

    response = as_marketer.post(
        CONTACTS,
        {"action": "erase_contacts", "_selected_action": [contact.pk], "confirmed": "yes"},
        follow=True,
    )

    assert response.status_code == 200
    assert ("warning", "No action selected.") in admin_messages(response)
    contact = Contact.objects.get(pk=contact.pk)
    assert (contact.status, contact.email) == ("active", "ines.moreau@example.fr")
    assert suppression_reason(kind="email", value="ines.moreau@example.fr") is None
    assert not AuditEvent.objects.filter(action="erasure").exists()


@pytest.mark.django_db
def test_a_letter_entered_later_is_due_one_month_after_it_was_received(as_dpo: Client) -> None:
    # given a letter received on 2 May 2026, entered by the DPO on 20 May
    contact = ContactFactory(email="ines.moreau@example.fr")
    with freeze_time("2026-05-20 09:00:00"):
        page = as_dpo.get(ADD)
        data = submitted_form(
            page, contact=contact.pk, type="rectification", details="Letter of 2 May"
        )
        data.update({"received_at_0": "2026-05-02", "received_at_1": "10:00:00"})

        # when it is filed
        response = as_dpo.post(ADD, data)

    # then the deadline runs from the receipt, not from the entry
    assert response.status_code == 302
    request = PrivacyRequest.objects.get(contact=contact)
    assert timezone.localtime(request.received_at).date().isoformat() == "2026-05-02"
    assert timezone.localtime(request.due_at).date().isoformat() == "2026-06-02"


@pytest.mark.django_db
def test_a_request_received_in_the_future_is_refused_on_its_field(as_dpo: Client) -> None:
    contact = ContactFactory(email="ines.moreau@example.fr")
    page = as_dpo.get(ADD)
    tomorrow = timezone.localdate() + timedelta(days=1)
    data = submitted_form(page, contact=contact.pk, type="access")
    data.update({"received_at_0": tomorrow.isoformat(), "received_at_1": "10:00:00"})

    response = as_dpo.post(ADD, data)

    assert response.status_code == 200
    assert "future" in str(response.context["adminform"].form.errors["received_at"])
    assert not PrivacyRequest.objects.exists()


@pytest.mark.django_db
def test_dpo_files_a_privacy_request_through_the_service(as_dpo: Client) -> None:
    contact = ContactFactory()
    page = as_dpo.get(ADD)

    response = as_dpo.post(
        ADD, submitted_form(page, contact=contact.pk, type="access", details="By letter.")
    )

    assert response.status_code == 302
    request = PrivacyRequest.objects.get(contact=contact)
    assert request.status == "verified" and request.source_kind == "admin"
    assert request.due_at == request.received_at + relativedelta(months=1)
    assert [event.status for event in request.history.all()] == ["verified"]
    assert TimelineEvent.objects.filter(contact=contact, kind="request_filed").exists()
