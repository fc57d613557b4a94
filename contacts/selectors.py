"""Reads on contacts."""

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from contacts.models import Contact, Suppression
from contacts.normalization import normalize_email, normalize_phone, suppression_digest


def suppression_reason(*, kind: str, value: str) -> str | None:
    """Why this email or phone is suppressed, or None when it is not."""
    try:
        normalized = normalize_email(value) if kind == "email" else normalize_phone(value)
    except ValidationError:
        return None
    entry = Suppression.objects.filter(digest=suppression_digest(kind, normalized)).first()
    return entry.reason if entry else None


def contacts_by_email(raw_email: str) -> QuerySet[Contact]:
    """Contacts matching an email after normalisation (none when the email is malformed)."""
    try:
        email = normalize_email(raw_email)
    except ValidationError:
        return Contact.objects.none()
    return Contact.objects.filter(email=email)
