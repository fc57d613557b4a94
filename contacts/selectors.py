"""Reads on contacts: finding a contact (by id, public id or email) and the suppression list."""

from uuid import UUID

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from contacts.models import Contact, ContactStatus, Suppression, SuppressionKind
from contacts.normalization import (
    email_keys,
    normalize_email,
    normalize_phone,
    suppression_digest,
)


def suppression_digests(*, kind: SuppressionKind, value: str) -> list[str]:
    """The suppression keys this email or phone may be listed under (none when malformed)."""
    kind = SuppressionKind(kind)  # a misspelt kind would otherwise be read as a phone
    if kind == SuppressionKind.EMAIL:
        keys = email_keys(value)
    else:
        try:
            keys = [normalize_phone(value)]
        except ValidationError:
            return []
    return [suppression_digest(kind, key) for key in keys if key]


def suppression_reason(*, kind: SuppressionKind, value: str) -> str | None:
    """Why this email or phone is suppressed, or None when it is not."""
    digests = suppression_digests(kind=kind, value=value)
    if not digests:
        return None
    entry = Suppression.objects.filter(digest__in=digests).first()
    return entry.reason if entry else None


def contacts_by_email(raw_email: str) -> QuerySet[Contact]:
    """Contacts matching an email after normalisation (none when the email is malformed)."""
    try:
        email = normalize_email(raw_email)
    except ValidationError:
        return Contact.objects.none()
    return Contact.objects.filter(email=email)


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
    if not with_erased:
        contacts = contacts.exclude(status=ContactStatus.ERASED)
    return contacts.first()
