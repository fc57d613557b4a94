"""Reads on contacts."""

from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef, QuerySet

from contacts.models import SUPPRESSION_DIGEST_FIELDS, Contact, Suppression
from contacts.normalization import normalize_email, suppression_digests


def suppression_reason(*, kind: str, value: str) -> str | None:
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
