"""Writes on contacts: upsert by normalised email, timeline, suppression list."""

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from dateutil.relativedelta import relativedelta
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from contacts.models import (
    EMAIL_TRUST_PERIOD,
    SUPPRESSION_DIGEST_FIELDS,
    Contact,
    ContactStatus,
    EmailDeliverability,
    Frequency,
    Interest,
    Language,
    LifecycleStage,
    Note,
    NoteStatus,
    PostalDeliverability,
    Relationship,
    Suppression,
    SuppressionKind,
    SuppressionReason,
    TimelineEvent,
    TimelineKind,
)
from contacts.normalization import (
    email_keys,
    normalize_email,
    normalize_phone,
    suppression_digest,
    suppression_digests_normalized,
)
from contacts.screening import special_categories
from contacts.selectors import (
    suppression_digests,
    suppression_reason,
    suppression_reasons_many,
    suppressions_listed,
)
from core.batches import each_pk
from core.bulk import bulk_insert, bulk_insert_rows, bulk_update_rows, insert_select_sql
from crmsync.models import OutboxTopic
from crmsync.services import outbox_emit, outbox_emit_many, outbox_emit_select

# Fields a caller may set through contact_upsert / contact_update.
EDITABLE_FIELDS = (
    "first_name",
    "last_name",
    "phone",
    "company",
    "job_title",
    "address_line1",
    "address_line2",
    "postal_code",
    "city",
    "country",
    "language",
    "lifecycle_stage",
    "source",
    "frequency",
    "b2b",
    "relationship",
    "customer_since",
    "customer_until",
    "birth_year",
)
# each field's allowed values, read once (`.values` builds a new list on every call)
CHOICE_FIELDS = {
    name: frozenset(choices.values)
    for name, choices in (
        ("language", Language),
        ("lifecycle_stage", LifecycleStage),
        ("frequency", Frequency),
        ("relationship", Relationship),
    )
}
BOOLEAN_FIELDS = frozenset({"b2b"})
DATE_FIELDS = frozenset({"customer_since", "customer_until"})
# How a yes or a no is written in a list or a form (French or English); blank is no.
TRUE_WORDS = frozenset({"true", "1", "yes", "y", "oui", "o", "vrai", "x"})
FALSE_WORDS = frozenset({"false", "0", "no", "n", "non", "faux", ""})
DATE_INPUT_FORMATS = ("%Y-%m-%d", "%d/%m/%Y")
RELATIONSHIP_FIELDS = ("relationship", "customer_since", "customer_until")
# A change to any of these is the person correcting a returned postal address.
POSTAL_ADDRESS_FIELDS = frozenset(
    {"address_line1", "address_line2", "postal_code", "city", "country"}
)
PAUSE_MONTHS = (1, 3, 6)


def timeline_add(
    *,
    contact: Contact,
    kind: TimelineKind,
    summary: str,
    data: Mapping[str, Any] | None = None,
    occurred_at: datetime | None = None,
) -> TimelineEvent:
    """Add an interesting moment to a contact's timeline (now, unless `occurred_at`)."""
    return TimelineEvent.objects.create(
        contact=contact,
        kind=kind,
        summary=summary[:500],
        data=dict(data or {}),
        occurred_at=occurred_at or timezone.now(),
    )


def timeline_add_many(*, events: Sequence[Mapping[str, Any]]) -> None:
    """Add many moments at once, each as {contact_id, kind, summary, data, occurred_at}: one
    statement."""
    bulk_insert_rows(
        TimelineEvent, [{**event, "summary": event["summary"][:500]} for event in events]
    )


def _clean_fields(fields: Mapping[str, Any], *, contact: Contact | None = None) -> dict[str, Any]:
    """Validate and normalise contact fields; every error names its field.

    Given the contact being changed, a new phone number is also checked against the
    suppression list (the API, the preference center and the admin all change it here).
    """
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValidationError({name: [_("Unknown field.")] for name in sorted(unknown)})
    cleaned: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name, value in fields.items():
        if name in BOOLEAN_FIELDS or name in DATE_FIELDS:
            try:
                cleaned[name] = _boolean(value) if name in BOOLEAN_FIELDS else _date(value)
            except ValidationError as error:
                errors[name] = list(error.messages)
            continue
        value = "" if value is None else str(value).strip()
        if name == "birth_year":
            cleaned[name], problem = _birth_year(value)
            if problem:
                errors[name] = [problem]
            continue
        choices = CHOICE_FIELDS.get(name)
        if choices is not None and value and value not in choices:
            errors[name] = [_("Not a valid choice.")]
        elif name == "country" and value and not _is_country_code(value):
            errors[name] = [_("Use a two-letter ISO 3166 country code.")]
        cleaned[name] = value.upper() if name == "country" else value
    if cleaned.get("phone"):
        try:
            cleaned["phone"] = normalize_phone(cleaned["phone"], country=cleaned.get("country", ""))
        except ValidationError as error:
            errors["phone"] = list(error.messages)
        else:
            if contact is not None and cleaned["phone"] != contact.phone:
                errors.update(_suppression_errors(phone=cleaned["phone"]))
    for name in CHOICE_FIELDS:
        if name in cleaned and not cleaned[name]:
            del cleaned[name]  # choice fields keep their default rather than become blank
    if errors:
        raise ValidationError(errors)
    return cleaned


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = "" if value is None else str(value).strip().lower()
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise ValidationError(_("Answer yes or no (true or false)."))


def _date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date) or value is None:
        return value
    text = str(value).strip()
    if not text:
        return None
    for date_format in DATE_INPUT_FORMATS:
        try:
            return datetime.strptime(text, date_format).date()  # noqa: DTZ007 - a day
        except ValueError:
            continue
    raise ValidationError(_("Give a date as YYYY-MM-DD (or DD/MM/YYYY)."))


def relationship_errors(
    *, fields: Mapping[str, Any], contact: Contact | None = None
) -> dict[str, list[str]]:
    """What is wrong with the customer relationship the contact would have once `fields`
    (cleaned) are applied: dates of a customer on a prospect, or a contract ending before
    it began. Each error names its field."""
    values = {
        name: fields[name]
        if name in fields
        else (getattr(contact, name) if contact is not None else None)
        for name in RELATIONSHIP_FIELDS
    }
    relationship = values["relationship"] or Relationship.PROSPECT
    since, until = values["customer_since"], values["customer_until"]
    errors: dict[str, list[str]] = {}
    if relationship != Relationship.CUSTOMER:
        for name in ("customer_since", "customer_until"):
            if values[name] is not None:
                errors[name] = [
                    _(
                        "Only a customer has customer dates: set relationship to customer, "
                        "or leave this empty."
                    )
                ]
    elif since is not None and until is not None and until < since:
        errors["customer_until"] = [
            _("The end of the customer relationship cannot be before its start.")
        ]
    return errors


def _check_relationship(fields: Mapping[str, Any], contact: Contact | None = None) -> None:
    errors = relationship_errors(fields=fields, contact=contact)
    if errors:
        raise ValidationError(errors)


def contact_fields_clean(*, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The contact fields validated and normalised as `contact_upsert` stores them (for the
    batched writers, imports, that cannot go through it one row at a time); every error names
    its field."""
    return _clean_fields(fields)


def _birth_year(value: str) -> tuple[int | None, str]:
    """A birth year as stored (blank: unknown), and what is wrong with it."""
    if not value:
        return None, ""
    this_year = timezone.now().year
    if not value.isdigit() or not 1900 <= int(value) <= this_year:
        return None, _("Enter a year between 1900 and %d.") % this_year
    return int(value), ""


def _is_country_code(value: str) -> bool:
    # ASCII only: "ßa".upper() is three letters, too long for the column
    return len(value) == 2 and value.isascii() and value.isalpha()


def _resolve_interests(slugs: Iterable[str]) -> list[Interest]:
    slugs = list(dict.fromkeys(slugs))
    interests = list(Interest.objects.filter(slug__in=slugs))
    missing = sorted(set(slugs) - {interest.slug for interest in interests})
    if missing:
        raise ValidationError({"interests": [_("Unknown interest: %s") % ", ".join(missing)]})
    return interests


def _suppression_errors(*, email: str = "", phone: str = "") -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for field, kind, value in (
        ("email", SuppressionKind.EMAIL, email),
        ("phone", SuppressionKind.PHONE, phone),
    ):
        if value and suppression_reason(kind=kind, value=value):
            errors[field] = _suppressed_messages()
    return errors


def _suppressed_messages() -> list[str]:
    return [
        _(
            "This person asked not to be contacted (suppression list). Only "
            "their own new explicit consent can lift it."
        )
    ]


def ensure_not_suppressed(*, email: str, phone: str = "") -> None:
    """Refuse an address on the suppression list (never re-imported or re-contacted)."""
    errors = _suppression_errors(email=email, phone=phone)
    if errors:
        raise ValidationError(errors, code="suppressed")


def contact_fields_check(
    *, email: str, fields: Mapping[str, Any] | None = None, interests: Iterable[str] | None = None
) -> None:
    """Refuse, as contact_upsert would, bad contact data that is not going to be stored."""
    try:
        normalize_email(email)
    except ValidationError as error:
        raise ValidationError({"email": error.messages}) from error
    _check_relationship(_clean_fields(fields or {}))
    if interests is not None:
        _resolve_interests(interests)


def contact_save_check(*, contact: Contact | None, email: str, fields: Mapping[str, Any]) -> None:
    """Refuse, as `contact_upsert` (no contact yet) or `contact_update` would, every problem
    of a contact about to be saved: bad fields, a new email or phone on the suppression list.
    """
    errors: dict[str, list[str]] = {}
    try:
        cleaned = _clean_fields(fields, contact=contact)
        errors.update(relationship_errors(fields=cleaned, contact=contact))
    except ValidationError as error:
        errors.update(error.message_dict)
    if email and (contact is None or email != contact.email):
        # a known contact's changed phone was checked with the fields
        phone = (fields.get("phone") or "") if contact is None else ""
        for name, messages in _suppression_errors(email=email, phone=phone).items():
            errors.setdefault(name, []).extend(messages)
    if errors:
        raise ValidationError(errors)


def contact_upsert(
    *,
    email: str,
    fields: Mapping[str, Any] | None = None,
    interests: Iterable[str] | None = None,
) -> tuple[Contact, bool]:
    """Create or update the contact with this email; never creates a duplicate.

    A suppressed address is never created here, whatever the request claims: only the person's
    own confirmed act lifts the suppression first (consent.services.signups).
    """
    try:
        email = normalize_email(email)
    except ValidationError as error:
        raise ValidationError({"email": error.messages}) from error
    cleaned = _clean_fields(fields or {})
    chosen = _resolve_interests(interests) if interests is not None else None
    with transaction.atomic():
        contact = _lock_by_email(email)
        created = False
        _check_relationship(cleaned, contact)
        if contact is None:
            ensure_not_suppressed(email=email, phone=cleaned.get("phone", ""))
            contact, created = _create_or_lock(email=email, fields=cleaned)
        if created:
            _record_creation(contact)
        else:
            if cleaned.get("phone") not in (None, "", contact.phone):
                ensure_not_suppressed(email="", phone=cleaned["phone"])
            _apply_changes(contact, cleaned)
        if chosen is not None:
            _set_interests(contact, chosen, record=not created)
    return contact, created


def _lock_by_email(email: str) -> Contact | None:
    """Lock the contact with this email or, when it was merged into another, that other one
    (the merged contact itself is not locked: a merge locks contacts in id order only)."""
    for _attempt in range(2):
        found = Contact.objects.filter(email=email).values_list("pk", "merged_into_id").first()
        if found is None:
            return None
        contact = Contact.objects.select_for_update().get(pk=found[1] or found[0])
        if contact.merged_into_id is None:
            return contact  # else merged since it was read: follow it once more
    return contact


def _create_or_lock(*, email: str, fields: Mapping[str, Any]) -> tuple[Contact, bool]:
    """Insert the contact; if a concurrent request inserted it first, lock and return theirs."""
    try:
        with transaction.atomic():
            return Contact.objects.create(email=email, **fields), True
    except IntegrityError:
        return Contact.objects.select_for_update().get(email=email), False


def _record_creation(contact: Contact) -> None:
    timeline_add(contact=contact, kind=TimelineKind.CREATED, summary=contact.source or "-")
    outbox_emit(
        topic=OutboxTopic.CONTACT_CREATED, contact=contact, payload=contact_payload(contact)
    )


def _apply_changes(contact: Contact, fields: Mapping[str, Any]) -> list[str]:
    changed, reset = _changes_set(contact, fields)
    if not changed:
        return []
    contact.save(update_fields=[*changed, *reset, "updated_at"])
    timeline_add_many(events=_change_moments(contact, changed, reset, timezone.now()))
    outbox_emit(
        topic=OutboxTopic.CONTACT_UPDATED,
        contact=contact,
        payload={**contact_payload(contact), "changed": changed},
    )
    return changed


def _changes_set(contact: Contact, fields: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """Set on the contact (unsaved) the fields that change, an erased or merged contact
    refused: the names changed, and the columns a corrected postal address resets. The rule
    of `contact_update` and `contacts_update_many` alike."""
    changed = [name for name, value in fields.items() if getattr(contact, name) != value]
    if contact.status == ContactStatus.ERASED:
        raise ValidationError({"email": [_("This contact was erased.")]})
    if contact.status == ContactStatus.MERGED:
        raise ValidationError({"email": [_("This contact was merged into another one.")]})
    if not changed:
        return [], []
    for name in changed:
        setattr(contact, name, fields[name])
    return changed, _postal_deliverability_reset(contact, changed)


def _change_moments(
    contact: Contact, changed: list[str], reset: list[str], now: datetime
) -> list[dict[str, Any]]:
    """The timeline moments of a change of fields (for `timeline_add_many`): the postal
    address deliverable again when it was reset, then the fields changed."""
    moments: list[dict[str, Any]] = []
    if reset:
        moments.append(
            {
                "contact_id": contact.pk,
                "kind": TimelineKind.DELIVERABILITY_RESET.value,
                "summary": "postal",
                "data": {"channel": "postal"},
                "occurred_at": now,
            }
        )
    moments.append(
        {
            "contact_id": contact.pk,
            "kind": TimelineKind.UPDATED.value,
            "summary": ", ".join(changed),
            "data": {"fields": changed},
            "occurred_at": now,
        }
    )
    return moments


def _postal_deliverability_reset(contact: Contact, changed: Sequence[str]) -> list[str]:
    """A corrected postal address is deliverable again (until the mail house returns it); the
    columns reset (its timeline moment is the caller's, `_change_moments`)."""
    if contact.postal_deliverability == PostalDeliverability.DELIVERABLE or not (
        POSTAL_ADDRESS_FIELDS & set(changed)
    ):
        return []
    contact.postal_deliverability = PostalDeliverability.DELIVERABLE
    contact.postal_undeliverable_reason = ""
    return ["postal_deliverability", "postal_undeliverable_reason"]


def _email_deliverability_reset(contact: Contact) -> list[str]:
    """A new email address starts deliverable, with no bounce counted."""
    if contact.email_deliverability == EmailDeliverability.DELIVERABLE and not (
        contact.email_soft_bounces
    ):
        return []
    contact.email_deliverability = EmailDeliverability.DELIVERABLE
    contact.email_undeliverable_reason = ""
    contact.email_soft_bounces = 0
    timeline_add(
        contact=contact,
        kind=TimelineKind.DELIVERABILITY_RESET,
        summary="email",
        data={"channel": "email"},
    )
    return ["email_deliverability", "email_undeliverable_reason", "email_soft_bounces"]


def contact_update(
    *,
    contact: Contact,
    email: str | None = None,
    fields: Mapping[str, Any] | None = None,
    interests: Iterable[str] | None = None,
) -> Contact:
    """Update a known contact; a new email or phone must be free and not suppressed."""
    cleaned = _clean_fields(fields or {}, contact=contact)
    chosen = _resolve_interests(interests) if interests is not None else None
    with transaction.atomic():
        contact = Contact.objects.select_for_update().get(pk=contact.pk)
        _check_relationship(cleaned, contact)
        if email is not None:
            _change_email(contact, email)
        _apply_changes(contact, cleaned)
        if chosen is not None:
            _set_interests(contact, chosen)
    return contact


@dataclasses.dataclass
class ContactsWritten:
    """What a batched write of contacts did, by the index of each item given: the contact
    written (created, found, or updated), the items refused and why (nothing written for
    them), and for an update the fields it changed (none: the contact was already so)."""

    contacts: dict[int, Contact] = dataclasses.field(default_factory=dict)
    created: set[int] = dataclasses.field(default_factory=set)
    refused: dict[int, ValidationError] = dataclasses.field(default_factory=dict)
    changed: dict[int, list[str]] = dataclasses.field(default_factory=dict)


def contacts_create_many(*, people: Sequence[tuple[str, Mapping[str, Any]]]) -> ContactsWritten:
    """Create many contacts, each (email, fields), as `contact_upsert` creates one, in a few
    statements for them all: the fields cleaned, a suppressed email or phone refused, the
    suppression digests, a timeline moment and a `contact.created` outbox event each.

    Every item is checked before anything is written, so a refused one (named, with why)
    leaves the others whole. An address that is a contact's already (created meanwhile, or
    twice in the batch) goes through `contact_upsert`, which finds it: never a duplicate."""
    written = ContactsWritten()
    candidates: list[tuple[int, str, dict[str, Any]]] = []
    for index, (raw_email, fields) in enumerate(people):
        try:
            email = _email_normalized(raw_email)
            cleaned = _clean_fields(fields)
            _check_relationship(cleaned)
        except ValidationError as error:
            written.refused[index] = error
            continue
        candidates.append((index, email, cleaned))
    contacts = [
        _suppression_digests_set(Contact(email=email, **cleaned))
        for _index, email, cleaned in candidates
    ]
    listed = suppressions_listed(
        digests=[getattr(c, name) for c in contacts for name in SUPPRESSION_DIGEST_FIELDS]
    )
    new: dict[str, tuple[int, Contact]] = {}
    again: list[int] = []  # an address already in the batch: upserted once the first exists
    for (index, email, _cleaned), contact in zip(candidates, contacts, strict=True):
        errors = {
            name: _suppressed_messages()
            for name, digests in (
                ("email", (contact.email_digest, contact.email_quoted_digest)),
                ("phone", (contact.phone_digest,)),
            )
            if any(digest in listed for digest in digests if digest)
        }
        if errors:
            written.refused[index] = ValidationError(errors, code="suppressed")
        elif email in new:
            again.append(index)
        else:
            new[email] = (index, contact)
    try:
        # `wrap_database_errors`: a COPY's unique violation is an IntegrityError too
        with transaction.atomic(), connection.wrap_database_errors:
            bulk_insert(Contact, [contact for _index, contact in new.values()])
    except IntegrityError:  # an address became a contact meanwhile: each the slower way
        again = sorted([index for index, _contact in new.values()] + again)
        new = {}
    for index, contact in new.values():
        written.contacts[index] = contact
        written.created.add(index)
    creations_record([contact for _index, contact in new.values()])
    for index in again:
        try:
            contact, created = contact_upsert(email=people[index][0], fields=people[index][1])
        except ValidationError as error:
            written.refused[index] = error
            continue
        written.contacts[index] = contact
        if created:
            written.created.add(index)
    return written


def _email_normalized(raw_email: str) -> str:
    try:
        return normalize_email(raw_email)
    except ValidationError as error:
        raise ValidationError({"email": error.messages}) from error


def _suppression_digests_set(contact: Contact) -> Contact:
    """Set the suppression digests of the contact's email and phone, as `Contact.save` does
    (for the batched writers, which do not save one contact at a time), from the address and
    number as the contact holds them, normalised (`suppression_digests` of them gives the
    same keys, normalising them again)."""
    email_keys = suppression_digests_normalized(
        kind=SuppressionKind.EMAIL, normalized_value=contact.email
    )
    phone_keys = suppression_digests_normalized(
        kind=SuppressionKind.PHONE, normalized_value=contact.phone
    )
    contact.email_digest, contact.email_quoted_digest = (email_keys + [None, None])[:2]
    contact.phone_digest = (phone_keys + [None])[0]
    return contact


def creations_record(contacts: Sequence[Contact]) -> None:
    """`_record_creation` of many contacts: one statement for the moments, one for the
    events."""
    if not contacts:
        return
    now = timezone.now()
    timeline_add_many(
        events=[
            {
                "contact_id": contact.pk,
                "kind": TimelineKind.CREATED.value,
                "summary": contact.source or "-",
                "data": {},
                "occurred_at": now,
            }
            for contact in contacts
        ]
    )
    outbox_emit_many(
        events=[
            (OutboxTopic.CONTACT_CREATED, contact, contact_payload(contact)) for contact in contacts
        ]
    )


def creations_record_sql(source: str, now: datetime) -> list[tuple[str, list[Any]]]:
    """`creations_record` written by the database (PostgreSQL), for the new contacts that
    `source` holds (rows an `INSERT ... RETURNING` gave in a `WITH`): the statements, with
    their parameters, adding their timeline moments and queueing their outbox events."""
    summary = "left(coalesce(nullif(source, ''), '-'), 500)"
    return [
        insert_select_sql(
            TimelineEvent,
            {
                "contact_id": "id",
                "kind": ("%s", [TimelineKind.CREATED.value]),
                "summary": summary,
                "data": "'{}'::jsonb",
                "occurred_at": ("%s", [now]),
            },
            source,
        ),
        outbox_emit_select(
            topic=OutboxTopic.CONTACT_CREATED,
            source=source,
            public_id="public_id",
            payload=contact_payload_sql(source),
            order="id",
            start=now,
        ),
    ]


def contacts_update_many(
    *, changes: Sequence[tuple[Contact, Mapping[str, Any]]]
) -> ContactsWritten:
    """Change the fields of many known contacts, each (contact, fields), as `contact_update`
    changes one's (a new email or interests go through it), in a few statements for them all:
    the contacts locked in id order and read under their lock, the fields cleaned, a new
    phone on the suppression list refused, an erased or merged contact refused; the changed
    columns written in one UPDATE, a timeline moment and a `contact.updated` outbox event
    (with what `changed`) for each contact that changed.

    Every item is checked before anything is written: a refused one (named, with why)
    leaves the others whole."""
    written = ContactsWritten()
    cleaned: dict[int, dict[str, Any]] = {}
    for index, (_contact, fields) in enumerate(changes):
        try:
            cleaned[index] = _clean_fields(fields)
        except ValidationError as error:
            written.refused[index] = error
    ids = sorted({changes[index][0].pk for index in cleaned})
    locked = {
        contact.pk: contact
        for contact in Contact.objects.select_for_update().filter(pk__in=ids).order_by("pk")
    }
    listed = suppression_reasons_many(
        entries=[
            (SuppressionKind.PHONE, fields["phone"])
            for index, fields in cleaned.items()
            if fields.get("phone")
            and changes[index][0].pk in locked
            and fields["phone"] != locked[changes[index][0].pk].phone
        ]
    )
    now = timezone.now()
    moments: list[dict[str, Any]] = []
    events: list[tuple[str, Contact, dict[str, Any]]] = []
    columns: set[str] = set()
    for index, fields in cleaned.items():
        contact = locked.get(changes[index][0].pk)
        try:
            changed, reset = _locked_changes_set(contact, fields, listed)
        except ValidationError as error:
            written.refused[index] = error
            continue
        assert contact is not None
        written.contacts[index], written.changed[index] = contact, changed
        if not changed:
            continue
        if "phone" in changed:
            _suppression_digests_set(contact)
            columns.add("phone_digest")
        contact.updated_at = now
        columns.update(changed, reset)
        moments += _change_moments(contact, changed, reset, now)
        events.append(
            (
                OutboxTopic.CONTACT_UPDATED,
                contact,
                {**contact_payload(contact), "changed": changed},
            )
        )
    if events:
        updated = {contact.pk: contact for _topic, contact, _payload in events}
        Contact.objects.bulk_update(list(updated.values()), fields=[*sorted(columns), "updated_at"])
        timeline_add_many(events=moments)
        outbox_emit_many(events=events)
    return written


def _locked_changes_set(
    contact: Contact | None,
    fields: Mapping[str, Any],
    listed: Mapping[tuple[SuppressionKind, str], str],
) -> tuple[list[str], list[str]]:
    """`_changes_set` on a contact read under its lock, after `contact_update`'s checks: the
    customer dates against the relationship, a new phone against the suppression list."""
    if contact is None:
        raise ValidationError({"contact": [_("This contact no longer exists.")]})
    errors = relationship_errors(fields=fields, contact=contact)
    phone = fields.get("phone")
    if phone and phone != contact.phone and (SuppressionKind.PHONE, phone) in listed:
        errors["phone"] = _suppressed_messages()
    if errors:
        raise ValidationError(errors)
    return _changes_set(contact, fields)


def _set_interests(contact: Contact, chosen: list[Interest], *, record: bool = True) -> None:
    """Replace the contact's interests; a change is a timeline moment and a CRM event."""
    before = set(contact.interests.values_list("slug", flat=True))
    after = {interest.slug for interest in chosen}
    if before == after:
        return
    contact.interests.set(chosen)
    if not record:
        return
    timeline_add(
        contact=contact,
        kind=TimelineKind.INTERESTS_CHANGED,
        summary=", ".join(sorted(after)) or "-",
        data={"added": sorted(after - before), "removed": sorted(before - after)},
    )
    outbox_emit(
        topic=OutboxTopic.CONTACT_UPDATED,
        contact=contact,
        payload={**contact_payload(contact), "changed": ["interests"], "interests": sorted(after)},
    )


def contact_pause(*, contact: Contact, months: int, source: str = "") -> Contact:
    """Pause all communications for 1, 3 or 6 months (the person stays subscribed)."""
    if months not in PAUSE_MONTHS:
        raise ValidationError({"months": [_("Choose a pause of 1, 3 or 6 months.")]})
    with transaction.atomic():
        contact = _lock_active(contact)
        contact.status = ContactStatus.PAUSED
        contact.paused_until = timezone.now() + relativedelta(months=months)
        contact.save(update_fields=["status", "paused_until", "updated_at"])
        _record_status_change(contact, TimelineKind.PAUSED, source)
    return contact


def contact_resume(*, contact: Contact, source: str = "") -> Contact:
    """End a pause now; does nothing when the contact is not paused (safe to run twice)."""
    with transaction.atomic():
        contact = _lock_active(contact)
        if contact.status != ContactStatus.PAUSED:
            return contact
        contact.status = ContactStatus.ACTIVE
        contact.paused_until = None
        contact.save(update_fields=["status", "paused_until", "updated_at"])
        _record_status_change(contact, TimelineKind.RESUMED, source)
    return contact


def contact_profiling_objection_set(*, contact: Contact, objected: bool, source: str = "") -> bool:
    """Record or lift the person's objection to profiling (GDPR Art. 21); True if it changed."""
    return _dated_flag_set(
        contact,
        field="profiling_objected_at",
        on=objected,
        kind=TimelineKind.PROFILING_OBJECTION,
        summary=_("objected") if objected else _("objection withdrawn"),
        data={"objected": objected, "source": source},
        changed="profiling_objection",
    )


def contact_marketing_objection_set(
    *, contact: Contact, objected: bool, source: str = "", announce: bool = True
) -> bool:
    """Record or lift the person's objection to marketing on legitimate interest (GDPR Art.
    21(2), 21(3)); True if it changed.

    Set by an objection request and by an unsubscribe from all, which also withdraw what exists
    (`consents_withdraw_all`); the flag keeps every legitimate-interest purpose and channel off,
    including those created afterwards, where a withdrawal per purpose could not. It is lifted
    for one purpose and channel by a grant the person records after it (a tick in the
    preference center), and wholly when they resubscribe there. Consent purposes do not read
    it: their withdrawal already ended them, and a new grant is the person's new consent. The
    caller records the moment on the timeline (an objection, an unsubscribe, a resubscribe);
    with `announce=False`, the caller's own CRM event tells the CRMs too.
    """
    return _dated_flag_set(
        contact,
        field="marketing_objected_at",
        on=objected,
        kind=None,
        summary="",
        data={"objected": objected, "source": source},
        changed="marketing_objection",
        announce=announce,
    )


def pauses_end(*, now: Any = None, batch_size: int = 500) -> int:
    """Resume every contact whose pause is over (beat job); safe to run twice at once."""
    now = now or timezone.now()
    over = Contact.objects.filter(status=ContactStatus.PAUSED, paused_until__lte=now)
    return sum(
        _resume_if_over(contact_id, now) for contact_id in each_pk(over, batch_size=batch_size)
    )


def _resume_if_over(contact_id: int, now: Any) -> int:
    with transaction.atomic():
        contact = Contact.objects.select_for_update().get(pk=contact_id)
        if contact.status != ContactStatus.PAUSED or contact.paused_until > now:
            return 0  # resumed (or paused again) by a concurrent run or the person
        contact_resume(contact=contact, source="end_pauses")
    return 1


def contact_restriction_set(*, contact: Contact, restricted: bool, source: str = "") -> bool:
    """Restrict all marketing processing of the person (GDPR Art. 18) or lift it."""
    return _dated_flag_set(
        contact,
        field="processing_restricted_at",
        on=restricted,
        kind=TimelineKind.RESTRICTION,
        summary=_("restricted") if restricted else _("restriction lifted"),
        data={"restricted": restricted, "source": source},
        changed="processing_restriction",
    )


def _dated_flag_set(
    contact: Contact,
    *,
    field: str,
    on: bool,
    kind: TimelineKind | None,
    summary: str,
    data: dict[str, Any],
    changed: str,
    announce: bool = True,
) -> bool:
    """Set (to now) or clear a dated flag of the contact, with its timeline entry (none when
    `kind` is None: the caller records its own) and CRM event (none when `announce` is False:
    the caller's own event says it); True if it changed."""
    # no savepoint of its own (two statements fewer): no caller goes on after its errors
    with transaction.atomic(savepoint=False):
        now = timezone.now()
        # one conditional UPDATE decides and writes (it takes the contact's row lock)
        updated = (
            Contact.objects.filter(pk=contact.pk, **{f"{field}__isnull": on})
            .exclude(status=ContactStatus.ERASED)
            .update(**{field: now if on else None, "updated_at": now})
        )
        if not updated:
            _lock_active(contact)  # an erased contact is refused, as before
            return False
        if kind is None and not announce:
            return True
        contact = Contact.objects.get(pk=contact.pk)
        if kind is not None:
            timeline_add(contact=contact, kind=kind, summary=summary, data=data)
        if announce:
            outbox_emit(
                topic=OutboxTopic.CONTACT_UPDATED,
                contact=contact,
                payload={**contact_payload(contact), "changed": [changed]},
            )
    return True


# Contact columns erasure keeps, with why each identifies no one once the rest is gone.
# Every other column is personal and emptied: a column added to Contact is erased unless it
# is listed here (tests/contacts/test_anonymise.py makes the choice explicit).
ERASURE_KEPT_FIELDS = {
    "id": "the row's key, which the ledger and the privacy requests point at",
    "public_id": "the pseudonym the ledger, the CRMs and the API keep referring to",
    "language": "one of two reading languages, shared by a great many people",
    "lifecycle_stage": "a marketing stage, kept for statistics",
    "crm_record_type": "whether the CRMs held a lead or a contact, to have them erase it",
    "status": "set to erased: the fact of the erasure, not the person",
    "merged_into": "the row a merge joined this one to: the same person, erased with it",
    "frequency": "a chosen frequency, kept for statistics",
    "processing_restricted_at": "when a restriction began: proof that the right was honoured",
    "profiling_objected_at": "when an objection began: proof that the right was honoured",
    "marketing_objected_at": "when an objection began: proof that the right was honoured",
    "email_deliverability": "a delivery status without the address or its reason",
    "postal_deliverability": "a delivery status without the address or its reason",
    "email_soft_bounces": "a count of failed deliveries, without the address",
    "repermission_sent_at": "when the retention job asked: proof of the retention rule",
    "created_at": "when the record began: the ledger's proofs are dated against it",
    "updated_at": "when the row last changed (the erasure itself)",
    "ledger_seq": "the head of the contact's ledger chain: a count, which proves the records",
    "ledger_hash": "the head of the contact's ledger chain: a hash, which proves the records",
}
PERSONAL_FIELDS = tuple(
    field.name for field in Contact._meta.concrete_fields if field.name not in ERASURE_KEPT_FIELDS
)


def contact_anonymise(*, contact: Contact, reason: str) -> dict[str, str]:
    """Erase what identifies the person (GDPR Art. 17); answer what the CRMs need to follow.

    The email and phone go on the suppression list as HMAC digests; the email is replaced by
    a placeholder so that no query by the old address finds the contact; the timeline is
    replaced by one entry saying when and why; the notes are deleted. The caller holds the
    transaction.
    """
    return contacts_anonymise_many(contacts=[contact], reason=reason)[contact.pk]


def contacts_anonymise_many(
    *, contacts: Sequence[Contact], reason: str
) -> dict[int, dict[str, str]]:
    """`contact_anonymise` for many contacts at once, in a fixed number of statements.

    `contacts`: loaded and locked by the caller, who holds the transaction; each is changed
    in memory as it is in the database. Answers, per contact id, what the CRMs need.
    """
    if not contacts:
        return {}
    removed = {
        contact.pk: {
            "hubspot_id": contact.hubspot_id,
            "salesforce_id": contact.salesforce_id,
            "crm_record_type": contact.crm_record_type,
        }
        for contact in contacts
    }
    suppressions_add_many(
        reason=SuppressionReason.ERASED,
        addresses=[(contact.email, _valid_phone(contact.phone)) for contact in contacts],
    )
    now = timezone.now()
    # empty: blank text, no date, the default of a flag (not a minor); the same for everyone
    empty: dict[str, Any] = {}
    for name in PERSONAL_FIELDS:
        field = Contact._meta.get_field(name)
        assert isinstance(field, models.Field)  # PERSONAL_FIELDS holds concrete fields only
        empty[field.attname] = None if field.null else field.get_default()
    for contact in contacts:
        for attname, value in empty.items():
            setattr(contact, attname, value)
        contact.email = f"erased-{contact.public_id}@erased.invalid"
        contact.status = ContactStatus.ERASED
        contact.updated_at = now
        # the digests of the placeholder, as Contact.save computes them for a saved email
        keys = suppression_digests(kind=SuppressionKind.EMAIL, value=contact.email)
        contact.email_digest, contact.email_quoted_digest = (keys + [None, None])[:2]
    ids = [contact.pk for contact in contacts]
    # One UPDATE: the empty values as constants, only the placeholder and its digests per
    # person (`bulk_update` would write a CASE per person for every field: 86% of an
    # erasure's time at a million contacts)
    per_person = ("email", "email_digest", "email_quoted_digest")
    bulk_update_rows(
        Contact,
        [{"id": c.pk, **{name: getattr(c, name) for name in per_person}} for c in contacts],
        constants={
            **{name: value for name, value in empty.items() if name not in per_person},
            "status": ContactStatus.ERASED,
            "updated_at": now,
        },
    )
    Contact.interests.through.objects.filter(contact_id__in=ids).delete()
    TimelineEvent.objects.filter(contact_id__in=ids).delete()
    # staff's free text about the person: nothing of it is proof of anything (one statement)
    Note.objects.filter(contact_id__in=ids).delete()
    TimelineEvent.objects.bulk_create(
        [
            TimelineEvent(contact=contact, kind=TimelineKind.ERASED, summary=reason[:500], data={})
            for contact in contacts
        ]
    )
    # the admin's change history names the contact as it was ("Camille Martin <...>"), in
    # the few entries there are (by the content type's natural key: get_for_model would
    # create a missing one)
    entries = LogEntry.objects.filter(
        content_type__app_label=Contact._meta.app_label,
        content_type__model=Contact._meta.model_name,
        object_id__in=[str(pk) for pk in ids],
    ).values_list("pk", "object_id")
    shown = {str(c.pk): str(c)[:200] for c in contacts}
    bulk_update_rows(
        LogEntry, [{"id": pk, "object_repr": shown[object_id]} for pk, object_id in entries]
    )
    return removed


def _valid_phone(phone: str) -> str:
    try:
        return normalize_phone(phone) if phone else ""
    except ValidationError:
        return ""


def _lock_active(contact: Contact) -> Contact:
    contact = Contact.objects.select_for_update().get(pk=contact.pk)
    if contact.status == ContactStatus.ERASED:
        raise ValidationError({"contact": [_("This contact was erased.")]})
    return contact


def _record_status_change(contact: Contact, kind: TimelineKind, source: str) -> None:
    until = contact.paused_until.isoformat() if contact.paused_until else None
    timeline_add(
        contact=contact,
        kind=kind,
        summary=until or "-",
        data={"paused_until": until, "source": source},
    )
    outbox_emit(
        topic=OutboxTopic.CONTACT_UPDATED,
        contact=contact,
        payload={**contact_payload(contact), "changed": ["status"]},
    )


def email_change_check(*, contact: Contact, raw_email: str) -> str | None:
    """The normalised new address for `contact`, or None when it is already theirs.

    Refuses, under `email`, an invalid address, one another contact has, or a suppressed
    one: the rule of every email change (staff, API, CRM, the person's own).
    """
    try:
        email = normalize_email(raw_email)
    except ValidationError as error:
        raise ValidationError({"email": error.messages}) from error
    if email == contact.email:
        return None
    if Contact.objects.filter(email=email).exists():
        raise _email_taken()
    ensure_not_suppressed(email=email)
    return email


def _email_taken() -> ValidationError:
    return ValidationError({"email": [_("Another contact already has this email.")]})


def _change_email(contact: Contact, raw_email: str) -> None:
    email = email_change_check(contact=contact, raw_email=raw_email)
    if email is None:
        return
    taken = _email_taken()
    old = contact.email
    now = timezone.now()
    # The address to trust with the person's data while the new one is young (Contact.
    # trusted_emails): the replaced one, unless it had itself just replaced an older one.
    if contact.trusted_emails(now=now) == [old]:
        contact.previous_email = old
    contact.email, contact.email_changed_at = email, now
    try:
        with transaction.atomic():  # a concurrent change to the same email commits first
            reset = _email_deliverability_reset(contact)
            contact.save(
                update_fields=[
                    "email",
                    "email_changed_at",
                    "previous_email",
                    "updated_at",
                    *reset,
                ]
            )
    except IntegrityError:
        contact.email = old
        raise taken from None
    timeline_add(contact=contact, kind=TimelineKind.EMAIL_CHANGED, summary=email, data={})
    outbox_emit(
        topic=OutboxTopic.CONTACT_UPDATED,
        contact=contact,
        payload={**contact_payload(contact), "changed": ["email"], "previous_email": old},
    )


def previous_emails_forget(*, now: Any = None) -> int:
    """Forget replaced addresses once the new one is trusted (GDPR Art. 5(1)(e)); idempotent."""
    now = now or timezone.now()
    return (
        Contact.objects.exclude(previous_email="")
        .filter(email_changed_at__lte=now - EMAIL_TRUST_PERIOD)
        .update(previous_email="")
    )


def contact_touch(*, contact: Contact, at: Any = None) -> None:
    """Remember the person's last activity (retention counts from it)."""
    at = at or timezone.now()
    Contact.objects.filter(pk=contact.pk).update(last_activity_at=at)
    contact.last_activity_at = at


# The contact as CRMs receive it: each payload key, the contact field it is read from and its
# form (`contact_payload` in Python, `contact_payload_sql` in SQL; a test holds them equal).
CONTACT_PAYLOAD: tuple[tuple[str, str, str], ...] = (
    ("id", "public_id", "text"),
    ("email", "email", "value"),
    ("first_name", "first_name", "value"),
    ("last_name", "last_name", "value"),
    ("phone", "phone", "value"),
    ("company", "company", "value"),
    ("job_title", "job_title", "value"),
    ("country", "country", "value"),
    ("language", "language", "value"),
    ("lifecycle_stage", "lifecycle_stage", "value"),
    ("frequency", "frequency", "value"),
    ("b2b", "b2b", "value"),
    ("relationship", "relationship", "value"),
    ("customer_since", "customer_since", "date"),
    ("customer_until", "customer_until", "date"),
    ("status", "status", "value"),
    ("paused_until", "paused_until", "datetime"),
    ("objected_to_profiling", "profiling_objected_at", "is_set"),
    ("objected_to_marketing", "marketing_objected_at", "is_set"),
)
# The fields `contact_payload` reads.
CONTACT_PAYLOAD_FIELDS = tuple(name for _key, name, _form in CONTACT_PAYLOAD)


def _isoformat(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


_PAYLOAD_FORMS: dict[str, Callable[[Any], Any]] = {
    "value": lambda value: value,
    "text": str,
    "date": _isoformat,
    "datetime": _isoformat,
    "is_set": lambda value: value is not None,
}
_PAYLOAD_READERS = [(key, name, _PAYLOAD_FORMS[form]) for key, name, form in CONTACT_PAYLOAD]


def contact_payload(contact: Contact) -> dict[str, Any]:
    """The contact as sent to CRMs through the outbox."""
    return contact_payload_of({name: getattr(contact, name) for name in CONTACT_PAYLOAD_FIELDS})


def contact_payload_of(values: Mapping[str, Any]) -> dict[str, Any]:
    """`contact_payload` from the values of `CONTACT_PAYLOAD_FIELDS` (as `values_list` reads
    them, for a reader of many payloads)."""
    return {key: form(values[name]) for key, name, form in _PAYLOAD_READERS}


def contact_payload_sql(alias: str) -> str:
    """`contact_payload` as a PostgreSQL `jsonb` expression over the contact columns of
    `alias` (a table, or rows a statement returns), for events written by the database."""
    quote = connection.ops.quote_name
    parts = []
    for key, name, form in CONTACT_PAYLOAD:
        field = Contact._meta.get_field(name)
        assert isinstance(field, models.Field)
        column = f"{alias}.{quote(field.column)}"
        sql = {
            "value": column,
            "text": f"{column}::text",
            "date": f"to_char({column}, 'YYYY-MM-DD')",
            # datetime.isoformat() of an aware UTC time: microseconds only when not zero
            "datetime": (
                f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS' || "
                f"CASE WHEN mod(extract(microseconds FROM {column})::bigint, 1000000) = 0 "
                f"THEN '' ELSE '.US' END) || '+00:00'"
            ),
            "is_set": f"({column} IS NOT NULL)",
        }[form]
        parts.append(f"'{key}', {sql}")
    return f"jsonb_build_object({', '.join(parts)})"


def suppression_add(*, reason: str, email: str = "", phone: str = "") -> list[Suppression]:
    """Put an email and/or phone on the suppression list, as HMAC digests only."""
    entries = []
    for entry in _suppression_entries(reason=reason, email=email, phone=phone):
        entry, _created = Suppression.objects.update_or_create(
            digest=entry.digest, defaults={"kind": entry.kind, "reason": reason}
        )
        entries.append(entry)
    return entries


def suppressions_add_many(
    *, reason: str, addresses: Iterable[tuple[str, str]], replace: bool = True
) -> None:
    """`suppression_add` for many (email, phone) pairs ("" for none) in one statement.

    `replace`: an address already listed takes this reason, as with `suppression_add`;
    otherwise it keeps the reason it has.
    """
    entries = {
        entry.digest: entry
        for email, phone in addresses
        for entry in _suppression_entries(reason=reason, email=email, phone=phone)
    }
    if not entries:
        return
    if replace:
        Suppression.objects.bulk_create(
            entries.values(),
            update_conflicts=True,
            unique_fields=["digest"],
            update_fields=["kind", "reason"],
        )
    else:
        Suppression.objects.bulk_create(entries.values(), ignore_conflicts=True)


def _suppression_entries(*, reason: str, email: str = "", phone: str = "") -> list[Suppression]:
    """The (unsaved) suppression entries of an email and/or phone; raises if one is invalid."""
    entries = []
    for kind, value in ((SuppressionKind.EMAIL, email), (SuppressionKind.PHONE, phone)):
        if not value:
            continue
        # A stored address that no longer normalises keeps the key it always had.
        keys = email_keys(value) if kind == SuppressionKind.EMAIL else [normalize_phone(value)]
        if not keys:
            normalize_email(value)  # raises the reason
        entries.append(
            Suppression(digest=suppression_digest(kind, keys[0]), kind=kind, reason=reason)
        )
    return entries


def suppression_lift(*, email: str = "", phone: str = "") -> int:
    """Remove a suppression: only called when the person gives new explicit consent."""
    digests = []
    if email:
        digests += suppression_digests(kind=SuppressionKind.EMAIL, value=email)
    if phone:
        digests.append(suppression_digest(SuppressionKind.PHONE, normalize_phone(phone)))
    deleted, _detail = Suppression.objects.filter(digest__in=digests).delete()
    return deleted


# --- merge: two contacts found to be one person ---------------------------------------------

# Profile columns a merge fills on the survivor when they are empty there (its own stay).
MERGE_FILLED_FIELDS = (
    "first_name",
    "last_name",
    "phone",
    "company",
    "job_title",
    "address_line1",
    "address_line2",
    "postal_code",
    "city",
    "country",
    "language",
    "source",
    "guardian_consent_evidence",
)
MERGE_CRM_FIELDS = ("hubspot_id", "salesforce_id", "crm_record_type")
# The person's rights exercised on either contact stand on the survivor: the earliest
# restriction and profiling objection, the latest marketing objection (the one a later grant
# must follow to lift it, see `contact_marketing_objection_set`).
MERGE_EARLIEST_FLAGS = ("processing_restricted_at", "profiling_objected_at")
MERGE_LATEST_FLAGS = ("marketing_objected_at",)


def contacts_lock_for_merge(*, survivor: Contact, merged: Contact) -> tuple[Contact, Contact]:
    """Lock both contacts in id order (as any two-contact write must, so that two merges or a
    merge and a consent write never deadlock) and refuse what cannot be merged: a contact into
    itself, an erased contact, a contact already merged, or into one. The caller holds the
    transaction."""
    if survivor.pk == merged.pk:
        raise ValidationError({"merged": [_("A contact cannot be merged into itself.")]})
    locked = {
        contact.pk: contact
        for contact in Contact.objects.select_for_update()
        .filter(pk__in=[survivor.pk, merged.pk])
        .order_by("pk")
    }
    survivor, merged = locked[survivor.pk], locked[merged.pk]
    errors: dict[str, list[str]] = {}
    for name, contact in (("survivor", survivor), ("merged", merged)):
        if contact.status == ContactStatus.ERASED:
            errors[name] = [_("This contact was erased.")]
        elif contact.status == ContactStatus.MERGED:
            errors[name] = [_("This contact was already merged into another one.")]
    if errors:
        raise ValidationError(errors)
    return survivor, merged


def contact_merge_into(
    *, survivor: Contact, merged: Contact, actor: str, details: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The contacts' side of a merge: fill the survivor's empty fields and CRM ids from the
    merged contact, keep the person's objections and restriction, move the interests and the
    timeline, then mark the merged contact `merged` into the survivor, with one timeline entry
    on each and one `contact.merged` outbox event. Answers what was done (for the audit).

    The caller holds the transaction and the locks (`contacts_lock_for_merge`) and has carried
    the consents first; the merged contact keeps its email, so that finding it (by email,
    public id or id: `contacts.selectors.contact_find`) leads to the survivor.
    """
    filled = _merge_fill(survivor, merged)
    conflicts: dict[str, dict[str, str]] = {}
    for name in MERGE_CRM_FIELDS:
        if _fill(survivor, merged, name):
            filled.append(name)
        elif getattr(merged, name) and getattr(merged, name) != getattr(survivor, name):
            # one CRM, two records: the survivor's id stays, the CRMs learn of the other
            conflicts[name] = {"kept": getattr(survivor, name), "other": getattr(merged, name)}
    if merged.is_minor and not survivor.is_minor:
        survivor.is_minor = True
        filled.append("is_minor")
    if merged.birth_year and (survivor.birth_year or 0) < merged.birth_year:
        # two birth years for one person: the younger counts (a child is protected, Art. 8)
        survivor.birth_year = merged.birth_year
        filled.append("birth_year")
    # the caller sets the last activity (a merge is none of the person's)
    survivor.save(update_fields=[*filled, "last_activity_at", "updated_at"])
    survivor.interests.add(*merged.interests.all())
    merged.timeline.all().update(contact=survivor)
    notes = merged.notes.all().update(contact=survivor)
    # contacts merged into this one before now point straight at the survivor
    Contact.objects.filter(merged_into=merged).update(merged_into=survivor)
    merged.status, merged.merged_into = ContactStatus.MERGED, survivor
    merged.save(update_fields=["status", "merged_into", "updated_at"])
    summary = {
        "survivor": str(survivor.public_id),
        "merged": str(merged.public_id),
        "merged_email": merged.email,
        "filled": filled,
        "crm_conflicts": conflicts,
        "notes_moved": notes,
        "by": actor,
        **dict(details or {}),
    }
    _record_merge(survivor, merged, summary)
    return summary


def _fill(survivor: Contact, merged: Contact, name: str) -> bool:
    """Copy `name` from the merged contact where the survivor has none; True if it did."""
    if getattr(survivor, name) or not getattr(merged, name):
        return False
    setattr(survivor, name, getattr(merged, name))
    return True


def _merge_relationship(survivor: Contact, merged: Contact) -> list[str]:
    """One person, one relationship: a customer if either contact was, since the earliest
    start, until the latest end (none while either contract runs); the fields it changed."""
    customers = [c for c in (survivor, merged) if c.relationship == Relationship.CUSTOMER]
    if not customers:
        return []
    starts = [c.customer_since for c in customers if c.customer_since is not None]
    ends = [c.customer_until for c in customers]
    wanted = {
        "relationship": Relationship.CUSTOMER,
        "customer_since": min(starts, default=None),
        "customer_until": None if None in ends else max(e for e in ends if e is not None),
    }
    changed = [name for name, value in wanted.items() if getattr(survivor, name) != value]
    for name in changed:
        setattr(survivor, name, wanted[name])
    return changed


def _merge_fill(survivor: Contact, merged: Contact) -> list[str]:
    filled = [name for name in MERGE_FILLED_FIELDS if _fill(survivor, merged, name)]
    filled += _merge_relationship(survivor, merged)
    for names, pick in ((MERGE_EARLIEST_FLAGS, min), (MERGE_LATEST_FLAGS, max)):
        for name in names:
            dates = [d for d in (getattr(survivor, name), getattr(merged, name)) if d is not None]
            if dates and pick(dates) != getattr(survivor, name):
                setattr(survivor, name, pick(dates))
                filled.append(name)
    return filled


def _record_merge(survivor: Contact, merged: Contact, summary: dict[str, Any]) -> None:
    timeline_add(
        contact=survivor,
        kind=TimelineKind.MERGED,
        summary=_("%(email)s merged into this contact") % {"email": merged.email},
        data=summary,
    )
    timeline_add(
        contact=merged,
        kind=TimelineKind.MERGED,
        summary=_("Merged into %(email)s") % {"email": survivor.email},
        data=summary,
    )
    outbox_emit(
        topic=OutboxTopic.CONTACT_MERGED,
        contact=survivor,
        payload={
            **contact_payload(survivor),
            "merged_id": str(merged.public_id),
            "merged_email": merged.email,
            "crm_ids": {name: getattr(survivor, name) for name in MERGE_CRM_FIELDS},
            "merged_crm_ids": {name: getattr(merged, name) for name in MERGE_CRM_FIELDS},
            "crm_conflicts": summary["crm_conflicts"],
        },
    )


# --- notes: staff's free text, screened for special categories of data ---------------------


def note_add(*, contact: Contact, body: str, author: User | None) -> Note:
    """Add a note on a contact, screened for special categories of data (GDPR Art. 9, 10): one
    that looks like one is held for the DPO's review with the categories found, never stored
    as a normal note."""
    text = body.strip()
    if not text:
        raise ValidationError({"body": [_("A note cannot be empty: write something.")]})
    categories = [flag.category for flag in special_categories(text)]
    with transaction.atomic():
        # under the contact's lock: an erasure, which deletes the notes, is done or waits
        contact = _lock_active(contact)
        if contact.status == ContactStatus.MERGED:
            raise ValidationError(
                {"contact": [_("This contact was merged into another one: add the note there.")]}
            )
        note = Note.objects.create(
            contact=contact,
            body=text,
            author=author,
            author_name=author.get_username() if author is not None else "",
            status=NoteStatus.HELD if categories else NoteStatus.STORED,
            categories=categories,
        )
        timeline_add(
            contact=contact,
            kind=TimelineKind.NOTE_ADDED,
            # no sentence and no categories: the page words it in the reader's language,
            # and whoever reads the timeline learns no special category of the person
            summary="",
            data={"note": note.pk, "status": note.status},
        )
    return note


def note_review(*, note: Note, release: bool, by: str, comment: str = "") -> Note:
    """The DPO's decision on a held note: released (lawful, e.g. the person's explicit consent,
    GDPR Art. 9(2)(a), which `comment` must say) or discarded, its text wiped and the trail
    (categories, who, when, why) kept. Only a held note can be reviewed."""
    with transaction.atomic():
        note = Note.objects.select_for_update().get(pk=note.pk)
        if note.status != NoteStatus.HELD:
            raise ValidationError(
                _(
                    "Only a note held for review can be released or discarded (this one is "
                    "%(status)s)."
                )
                % {"status": note.get_status_display().lower()}
            )
        if release and not comment.strip():
            raise ValidationError(
                {
                    "comment": [
                        _(
                            "Say why this note may be kept, e.g. the person's explicit consent "
                            "(GDPR Art. 9(2)(a))."
                        )
                    ]
                }
            )
        note.status = NoteStatus.RELEASED if release else NoteStatus.DISCARDED
        if not release:
            note.body = ""
        note.reviewed_by_name = by
        note.reviewed_at = timezone.now()
        note.review_comment = comment.strip()
        note.save(
            update_fields=["status", "body", "reviewed_by_name", "reviewed_at", "review_comment"]
        )
    return note
