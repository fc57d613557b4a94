"""Reads on contacts."""

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from contacts.models import Contact, Suppression, SuppressionKind
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
