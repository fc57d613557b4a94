"""Reads on contacts: finding a contact (by id, public id or email) and the suppression list."""

from uuid import UUID

from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef, QuerySet
from django.db.models.functions import Coalesce

from contacts.models import (
    SUPPRESSION_DIGEST_FIELDS,
    Contact,
    ContactStatus,
    Suppression,
    SuppressionKind,
)
from contacts.normalization import normalize_email, suppression_digests


def suppression_reason(*, kind: SuppressionKind, value: str) -> str | None:
    """Why this email or phone is suppressed, or None when it is not."""
    digests = suppression_digests(kind=kind, value=value)
    if not digests:
        return None
    entry = Suppression.objects.filter(digest__in=digests).first()
    return entry.reason if entry else None


def contacts_by_email(raw_email: str) -> QuerySet[Contact]:
    """Contacts matching an email after normalisation (none when the email is malformed).

    The address of a contact merged into another finds that other one, which holds the
    person now (one index lookup on the email, then one on the key).
    """
    try:
        email = normalize_email(raw_email)
    except ValidationError:
        return Contact.objects.none()
    person = Contact.objects.filter(email=email).values(held_by=Coalesce("merged_into", "pk"))
    return Contact.objects.filter(pk__in=person)


def contact_find(
    *,
    pk: int | None = None,
    public_id: UUID | str | None = None,
    email: str | None = None,
    with_erased: bool = True,
) -> Contact | None:
    """The contact with this database id, public id or (normalised) email: exactly one of the
    three. None when there is none, or when the public id or email is malformed.

    `with_erased=False`: an erased contact counts as none (nothing may be sent to it).
    A contact merged into another is found as that other one, which holds the person now.
    """
    if [pk, public_id, email].count(None) != 2:
        raise TypeError("contact_find() takes exactly one of pk, public_id and email")
    if email is not None:
        contacts = contacts_by_email(email)
    elif pk is not None:
        contacts = Contact.objects.filter(pk=pk)
    else:
        try:
            contacts = Contact.objects.filter(public_id=UUID(str(public_id)))
        except ValueError:
            return None
    contact = contacts.first()
    if contact is not None and contact.merged_into_id is not None:
        contact = Contact.objects.filter(pk=contact.merged_into_id).first()
    if contact is not None and not with_erased and contact.status == ContactStatus.ERASED:
        return None
    return contact


def contact_is_suppressed(contact: Contact) -> bool:
    """Whether the contact's email or phone is on the suppression list, by the digests stored
    on the contact (the same columns `suppression_matches` joins on)."""
    digests = [getattr(contact, field) for field in SUPPRESSION_DIGEST_FIELDS]
    digests = [digest for digest in digests if digest]
    return bool(digests) and Suppression.objects.filter(digest__in=digests).exists()


def suppression_matches() -> list[Exists]:
    """`contact_is_suppressed` in SQL for a queryset of contacts: one condition per stored
    digest, true when the list holds it (no HMAC to compute per row). Suppressed: any of them;
    not suppressed: none of them, which the database runs as one anti-join each."""
    return [
        Exists(Suppression.objects.filter(digest=OuterRef(field)))
        for field in SUPPRESSION_DIGEST_FIELDS
    ]
