"""The recipients of personal data (GDPR Art. 13(1)(e)-(f), 15(1)(c)): the processors the
controller declares in `DATA_RECIPIENTS` (hosting, email delivery, SMS ...), with their country
and, outside the EU, the safeguard of the transfer (Art. 46). Access answers and receipts
name them; what was actually sent to a CRM is told per person (privacy.exports)."""

from typing import TypedDict

from django.conf import settings


class Recipient(TypedDict):
    name: str
    role: str
    country: str
    outside_eu: bool
    safeguard: str


def data_recipients() -> list[Recipient]:
    """The declared processors, in the order of the setting (checked when settings load)."""
    return [
        Recipient(
            name=str(entry["name"]),
            role=str(entry["role"]),
            country=str(entry["country"]),
            outside_eu=bool(entry.get("outside_eu", False)),
            safeguard=str(entry.get("safeguard") or ""),
        )
        for entry in settings.DATA_RECIPIENTS
    ]
