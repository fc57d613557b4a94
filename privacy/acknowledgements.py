"""Erasure reaches every connected CRM, and each one's acknowledgement is recorded on the
privacy request (GDPR Art. 17(2), 19).

In the erasure's transaction, before the contact is anonymised, one `ErasureAcknowledgement`
per enabled connection captures what that CRM needs to find the person: the remote id we
know (HubSpot, Salesforce), the `contact.erased` event (the webhook), and, only for HubSpot
when no remote id is known, the email, encrypted with `FIELD_ENCRYPTION_KEY`. Salesforce
needs no email: its records carry our contact's public id as an external id. The email token
is emptied as soon as HubSpot acknowledged or the DPO closed the request: the address is kept
no longer than the erasure itself needs it (Art. 5(1)(c), (e)).

After the commit, a task sends them (`erasure_acknowledgements_send`); a beat job retries
those due. Each send is claimed first with a conditional UPDATE (its `next_attempt_at` moved
past a lease), so two workers never send the same one; a worker killed mid-call leaves it
due again when the lease ends, and the second call is harmless: a CRM that no longer holds
the person (404) counts as having erased them. A failure is recorded, with its error, and
tried again after a doubling backoff (the CRM's `Retry-After` when it gave one).

An erasure request waits in "awaiting_crms" until every acknowledgement of its people
arrived, then completes; the DPO may close it earlier with a note (`erasure_request_close`).
"""

import logging
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from cryptography.fernet import InvalidToken
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from contacts.models import Contact
from core.encryption import json_decrypted, json_encrypted
from crmsync.adapters.base import ErasureTarget
from crmsync.erasure import erased_event_change, erasure_propagate
from crmsync.models import Connection, ConnectionKind, ContactLink
from crmsync.push import ERROR_LENGTH, retry_delay
from privacy.models import (
    AcknowledgementStatus,
    ErasureAcknowledgement,
    PrivacyRequest,
    PrivacyRequestStatus,
)
from privacy.status import request_status_set

logger = logging.getLogger(__name__)

WAITING = (AcknowledgementStatus.PENDING, AcknowledgementStatus.FAILED)
DUE_BATCH = 200


def erasure_acknowledgements_open(
    *,
    contacts: Sequence[Contact],
    emails: dict[int, str],
    events: dict[int, Any],
    requests: dict[int, Any],
) -> int:
    """In the erasure's transaction: one acknowledgement per (erased contact, enabled
    connection), queued to be sent after the commit. `emails`: each contact's address before
    anonymisation; `events`: its `contact.erased` event id; `requests`: the privacy request
    that asked (if any). Three statements whatever the number; one when no CRM is connected.
    Answers how many were opened."""
    connections = list(Connection.objects.filter(enabled=True).only("pk", "kind"))
    if not connections or not contacts:
        return 0
    ids = [contact.pk for contact in contacts]
    links = {
        (connection_id, contact_id): remote_id
        for connection_id, contact_id, remote_id in ContactLink.objects.filter(
            contact_id__in=ids, connection_id__in=[c.pk for c in connections]
        ).values_list("connection_id", "contact_id", "remote_id")
    }
    rows = []
    for contact in contacts:
        for connection in connections:
            remote_id = links.get((connection.pk, contact.pk), "")
            email = emails.get(contact.pk, "")
            needs_email = connection.kind == ConnectionKind.HUBSPOT and not remote_id and email
            rows.append(
                ErasureAcknowledgement(
                    contact=contact,
                    request_id=requests.get(contact.pk),
                    connection=connection,
                    remote_id=remote_id,
                    email_token=json_encrypted(email) if needs_email else "",
                    event_id=events.get(contact.pk),
                )
            )
    # a contact is erased once (its row locked, and skipped once erased): no conflict expected
    ErasureAcknowledgement.objects.bulk_create(rows)
    transaction.on_commit(lambda: _queue_send(ids), robust=True)
    return len(rows)


def _queue_send(contact_ids: list[int]) -> None:
    from privacy.tasks import send_erasure_acknowledgements  # the tasks import this module

    send_erasure_acknowledgements.delay(contact_ids)


def erasure_acknowledgements_send(*, contact_ids: Iterable[int] | None = None) -> int:
    """Send the acknowledgements due (of these erased contacts, or all), each claimed first;
    complete the requests whose every acknowledgement arrived. Answers how many arrived."""
    due = ErasureAcknowledgement.objects.filter(status__in=WAITING).filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=timezone.now())
    )
    if contact_ids is not None:
        due = due.filter(contact_id__in=list(contact_ids))
    acknowledged = 0
    requests = set()
    for pk in list(due.order_by("created_at", "pk").values_list("pk", flat=True)[:DUE_BATCH]):
        acknowledgement = _claim(pk)
        if acknowledgement is None:
            continue  # another worker sends it
        if _send(acknowledgement):
            acknowledged += 1
            if acknowledgement.request_id is not None:
                requests.add(acknowledgement.request_id)
    if contact_ids is None:
        # the beat pass: also those left with nothing to wait for otherwise (a connection
        # deleted with its acknowledgements, a task lost after the last one arrived)
        requests |= set(
            PrivacyRequest.objects.filter(status=PrivacyRequestStatus.AWAITING_CRMS)
            .exclude(acknowledgements__status__in=WAITING)
            .values_list("pk", flat=True)[:DUE_BATCH]
        )
    for request_id in requests:
        erasure_request_complete_if_acknowledged(request_id=request_id)
    return acknowledged


def _claim(pk: int) -> ErasureAcknowledgement | None:
    now = timezone.now()
    claimed = (
        ErasureAcknowledgement.objects.filter(pk=pk, status__in=WAITING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .update(
            next_attempt_at=now + timedelta(seconds=settings.CRM_PUSH_LEASE),
            attempts=F("attempts") + 1,
        )
    )
    if not claimed:
        return None
    return ErasureAcknowledgement.objects.select_related("connection", "contact").get(pk=pk)


def _send(acknowledgement: ErasureAcknowledgement) -> bool:
    """Make the call; record its outcome. Answers whether the CRM acknowledged."""
    try:
        target = ErasureTarget(
            contact=acknowledgement.contact.public_id,
            remote_id=acknowledgement.remote_id,
            email=json_decrypted(acknowledgement.email_token)
            if acknowledgement.email_token
            else "",
            event=erased_event_change(acknowledgement.event_id)
            if acknowledgement.event_id
            else None,
        )
        erasure_propagate(connection=acknowledgement.connection, target=target)
    except InvalidToken:
        _failed(acknowledgement, _("The stored email cannot be decrypted with the keys."), None)
        return False
    except Exception as error:  # TransientError, a refusal, a bug: recorded and retried
        if not hasattr(error, "retry_after"):
            logger.warning(
                "erasure acknowledgement %s: %s", acknowledgement.pk, type(error).__name__
            )
        message = f"{type(error).__name__}: {error}"
        _failed(acknowledgement, message, getattr(error, "retry_after", None))
        return False
    ErasureAcknowledgement.objects.filter(pk=acknowledgement.pk, status__in=WAITING).update(
        status=AcknowledgementStatus.ACKNOWLEDGED,
        at=timezone.now(),
        email_token="",
        error="",
        next_attempt_at=None,
    )
    return True


def _failed(
    acknowledgement: ErasureAcknowledgement, message: str, retry_after: float | None
) -> None:
    delay = retry_delay(acknowledgement.attempts, retry_after)
    ErasureAcknowledgement.objects.filter(pk=acknowledgement.pk, status__in=WAITING).update(
        status=AcknowledgementStatus.FAILED,
        error=message[:ERROR_LENGTH],
        next_attempt_at=timezone.now() + timedelta(seconds=delay),
    )


def erasure_request_waits(*, request_ids: Iterable[Any]) -> set[Any]:
    """Of these requests, those with an acknowledgement still to come (one statement)."""
    return set(
        ErasureAcknowledgement.objects.filter(
            request_id__in=list(request_ids), status__in=WAITING
        ).values_list("request_id", flat=True)
    )


def erasure_request_complete_if_acknowledged(*, request_id: Any) -> bool:
    """Complete an erasure request waiting for the CRMs once every one acknowledged (Art. 19).
    Answers whether it completed now."""
    with transaction.atomic():
        request = (
            PrivacyRequest.objects.select_for_update()
            .filter(pk=request_id, status=PrivacyRequestStatus.AWAITING_CRMS)
            .first()
        )
        if request is None or erasure_request_waits(request_ids=[request.pk]):
            return False
        request_status_set(
            request,
            PrivacyRequestStatus.COMPLETED,
            by="worker",
            note=_("Every connected CRM acknowledged the erasure."),
        )
    return True


def erasure_acknowledgements_close(*, request: PrivacyRequest) -> int:
    """The DPO closes the request: the acknowledgements still awaited are closed (no more
    retries) and their email tokens emptied, in the caller's transaction."""
    return ErasureAcknowledgement.objects.filter(request=request, status__in=WAITING).update(
        status=AcknowledgementStatus.CLOSED,
        at=timezone.now(),
        email_token="",
        next_attempt_at=None,
    )
