"""Erasure propagation: a person erased here is erased by every connected CRM too (GDPR Art.
17(2), 19). The privacy app records which connection must be told and its answer
(`privacy.acknowledgements`); this module makes the one call a connection's adapter needs."""

import uuid

from django.db import transaction
from django.utils.translation import gettext as _

from crmsync.adapters import AdapterUnavailable, adapter_for
from crmsync.adapters.base import Change, ErasureTarget
from crmsync.connections import connection_config
from crmsync.models import Connection, OutboxEvent
from crmsync.services import outbox_sequence


def erasure_propagate(*, connection: Connection, target: ErasureTarget) -> None:
    """Tell the connection's CRM to erase the person (delete, GDPR delete or anonymise, or the
    webhook's `contact.erased`). Returns when the CRM acknowledged; raises when it did not."""
    adapter = adapter_for(connection_config(connection))
    erase = getattr(adapter, "erase", None)
    if erase is None:
        raise AdapterUnavailable(
            _("The %(kind)s adapter cannot erase a person.") % {"kind": connection.kind}
        )
    erase(target)


def erased_event_change(event_id: uuid.UUID) -> Change | None:
    """The `contact.erased` outbox event as the adapters receive it (numbered first when
    outside a transaction, as the workers are, so that the webhook sends the cursor the feed
    serves), or None when it is gone."""
    if not transaction.get_connection().in_atomic_block:
        outbox_sequence()
    event = OutboxEvent.objects.filter(pk=event_id).first()
    if event is None:
        return None
    return Change(
        id=event.pk,
        sequence=event.sequence or 0,
        topic=event.topic,
        contact=event.contact_public_id,
        occurred_at=event.created_at,
        data=event.payload,
    )
