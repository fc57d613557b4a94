"""Normalisation of the keys a person is known by: email (dedupe) and phone (E.164)."""

import hashlib
import hmac

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.translation import gettext as _

# RFC 5321 (a path of 256 octets with its angle brackets), and the contact column.
EMAIL_MAX_LENGTH = 254


def normalize_email(raw: str) -> str:
    """Trim, lower-case and turn an internationalised domain into punycode."""
    value = (raw or "").strip().lower()
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        raise ValidationError(_("Enter a valid email address."), code="invalid")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError as error:
        raise ValidationError(_("Enter a valid email address."), code="invalid") from error
    email = f"{local}@{domain}"
    validate_email(email)
    if len(email) > EMAIL_MAX_LENGTH:  # punycode can make a valid-looking address too long
        raise ValidationError(
            _("Use an email address of %(limit)d characters at most.")
            % {"limit": EMAIL_MAX_LENGTH},
            code="max_length",
        )
    return email


def normalize_phone(raw: str, *, country: str = "") -> str:
    """The number in E.164, reading national numbers in the contact's country (France if none)."""
    value = (raw or "").strip()
    if not value:
        return ""
    try:
        number = phonenumbers.parse(value, (country or "FR").upper())
    except phonenumbers.NumberParseException as error:
        raise ValidationError(_("Enter a valid phone number."), code="invalid") from error
    if not phonenumbers.is_valid_number(number):
        raise ValidationError(_("Enter a valid phone number."), code="invalid")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def suppression_digest(kind: str, normalized_value: str) -> str:
    """HMAC-SHA256 of a normalised address with the server secret: the suppression key."""
    key = settings.SUPPRESSION_HMAC_KEY.encode()
    return hmac.new(key, f"{kind}:{normalized_value}".encode(), hashlib.sha256).hexdigest()
