"""Reads on privacy requests."""

from contacts.models import Contact
from privacy.models import PrivacyRequest


def contact_privacy_requests(contact: Contact) -> list[PrivacyRequest]:
    """The person's privacy requests, the latest received first: one statement."""
    return list(PrivacyRequest.objects.filter(contact=contact).order_by("-received_at"))
