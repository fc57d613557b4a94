"""Feedback on the campaign rows (SPEC §3 campaigns, "Feedback" and "Stats"): what the ESP, the
SMS provider, the mail house or the person's own unsubscribe says about one message, written on
the recipient row of that message, so that the statistics count it (attributed to the
campaign) and a later step "for those the previous step did not reach" targets it
(`campaigns.sending.NOT_DELIVERED`).

Both functions run inside their caller's transaction and change nothing when no row of ours
matches: the contact is updated all the same by the caller.
- `recipient_feedback`, from `contacts.deliverability.deliverability_event_apply` (the API, the
  anymail webhooks, the returned-mail file, SMS STOP);
- `recipient_unsubscribed`, from the preference pages' services, when the person unsubscribes
  or withdraws through the link a campaign message carried.
"""

import uuid
from collections.abc import Collection
from datetime import datetime

from django.db.models import Q, Subquery
from django.utils import timezone

from campaigns.models import Recipient, RecipientStatus, StepChannel
from contacts.models import Contact, DeliverabilityEventType, EmailDeliverability
from preferences.models import PreferenceToken

# The channel of the message each feedback type is about.
FEEDBACK_CHANNELS = {
    DeliverabilityEventType.HARD_BOUNCE: StepChannel.EMAIL,
    DeliverabilityEventType.SOFT_BOUNCE: StepChannel.EMAIL,
    DeliverabilityEventType.COMPLAINT: StepChannel.EMAIL,
    DeliverabilityEventType.DELIVERED: StepChannel.EMAIL,
    DeliverabilityEventType.RETURNED_MAIL: StepChannel.POSTAL,
    DeliverabilityEventType.SMS_STOP: StepChannel.SMS,
}
# A row id as the message's metadata carries it (a string of digits; a bigint at most).
ROW_ID_DIGITS = 18


def recipient_feedback(
    *,
    type: str,  # noqa: A002 - the feedback type's name everywhere else
    contact: Contact,
    campaign: str = "",
    recipient: str = "",
    at: datetime | None = None,
) -> Recipient | None:
    """Write a feedback event on the campaign row it is about; answers the row, or None.

    The row is the one named by `recipient` (the row id the message's metadata carried, when
    it belongs to this contact, to `campaign` when given, and to the event's channel), else
    the latest sent row of `campaign` (its public id) for this contact on the event's channel.

    delivered: `delivered_at` (a bounce that was only a deferral is over, unless the address
    hard-bounced); a hard bounce or returned mail: bounced; a soft bounce: bounced unless
    delivered already; a complaint: complained and unsubscribed (it ends all email marketing,
    attributed to the campaign, GDPR Art. 21(2)); SMS STOP: unsubscribed.
    """
    channel = FEEDBACK_CHANNELS.get(DeliverabilityEventType(type))
    row = _feedback_row(contact=contact, channel=channel, campaign=campaign, recipient=recipient)
    if row is None:
        return None
    changes = _feedback_changes(type, row, contact, at or timezone.now())
    if changes:
        Recipient.objects.filter(pk=row.pk).update(**changes)
        for name, value in changes.items():
            setattr(row, name, value)
    return row


def _feedback_row(
    *, contact: Contact, channel: str | None, campaign: str, recipient: str
) -> Recipient | None:
    if channel is None:
        return None
    rows = Recipient.objects.filter(contact=contact, step__channel=channel, sent_at__isnull=False)
    if campaign:
        public_id = _uuid(campaign)
        if public_id is None:
            return None  # not one of our campaigns (an ESP's own campaign name, say)
        rows = rows.filter(campaign__public_id=public_id)
    row_id = recipient.strip()
    if row_id.isdigit() and len(row_id) <= ROW_ID_DIGITS:
        named = rows.filter(pk=int(row_id)).first()
        if named is not None:
            return named
    if not campaign:
        return None
    return rows.order_by("-sent_at", "-pk").first()


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        return None


def _feedback_changes(
    type: str,  # noqa: A002
    row: Recipient,
    contact: Contact,
    at: datetime,
) -> dict[str, object]:
    changes: dict[str, object] = {}
    complained = row.status == RecipientStatus.COMPLAINED
    if type == DeliverabilityEventType.DELIVERED:
        if row.delivered_at is None:
            changes["delivered_at"] = at
        deferred = contact.email_deliverability != EmailDeliverability.HARD_BOUNCE
        if row.status == RecipientStatus.BOUNCED and deferred:
            changes["status"] = RecipientStatus.SENT
    elif type in (DeliverabilityEventType.HARD_BOUNCE, DeliverabilityEventType.RETURNED_MAIL):
        if not complained:
            changes["status"] = RecipientStatus.BOUNCED
    elif type == DeliverabilityEventType.SOFT_BOUNCE:
        if not complained and row.delivered_at is None:
            changes["status"] = RecipientStatus.BOUNCED
    elif type == DeliverabilityEventType.COMPLAINT:
        changes["status"] = RecipientStatus.COMPLAINED
        if row.unsubscribed_at is None:
            changes["unsubscribed_at"] = at
    elif type == DeliverabilityEventType.SMS_STOP and row.unsubscribed_at is None:
        changes["unsubscribed_at"] = at
    return {name: value for name, value in changes.items() if getattr(row, name) != value}


def recipient_unsubscribed(
    *,
    contact: Contact,
    link: str,
    purposes: Collection[int] | None = None,
    at: datetime | None = None,
) -> int:
    """Attribute an unsubscribe made through a preference link (`link`: its token's digest,
    `core.tokens.token_hash`) to the campaign message that carried it: that row's
    `unsubscribed_at`, the first time only, in one statement. With `purposes` (the ids of the
    purposes the person withdrew in the preference center), only when the row's campaign
    serves one of them. Answers the number of rows changed (0 or 1)."""
    if not link or (purposes is not None and not purposes):
        return 0
    # the token's id by its digest in a scalar subquery: no join, so the UPDATE needs no
    # `id IN (SELECT ...)` around it (a third of the time to build the statement)
    token = PreferenceToken.objects.filter(digest=link).order_by().values("id")[:1]
    rows = Recipient.objects.filter(
        contact=contact, preference_token_id=Subquery(token), unsubscribed_at__isnull=True
    )
    if purposes is not None:
        rows = rows.filter(Q(campaign__purpose_id__in=list(purposes)))
    return rows.update(unsubscribed_at=at or timezone.now())
