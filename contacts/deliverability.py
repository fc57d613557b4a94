"""Deliverability feedback: what the ESP, the SMS provider and the mail house tell us about a
message (SPEC §3 campaigns, "Feedback"), applied to the contacts it concerns.

One function, `deliverability_event_apply`, serves every entry point: the API
(`POST /api/v1/deliverability-events/`), django-anymail's tracking webhooks
(`contacts.webhooks`), the returned-mail file (`returned_mail_file_apply`) and SMS STOP.

- `hard_bounce`, or the third `soft_bounce` in a row (a `delivered` resets the count), makes
  the email undeliverable with its reason; the eligibility rule then excludes it
  (`undeliverable`).
- `complaint` (marked as spam) ends all email marketing: every live email grant withdrawn and
  every legitimate-interest purpose objected to on email, through the one consent write path,
  and the address put on the suppression list with the reason `complaint`.
- `returned_mail` makes the postal address undeliverable with its La Poste REFLEX reason until
  the person corrects the address (`contacts.services._postal_deliverability_reset`).
- `sms_stop` withdraws SMS marketing for every contact with that number.

An event naming a campaign (or, from a webhook, the campaign row its message carried) also
updates that row (`campaigns.feedback.recipient_feedback`): the campaign's statistics, and who
a later step "for those the previous step did not reach" targets.

An unknown, erased or malformed address is accepted and changes nothing: providers keep
sending events for addresses we erased, and nothing may be re-created from them. With an
`event_id`, the same provider event is applied once.
"""

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from consent.models import Channel, SourceKind
from consent.services import Evidence, consents_withdraw_all
from contacts.models import (
    Contact,
    ContactStatus,
    DeliverabilityEvent,
    DeliverabilityEventType,
    EmailDeliverability,
    PostalDeliverability,
    ReturnedMailReason,
    SuppressionReason,
    TimelineKind,
)
from contacts.normalization import normalize_phone
from contacts.selectors import contact_find
from contacts.services import suppressions_add_many, timeline_add

SOFT_BOUNCE_LIMIT = 3
# The reference of the ledger records a complaint or a STOP writes (with the campaign, if any).
FEEDBACK_REFERENCE = "deliverability"

# How the mail house's file may name a reason: our codes, and the French and English labels.
RETURNED_MAIL_SPELLINGS: dict[str, str] = {
    **{code: code for code in ReturnedMailReason.values},
    "unknown at this address": ReturnedMailReason.UNKNOWN_AT_ADDRESS,
    "n'habite pas à l'adresse indiquée": ReturnedMailReason.UNKNOWN_AT_ADDRESS,
    "npai": ReturnedMailReason.UNKNOWN_AT_ADDRESS,
    "refused": ReturnedMailReason.REFUSED,
    "refusé": ReturnedMailReason.REFUSED,
    "not claimed": ReturnedMailReason.NOT_CLAIMED,
    "non réclamé": ReturnedMailReason.NOT_CLAIMED,
    "faulty address": ReturnedMailReason.FAULTY_ADDRESS,
    "adresse défectueuse": ReturnedMailReason.FAULTY_ADDRESS,
    "adresse incorrecte": ReturnedMailReason.FAULTY_ADDRESS,
    "adresse erronée": ReturnedMailReason.FAULTY_ADDRESS,
    "adresse incomplète": ReturnedMailReason.FAULTY_ADDRESS,
}


def _spelling(value: str) -> str:
    """A reason as compared: lower case, single spaces, typographic apostrophes plain."""
    return " ".join((value or "").lower().replace("\u2019", "'").split())


def returned_mail_reason(value: str) -> str | None:
    """Our code for a returned-mail reason given as a code, a usual spelling, or the label the
    upload page shows, in French or English."""
    key = _spelling(value)
    found = RETURNED_MAIL_SPELLINGS.get(key)
    if found is not None:
        return found
    for language in ("fr", "en"):
        with translation.override(language):
            for code, label in ReturnedMailReason.choices:
                if _spelling(str(label)) == key:
                    return str(code)
    return None


def deliverability_event_apply(
    *,
    type: str,  # noqa: A002 - the API's field name
    email: str = "",
    phone: str = "",
    contact: Contact | None = None,
    reason: str = "",
    campaign: str = "",
    recipient: str = "",
    occurred_at: datetime | None = None,
    event_id: str = "",
    source_kind: str = SourceKind.API,
) -> list[Contact]:
    """Apply one feedback event; returns the contacts it changed (none when unknown).

    The contact is named by `contact`, `email` or (for `sms_stop`, or any type) `phone`. With
    `campaign` (its public id) or `recipient` (the campaign row id a message's metadata
    carried), the campaign row the event is about is updated too, in the same transaction
    (`campaigns.feedback.recipient_feedback`).
    Raises ValidationError (per field) for an unknown type or returned-mail reason, or a
    phone number that is not one.
    """
    if type not in DeliverabilityEventType.values:
        raise ValidationError({"type": [_("Unknown event type.")]})
    if type == DeliverabilityEventType.RETURNED_MAIL:
        code = returned_mail_reason(reason)
        if code is None:
            raise ValidationError(
                {
                    "reason": [
                        _("Give the returned-mail reason, one of: %(reasons)s.")
                        % {"reasons": ", ".join(ReturnedMailReason.values)}
                    ]
                }
            )
        reason = code
    number = ""
    if phone:
        try:
            number = normalize_phone(phone)
        except ValidationError as error:
            raise ValidationError({"phone": list(error.messages)}) from None
    event = _Event(
        type=type,
        reason=reason.strip()[:255],
        campaign=campaign.strip()[:100],
        recipient=recipient.strip()[:20],
        occurred_at=occurred_at or timezone.now(),
        event_id=event_id.strip()[:200],
        source_kind=source_kind,
    )
    with transaction.atomic():
        if event.event_id and not _first_time(event):
            return []
        changed = [target for target in _targets(contact, email, number) if _apply(event, target)]
        if event.event_id:
            DeliverabilityEvent.objects.filter(event_id=event.event_id).update(applied=len(changed))
    return changed


@dataclass(frozen=True)
class _Event:
    type: str
    reason: str
    campaign: str
    recipient: str
    occurred_at: datetime
    event_id: str
    source_kind: str

    def timeline_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type, "source": self.source_kind}
        for name in ("reason", "campaign", "event_id"):
            if getattr(self, name):
                data[name] = getattr(self, name)
        return data

    @property
    def reference(self) -> str:
        suffix = f":campaign:{self.campaign}" if self.campaign else ""
        return f"{FEEDBACK_REFERENCE}:{self.type}{suffix}"


def _first_time(event: _Event) -> bool:
    """Note the provider's event id; False when it was applied already."""
    try:
        with transaction.atomic():
            DeliverabilityEvent.objects.create(
                event_id=event.event_id, type=event.type, campaign=event.campaign
            )
    except IntegrityError:
        return False
    return True


def _targets(contact: Contact | None, email: str, number: str) -> list[Contact]:
    """The live contacts the event names (erased and merged ones are left alone)."""
    found: list[Contact] = []
    if contact is not None:
        found.append(contact)
    if email:
        by_email = contact_find(email=email, with_erased=False)
        if by_email is not None:
            found.append(by_email)
    if number:
        found += Contact.objects.filter(phone=number).exclude(
            status__in=[ContactStatus.ERASED, ContactStatus.MERGED]
        )
    unique = {target.pk: target for target in found}
    # locked in id order, as the consent write path does
    return list(
        Contact.objects.select_for_update()
        .filter(pk__in=sorted(unique))
        .exclude(status__in=[ContactStatus.ERASED, ContactStatus.MERGED])
        .order_by("pk")
    )


def _apply(event: _Event, contact: Contact) -> bool:
    handler = {
        DeliverabilityEventType.HARD_BOUNCE: _hard_bounce,
        DeliverabilityEventType.SOFT_BOUNCE: _soft_bounce,
        DeliverabilityEventType.COMPLAINT: _complaint,
        DeliverabilityEventType.DELIVERED: _delivered,
        DeliverabilityEventType.RETURNED_MAIL: _returned_mail,
        DeliverabilityEventType.SMS_STOP: _sms_stop,
    }[DeliverabilityEventType(event.type)]
    if not handler(event, contact):
        return False
    _attribute(event, contact)
    return True


def _attribute(event: _Event, contact: Contact) -> None:
    """The campaign row the event is about takes it too (delivered, bounced, complained,
    unsubscribed: the campaign's statistics); an unknown campaign or row changes nothing."""
    if not (event.campaign or event.recipient):
        return
    # campaigns sits above contacts (ARCHITECTURE.md): imported when used, no import cycle
    from campaigns.feedback import recipient_feedback

    recipient_feedback(
        type=event.type,
        contact=contact,
        campaign=event.campaign,
        recipient=event.recipient,
        at=event.occurred_at,
    )


def _note(event: _Event, contact: Contact, kind: TimelineKind, **extra: Any) -> None:
    timeline_add(
        contact=contact,
        kind=kind,
        summary=" ".join(part for part in (event.type, event.reason) if part),
        data={**event.timeline_data(), **extra},
        occurred_at=event.occurred_at,
    )


def _hard_bounce(event: _Event, contact: Contact) -> bool:
    contact.email_deliverability = EmailDeliverability.HARD_BOUNCE
    contact.email_undeliverable_reason = event.reason  # the status says the rest, translated
    contact.save(update_fields=["email_deliverability", "email_undeliverable_reason"])
    _note(event, contact, TimelineKind.EMAIL_BOUNCED)
    return True


def _soft_bounce(event: _Event, contact: Contact) -> bool:
    Contact.objects.filter(pk=contact.pk).update(email_soft_bounces=F("email_soft_bounces") + 1)
    contact.refresh_from_db(fields=["email_soft_bounces"])
    undeliverable = (
        contact.email_soft_bounces >= SOFT_BOUNCE_LIMIT
        and contact.email_deliverability == EmailDeliverability.DELIVERABLE
    )
    if undeliverable:
        contact.email_deliverability = EmailDeliverability.SOFT_BOUNCES
        contact.email_undeliverable_reason = event.reason
        contact.save(update_fields=["email_deliverability", "email_undeliverable_reason"])
    _note(
        event,
        contact,
        TimelineKind.EMAIL_BOUNCED,
        soft_bounces=contact.email_soft_bounces,
        undeliverable=undeliverable,
    )
    return True


def _delivered(event: _Event, contact: Contact) -> bool:
    if contact.email_soft_bounces:
        contact.email_soft_bounces = 0
        contact.save(update_fields=["email_soft_bounces"])
    _note(event, contact, TimelineKind.EMAIL_DELIVERED)
    return True


def _complaint(event: _Event, contact: Contact) -> bool:
    """Marked as spam: unsubscribed from all email marketing (GDPR Art. 7(3), 21(2))."""
    records = consents_withdraw_all(
        contact=contact,
        source_kind=event.source_kind,
        source_reference=event.reference,
        evidence=Evidence(wording=_("Complaint (marked as spam) reported by the email provider")),
        channels=[Channel.EMAIL],
    )
    # a first listing takes the reason `complaint`; an address already listed keeps its own
    suppressions_add_many(
        reason=SuppressionReason.COMPLAINT, addresses=[(contact.email, "")], replace=False
    )
    _note(
        event,
        contact,
        TimelineKind.COMPLAINT,
        records=[str(record.uuid) for record in records],
    )
    return True


def _returned_mail(event: _Event, contact: Contact) -> bool:
    contact.postal_deliverability = PostalDeliverability.RETURNED
    contact.postal_undeliverable_reason = event.reason
    contact.save(update_fields=["postal_deliverability", "postal_undeliverable_reason"])
    _note(event, contact, TimelineKind.MAIL_RETURNED)
    return True


def _sms_stop(event: _Event, contact: Contact) -> bool:
    """STOP: SMS marketing ends for this number (CPCE L34-5; GDPR Art. 7(3), 21(2))."""
    records = consents_withdraw_all(
        contact=contact,
        source_kind=event.source_kind,
        source_reference=event.reference,
        evidence=Evidence(wording=_("STOP received by SMS")),
        channels=[Channel.SMS],
    )
    if not records:  # a STOP repeated: nothing left to end, nothing happened
        return False
    _note(
        event,
        contact,
        TimelineKind.SMS_STOPPED,
        records=[str(record.uuid) for record in records],
    )
    return True


def deliverability_events_purge(*, now: datetime | None = None) -> int:
    """Forget the provider event ids older than `DELIVERABILITY_EVENT_TTL` (no retry comes
    that late); the number deleted."""
    cutoff = (now or timezone.now()) - settings.DELIVERABILITY_EVENT_TTL
    deleted, _detail = DeliverabilityEvent.objects.filter(created_at__lt=cutoff).delete()
    return deleted


# --- the mail house's returned-mail file ------------------------------------------------------

RETURNED_MAIL_ID_COLUMNS = ("public_id", "id", "contact", "email")
RETURNED_MAIL_REASON_COLUMNS = ("reason", "reason_code", "motif", "code")


@dataclass
class ReturnedMailResult:
    applied: int = 0
    unknown: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)


def returned_mail_file_apply(
    *, content: bytes, source_kind: str = SourceKind.ADMIN, campaign: str = ""
) -> ReturnedMailResult:
    """Apply a returned-mail file (CSV, UTF-8 or Windows-1252, `,` or `;`): a header line, a
    column `public_id` (or `email`) naming the contact and a column `reason` with the REFLEX
    reason (code or French/English label, see RETURNED_MAIL_SPELLINGS).

    Every malformed line is rejected with its line number (header: line 1) and reason; the
    valid lines are applied together in one transaction, or none of them. A line naming no
    contact we hold (erased, unknown) counts as `unknown` and changes nothing.
    """
    rows = _csv_rows(content)
    result = ReturnedMailResult()
    if not rows:
        result.rejected.append((1, _("The file is empty.")))
        return result
    header = [name.strip().lower() for name in rows[0]]
    id_column = next((header.index(c) for c in RETURNED_MAIL_ID_COLUMNS if c in header), None)
    reason_column = next(
        (header.index(c) for c in RETURNED_MAIL_REASON_COLUMNS if c in header), None
    )
    if id_column is None or reason_column is None:
        result.rejected.append(
            (1, _("The header needs a `public_id` (or `email`) column and a `reason` column."))
        )
        return result
    by_email = header[id_column] == "email"
    valid: list[tuple[int, str, str]] = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        cells = row + [""] * (len(header) - len(row))
        key, raw_reason = cells[id_column].strip(), cells[reason_column].strip()
        code = returned_mail_reason(raw_reason)
        if not key:
            result.rejected.append((line, _("No contact named.")))
        elif code is None:
            result.rejected.append((line, _("Unknown reason: %(reason)s") % {"reason": raw_reason}))
        else:
            valid.append((line, key, code))
    with transaction.atomic():
        for _line, key, code in valid:
            contact = None if by_email else contact_find(public_id=key, with_erased=False)
            changed = deliverability_event_apply(
                type=DeliverabilityEventType.RETURNED_MAIL,
                email=key if by_email else "",
                contact=contact,
                reason=code,
                campaign=campaign,
                source_kind=source_kind,
            )
            if changed:
                result.applied += 1
            else:
                result.unknown += 1
    return result


def _csv_rows(content: bytes) -> list[list[str]]:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = content.decode("cp1252", errors="replace")
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    return list(csv.reader(io.StringIO(text), delimiter=delimiter))
