"""Sales alerts: an email to the contact's owner in the CRM, or to a configured address, when
a contact reaches a lifecycle stage.

The alerts read the outbox, as a connection does, with a cursor of their own: every write
path (the API, imports, the admin, CRM pulls) leaves a `contact.created` or a
`contact.updated` event naming the fields it changed, so a stage reached anywhere is seen,
and only when it changes (`changed` names `lifecycle_stage`), never on an update of a
contact that stays in it. `sales_alerts_scan` reads the events after the cursor and, in the
same transaction, moves the cursor and records one `SalesAlertDelivery` per (alert, event):
a unique row, so a reach is alerted once. After the commit a task sends each delivery,
claimed first with a conditional UPDATE; a worker killed between the email and its marking
sends it again after the lease (at least once: an email cannot be taken back in a
transaction).

Who gets it is decided when it is sent, not when it is recorded: an alert "to the contact's
owner" goes to the owner that the CRM pulls stored on the contact's links (the most recently
updated link that names an address: the CRM that last assigned the person), and to
the configured address when no CRM names an owner (a new lead nobody was assigned yet, a
Salesforce lead owned by a queue): that address is the fallback, not a copy, so that an
owner is not doubled by a shared inbox for every lead; a team that wants a copy adds a second
alert for the stage to that address. The email is in the alert's language either way.
"""

from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from contacts.models import Contact, ContactStatus, LifecycleStage
from core.emails import email_send
from core.links import site_url
from crmsync.models import (
    ContactLink,
    OutboxEvent,
    OutboxTopic,
    SalesAlert,
    SalesAlertCursor,
    SalesAlertDelivery,
)
from crmsync.services import outbox_head, outbox_sequence

SCAN_BATCH = 1000
REACHING_TOPICS = (OutboxTopic.CONTACT_CREATED, OutboxTopic.CONTACT_UPDATED)


def sales_alerts_scan() -> list[int]:
    """Record the alerts due for the stages reached since the last scan, and queue their
    emails after the commit. Safe to run twice at once (the cursor row is locked). Answers
    the deliveries recorded."""
    recorded: list[int] = []
    while True:
        ids, more = _scan_batch()
        recorded += ids
        if not more:
            return recorded


def _scan_batch() -> tuple[list[int], bool]:
    """One batch of events after the cursor: the deliveries recorded, and whether a full
    batch was read (more may follow)."""
    outbox_sequence()
    with transaction.atomic():
        cursor = _cursor()
        events = list(
            OutboxEvent.objects.filter(sequence__gt=cursor.sequence)
            .order_by("sequence")
            .only("pk", "sequence", "topic", "contact_public_id", "payload")[:SCAN_BATCH]
        )
        if not events:
            return [], False
        alerts: dict[str, list[int]] = {}
        for alert_id, stage in SalesAlert.objects.filter(enabled=True).values_list("pk", "stage"):
            alerts.setdefault(stage, []).append(alert_id)
        deliveries = [
            SalesAlertDelivery(
                alert_id=alert_id, event_id=event.pk, contact_public_id=event.contact_public_id
            )
            for event in events
            if _reaches(event)
            for alert_id in alerts.get(event.payload.get("lifecycle_stage", ""), [])
        ]
        SalesAlertDelivery.objects.bulk_create(deliveries, ignore_conflicts=True)
        cursor.sequence = max(event.sequence or 0 for event in events)
        cursor.save(update_fields=["sequence"])
        ids = list(
            SalesAlertDelivery.objects.filter(
                event_id__in=[event.pk for event in events], sent_at__isnull=True
            ).values_list("pk", flat=True)
        )
        if ids:
            transaction.on_commit(lambda: _queue_send(ids), robust=True)
    return ids, len(events) == SCAN_BATCH


def _queue_send(ids: list[int]) -> None:
    from crmsync.tasks import send_sales_alerts  # the tasks import this module

    send_sales_alerts.delay(ids)


def _cursor() -> SalesAlertCursor:
    """The cursor row, locked; made at the end of the outbox (no alert for the past)."""
    cursor = SalesAlertCursor.objects.select_for_update().filter(pk=1).first()
    if cursor is None:
        SalesAlertCursor.objects.get_or_create(pk=1, defaults={"sequence": outbox_head()})
        cursor = SalesAlertCursor.objects.select_for_update().get(pk=1)
    return cursor


def _reaches(event: OutboxEvent) -> bool:
    """Whether the event records a contact reaching its stage (created in it, or moved to it)."""
    if event.topic not in REACHING_TOPICS or not isinstance(event.payload, dict):
        return False
    if event.topic == OutboxTopic.CONTACT_CREATED:
        return True
    return "lifecycle_stage" in (event.payload.get("changed") or [])


def sales_alerts_send(*, delivery_ids: Iterable[int]) -> int:
    """Email the alerts of these deliveries not sent yet, each claimed first. Answers how
    many were sent."""
    sent = 0
    for pk in list(delivery_ids):
        now = timezone.now()
        stale = now - timedelta(seconds=settings.CRM_PUSH_LEASE)
        claimed = (
            SalesAlertDelivery.objects.filter(pk=pk, sent_at__isnull=True)
            .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=stale))
            .update(claimed_at=now)
        )
        if not claimed:
            continue
        delivery = SalesAlertDelivery.objects.select_related("alert").get(pk=pk)
        contact = Contact.objects.filter(public_id=delivery.contact_public_id).first()
        if contact is not None and contact.status != ContactStatus.ERASED:
            _email(delivery.alert, contact)
            sent += 1
        # an erased person is no one to alert about: marked done without an email
        SalesAlertDelivery.objects.filter(pk=pk).update(sent_at=timezone.now())
    return sent


def _email(alert: SalesAlert, contact: Contact) -> None:
    email_send(
        template="crmsync/email/sales_alert",
        context={
            "contact": contact,
            "stage": LifecycleStage(alert.stage).label,
            "link": site_url("admin:contacts_contact_change", contact.pk),
        },
        to=sales_alert_recipients(alert=alert, contact=contact),
        language=alert.language,
        for_staff=True,
    )


def sales_alert_recipients(*, alert: SalesAlert, contact: Contact) -> list[str]:
    """Who the alert about this contact goes to now: the contact's owner in the CRM when the
    alert says so and an enabled connection's link names one, else the configured address."""
    if alert.to_owner:
        owner = (
            ContactLink.objects.filter(contact=contact, connection__enabled=True)
            .exclude(owner_email="")
            .order_by("-updated_at", "-pk")
            .values_list("owner_email", flat=True)
            .first()
        )
        if owner:
            return [owner]
    return [alert.recipient]
