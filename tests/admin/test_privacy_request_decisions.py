"""An extension or a rejection of a privacy request is emailed to the person with its reasons,
in their language, once the decision commits, and once (GDPR Art. 12(3)-(4))."""

from email.header import decode_header, make_header
from email.message import Message
from typing import Any

import pytest
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from consent.models import SourceKind
from contacts.models import Contact
from privacy.models import PrivacyRequest, PrivacyRequestEvent
from privacy.services import (
    contact_erase,
    privacy_request_decision_send,
    privacy_request_file,
    privacy_request_transition,
)
from tests.admin.forms import submitted_form
from tests.api.live import LIVE_DB
from tests.conftest import USES_REAL_WORKER, Mailbox, message_text, wait_for
from tests.factories import ContactFactory, PrivacyRequestFactory

# The email goes out from a task once the decision commits (on the real worker when there is).
pytestmark = LIVE_DB if USES_REAL_WORKER else pytest.mark.django_db


@pytest.fixture
def decide(mailbox: Mailbox, celery_worker: Any, django_capture_on_commit_callbacks: Any) -> Any:
    """Submit the request's handling form in the admin as committed; answer the response and
    the mail sent (`expected` messages awaited from the worker)."""

    def run(
        client: Client, request: PrivacyRequest, expected: int = 1, **changes: object
    ) -> tuple[HttpResponse, list[Message]]:
        url = reverse("admin:privacy_privacyrequest_change", args=[request.pk])
        page = client.get(url)
        if USES_REAL_WORKER:
            response = client.post(url, submitted_form(page, **changes))
            if expected:
                wait_for(lambda: len(mailbox.messages) >= expected)
        else:
            with django_capture_on_commit_callbacks(execute=True):
                response = client.post(url, submitted_form(page, **changes))
        return response, mailbox.messages

    return run


def subject(message: Message) -> str:
    return str(make_header(decode_header(message["Subject"])))


@pytest.fixture
def camille() -> Contact:
    return ContactFactory(email="camille@example.fr", first_name="Camille", language="fr")


def test_an_extension_is_emailed_to_the_person_with_its_reason_and_the_new_deadline(
    as_dpo: Client, camille: Contact, decide: Any
) -> None:
    request = PrivacyRequestFactory(contact=camille, type="access")

    response, [message] = decide(
        as_dpo, request, extend_months="2", new_extension_reason="Archives papier à consulter"
    )

    assert response.status_code == 302
    request.refresh_from_db()
    assert message["To"] == "camille@example.fr"
    text = message_text(message)
    assert text.startswith("Bonjour Camille,")  # her language
    assert "Archives papier à consulter" in text
    due = timezone.localtime(request.due_at)
    assert str(due.year) in text and str(due.day) in text
    assert "art. 12(3)" in text.lower()  # "Art." in English, "art." in French
    assert "https://www.cnil.fr/fr/plaintes" in text  # the footer, as on every message
    # (the worker marks it sent when it commits, just after the mail left)
    assert wait_for(lambda: request.history.last().person_notified_at)
    page = as_dpo.get(reverse("admin:privacy_privacyrequest_change", args=[request.pk]))
    assert "Person told at" in page.content.decode()  # the DPO sees it in the history


def test_a_rejection_is_emailed_with_its_reason_and_the_remedies(
    as_dpo: Client, camille: Contact, decide: Any
) -> None:
    request = PrivacyRequestFactory(contact=camille, type="erasure")

    response, [message] = decide(
        as_dpo, request, next_status="rejected", note="Identité non confirmée"
    )

    assert response.status_code == 302
    text = message_text(message)
    assert "Identité non confirmée" in text
    assert "art. 12(4)" in text.lower() and "CNIL" in text
    assert subject(message)


def test_a_rejection_without_a_reason_is_refused_and_nothing_is_sent(
    as_dpo: Client, camille: Contact, decide: Any
) -> None:
    request = PrivacyRequestFactory(contact=camille)

    response, sent = decide(as_dpo, request, expected=0, next_status="rejected", note=" ")

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "note": ["Say why the request is rejected."]
    }
    assert sent == []


def test_a_request_about_nobody_known_is_rejected_without_email_and_the_history_says_so(
    as_dpo: Client, decide: Any
) -> None:
    # given a request an API client filed for an address no contact has
    request = privacy_request_file(contact=None, type="access", source_kind=SourceKind.API)

    response, sent = decide(as_dpo, request, expected=0, next_status="rejected", note="Unknown")

    assert response.status_code == 302
    assert sent == []
    event = request.history.last()
    assert event.note.startswith("Unknown")
    assert "not told by email: no address on file" in event.note


@pytest.mark.django_db  # the service itself, run here: no worker
def test_the_decision_email_is_sent_once_however_often_its_task_runs(
    camille: Contact, mailbox: Mailbox, django_capture_on_commit_callbacks: Any
) -> None:
    request = PrivacyRequestFactory(contact=camille)
    with django_capture_on_commit_callbacks() as queued:
        privacy_request_transition(request=request, status="rejected", by="dpo", note="Doublon")
    assert len(queued) == 1  # one email per decision, queued after commit
    event = PrivacyRequestEvent.objects.get(request=request, status="rejected")

    first = privacy_request_decision_send(event_id=event.pk, kind="rejected", reason="Doublon")
    again = privacy_request_decision_send(event_id=event.pk, kind="rejected", reason="Doublon")

    assert (first, again) == (True, False)
    assert len(mailbox.messages) == 1


@pytest.mark.django_db  # the service itself, run here: no worker
def test_a_person_erased_before_the_email_left_is_not_written_to(
    camille: Contact, mailbox: Mailbox, django_capture_on_commit_callbacks: Any
) -> None:
    request = PrivacyRequestFactory(contact=camille, type="access")
    with django_capture_on_commit_callbacks():
        privacy_request_transition(request=request, status="rejected", by="dpo", note="Doublon")
    contact_erase(contact=camille, reason="erasure", source_kind="admin", source_reference="t")
    event = PrivacyRequestEvent.objects.get(request=request, status="rejected")

    assert not privacy_request_decision_send(event_id=event.pk, kind="rejected", reason="x")
    assert mailbox.messages == []
