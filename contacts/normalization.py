"""Normalisation of the keys a person is known by: email (dedupe) and phone (E.164)."""

import functools
import hashlib
import hmac
import re
from collections.abc import Sequence

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.translation import gettext as _

# RFC 5321 (a path of 256 octets with its angle brackets), and the contact column.
EMAIL_MAX_LENGTH = 254
# RFC 5322 dot-atom: what a local part may be without quotes.
DOT_ATOM = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*", re.ASCII)
QUOTED_PAIR = re.compile(r"\\(.)")


def normalize_email(raw: str) -> str:
    """The one key of a mailbox: trimmed, lower-cased, unquoted, IDN domain in punycode.

    Every spelling of one mailbox gives the same key (the suppression list depends on it):
    `"camille.martin"@EXAMPLE.fr` is `camille.martin@example.fr` (RFC 5321 §4.1.2). A local
    part that needs its quotes (a space, an `@`) or holds a character outside ASCII is refused
    rather than guessed at: look-alikes such as `ı` (dotless i) or `ſ` (long s) would otherwise
    pass Django's case-insensitive check as `i` and `s` under another key, and mail cannot be
    sent to a non-ASCII mailbox anyway. The domain goes through IDNA, which maps its own
    variants (case, full-width forms, `ſ`).
    """
    value = (raw or "").strip()
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        raise ValidationError(_("Enter a valid email address."), code="invalid")
    local = _unquoted_local_part(local)
    if not local.isascii():
        raise ValidationError(
            _(
                "The part before the @ may only hold ASCII characters: accented or look-alike "
                "letters (such as “ı” or “ſ”) are not accepted."
            ),
            code="non_ascii",
        )
    local = local.lower()
    try:
        domain = domain.lower().encode("idna").decode("ascii")
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


def _unquoted_local_part(local: str) -> str:
    """A quoted local part without its quotes, when it does not need them; refused otherwise."""
    if not local.startswith('"'):
        return local
    content = QUOTED_PAIR.sub(r"\1", local[1:-1]) if len(local) > 1 and local.endswith('"') else ""
    if not content.isascii():
        return content  # refused for its characters, with that reason
    if not DOT_ATOM.fullmatch(content.lower()):
        raise ValidationError(
            _(
                "Write the address without quotes: a part before the @ that needs them (with a "
                "space, an @ or a quote) is not accepted."
            ),
            code="quoted",
        )
    return content


def email_keys(raw: str) -> list[str]:
    """Every key under which this address may be stored, the normalised one first.

    Entries written before quoted and non-ASCII local parts were normalised (the suppression
    list keeps only digests, which cannot be rewritten) are still found: a stored address
    that no longer normalises keeps the key the earlier rule gave it, and a normalised
    address is also looked up in the quoted spelling that rule kept as typed.
    """
    try:
        email = normalize_email(raw)
    except ValidationError:
        former = _former_email_key(raw)
        return [former] if former else []
    local, _at, domain = email.rpartition("@")
    return [email, f'"{local}"@{domain}']


def _former_email_key(raw: str) -> str | None:
    value = (raw or "").strip().lower()
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        return None
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return None


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


# The values of contacts.models.SuppressionKind (this module sits below the models).
SUPPRESSION_KINDS = EMAIL_KIND, PHONE_KIND = ("email", "phone")


def suppression_digests(*, kind: str, value: str) -> list[str]:
    """The suppression keys this email or phone may be listed under (none when malformed)."""
    if kind not in SUPPRESSION_KINDS:  # a misspelt kind would otherwise be read as a phone
        raise ValueError(f"unknown suppression kind {kind!r}")
    if kind == EMAIL_KIND:
        keys = email_keys(value)
    else:
        try:
            keys = [normalize_phone(value)]
        except ValidationError:
            return []
    return [suppression_digest(kind, key) for key in keys if key]


def suppression_digests_normalized(*, kind: str, normalized_value: str) -> list[str]:
    """`suppression_digests` of a value already normalised (`normalize_email`, or
    `normalize_phone` giving E.164), without normalising it again: the same keys, for the
    batched writers that have just normalised every row (imports)."""
    return suppression_digests_normalized_many(kind=kind, normalized_values=[normalized_value])[0]


def suppression_digests_normalized_many(
    *, kind: str, normalized_values: Sequence[str]
) -> list[list[str]]:
    """`suppression_digests_normalized` of each value, the key read once for them all."""
    if kind not in SUPPRESSION_KINDS:
        raise ValueError(f"unknown suppression kind {kind!r}")
    keyed = _keyed_hmac(settings.SUPPRESSION_HMAC_KEY)
    prefix = f"{kind}:"
    result: list[list[str]] = []
    for value in normalized_values:
        if not value:
            result.append([])
            continue
        if kind == EMAIL_KIND:
            local, _at, domain = value.rpartition("@")
            keys = [value, f'"{local}"@{domain}']
        else:
            keys = [value]
        digests = []
        for key in keys:
            mac = keyed.copy()
            mac.update((prefix + key).encode())
            digests.append(mac.hexdigest())
        result.append(digests)
    return result


@functools.lru_cache(maxsize=4)
def _keyed_hmac(key: str) -> "hmac.HMAC":
    """An HMAC-SHA256 with the key already absorbed, to `copy()` for each message."""
    return hmac.new(key.encode(), digestmod=hashlib.sha256)
