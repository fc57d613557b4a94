"""Grants for a suppressed address that has no contact: an erased person signing up again, or
an address that unsubscribed before it was ever a contact.

Nothing is stored when such a grant arrives (no contact, no personal data): the request
travels in a signed, time-limited link emailed to the address, at most once a day. Following
the link is the person's own confirmed act: it lifts the suppression, creates the contact anew
and records the grants with source `email_confirmation` (SPEC §3, security).
"""

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from consent.models import (
    Actor,
    Channel,
    ConsentAction,
    ConsentRecord,
    ConsentStatus,
    Purpose,
    PurposeVersion,
    SourceKind,
)
from consent.selectors import purposes_with_versions
from consent.services.consents import (
    ConsentWrite,
    Evidence,
    consent_grant_check,
    consents_record_many,
    suppressed_address_confirmation_claim,
)
from contacts.models import Contact, Language
from contacts.selectors import contacts_by_email
from contacts.services import contact_upsert, suppression_lift
from core.emails import email_send
from core.links import signed_token, signed_token_read, site_url
from core.models import JobRun
from core.services import job_run_claim

SIGNUP_SALT = "consent.suppressed-address-signup"
SIGNUP_CONFIRMED_JOB = "suppressed-address-signup-confirmed"


@dataclass(frozen=True)
class SignupGrant:
    """A grant for a suppressed address with no contact, answered as pending: nothing of it is
    stored, so the fields a ledger record would have (id, contact, hash...) are None."""

    email: str
    purpose: Purpose
    purpose_version: PurposeVersion
    channel: str
    given_at: datetime
    source_kind: str
    source_reference: str
    wording: str
    unticked_by_default: bool | None
    policy_version: str
    action: str = ConsentAction.GRANT
    status: str = ConsentStatus.PENDING
    # the person signs up again themselves (a suppressed address: no list, no guardian)
    actor: str = Actor.PERSON
    second_hand: bool = False
    collection_reference: str = ""
    uuid: None = None
    contact: None = None
    recorded_at: None = None
    previous_hash: None = None
    hash: None = None


@dataclass(frozen=True)
class SignupRequest:
    """What a signup link carries: the address, its language and the grants it asked for."""

    email: str
    nonce: str
    language: str
    grants: list[dict[str, Any]]


def signup_grant_prepare(
    *,
    email: str,
    purpose: Purpose,
    channel: str,
    source_kind: str,
    source_reference: str,
    evidence: Evidence,
    given_at: datetime | None = None,
) -> SignupGrant:
    """Check a grant for a suppressed address with no contact as the ledger would; store nothing."""
    given_at = given_at or timezone.now()
    consent_grant_check(
        purpose=purpose,
        channel=channel,
        source_kind=source_kind,
        evidence=evidence,
        given_at=given_at,
    )
    version = purpose.current_version
    assert version is not None  # consent_grant_check refuses a purpose without wording
    return SignupGrant(
        email=email,
        purpose=purpose,
        purpose_version=version,
        channel=channel,
        given_at=given_at,
        source_kind=source_kind,
        source_reference=source_reference[:500],
        wording=evidence.wording or version.wording,
        unticked_by_default=evidence.unticked_by_default,
        policy_version=evidence.policy_version,
    )


def signup_confirmation_queue(*, email: str, grants: list[SignupGrant], language: str = "") -> str:
    """After commit, email the address a link that records these grants once followed.

    The link is sent at most once a day per address (`suppressed_address_confirmation_claim`),
    however many requests arrive. Returns the signed token the link carries.
    """
    token = signed_token(
        salt=SIGNUP_SALT,
        data={
            "e": email,
            "n": secrets.token_hex(16),
            "l": language if language in Language.values else "",
            "g": [_grant_payload(grant) for grant in grants],
        },
    )

    def queue() -> None:
        from consent.tasks import send_signup_confirmation

        send_signup_confirmation.delay(token)

    transaction.on_commit(queue)
    return token


def _grant_payload(grant: SignupGrant) -> dict[str, Any]:
    return {
        "p": grant.purpose.slug,
        "c": grant.channel,
        "v": grant.purpose_version.number,
        "w": grant.wording,
        "k": grant.source_kind,
        "r": grant.source_reference,
        "u": grant.unticked_by_default,
        "pv": grant.policy_version,
    }


def signup_token_read(token: str) -> SignupRequest:
    """The request a signup link carries; raises BadSignature when forged or expired."""
    data = signed_token_read(salt=SIGNUP_SALT, token=token, max_age=settings.DOUBLE_OPT_IN_TTL)
    return SignupRequest(email=data["e"], nonce=data["n"], language=data["l"], grants=data["g"])


@dataclass(frozen=True)
class SignupItem:
    """One grant of a signup link, as shown to the person and recorded on confirmation."""

    purpose: Purpose
    channel: str
    wording: str
    source_reference: str
    unticked_by_default: bool | None
    policy_version: str

    @property
    def channel_label(self) -> str:
        return str(Channel(self.channel).label)


def signup_items(request: SignupRequest) -> list[SignupItem]:
    """The grants of a signup link that can still be confirmed: the purpose is active, uses the
    channel and still has the wording the person was shown."""
    slugs = {grant["p"] for grant in request.grants}
    purposes = {p.slug: p for p in purposes_with_versions().filter(slug__in=slugs, is_active=True)}
    items = []
    for grant in request.grants:
        purpose = purposes.get(grant["p"])
        if purpose is None:
            continue
        version = purpose.current_version
        if version is None or version.number != grant["v"] or grant["c"] not in purpose.channels:
            continue
        items.append(
            SignupItem(
                purpose=purpose,
                channel=grant["c"],
                wording=grant["w"],
                source_reference=grant["r"],
                unticked_by_default=grant["u"],
                policy_version=grant["pv"],
            )
        )
    return items


def signup_link_used(request: SignupRequest) -> bool:
    """Whether this signup link was already followed and confirmed (a link works once)."""
    return JobRun.objects.filter(job=SIGNUP_CONFIRMED_JOB, key=request.nonce).exists()


def signup_confirmation_send(*, token: str) -> bool:
    """Email the signup link to the address, unless one already went there today."""
    try:
        request = signup_token_read(token)
    except signing.BadSignature:
        return False
    items = signup_items(request)
    if not items:
        return False
    with transaction.atomic():
        if not suppressed_address_confirmation_claim(email=request.email):
            return False
        _send(request, items, site_url("preferences:confirm_signup", token))
    return True


def _send(request: SignupRequest, items: list[SignupItem], link: str) -> None:
    context = {
        "items": items,
        "link": link,
        "ttl_hours": int(settings.DOUBLE_OPT_IN_TTL.total_seconds() // 3600),
    }
    email_send(
        template="consent/email/signup",
        context=context,
        to=[request.email],
        language=request.language,
    )


def signup_confirm(
    *, request: SignupRequest, ip: str | None = None, user_agent: str = ""
) -> list[ConsentRecord]:
    """Record the grants of a followed signup link: lift the suppression, bring the person back.

    The person's own confirmed act (source `email_confirmation`); a link works once.
    """
    items = signup_items(request)
    if not items:
        return []
    try:
        with transaction.atomic():
            if not job_run_claim(job=SIGNUP_CONFIRMED_JOB, key=request.nonce):
                return []
            contact = _contact_back(request)
            return consents_record_many(
                writes=[_write(contact, item, ip=ip, user_agent=user_agent) for item in items]
            )
    except ValidationError:
        return []  # the address was taken by a contact that cannot consent (a race): nothing


def _contact_back(request: SignupRequest) -> Contact:
    contact = contacts_by_email(request.email).select_for_update().first()
    if contact is not None:
        return contact  # back already (an earlier link); the grants below lift what is left
    # Lifted before the contact exists, in the same transaction as the grants that prove it.
    suppression_lift(email=request.email)
    fields = {"language": request.language} if request.language else {}
    contact, _created = contact_upsert(email=request.email, fields=fields)
    return contact


def _write(contact: Contact, item: SignupItem, *, ip: str | None, user_agent: str) -> ConsentWrite:
    return ConsentWrite(
        contact=contact,
        purpose=item.purpose,
        channel=item.channel,
        action=ConsentAction.GRANT,
        source_kind=SourceKind.EMAIL_CONFIRMATION,
        source_reference=item.source_reference,
        evidence=Evidence(
            wording=item.wording,
            unticked_by_default=item.unticked_by_default,
            policy_version=item.policy_version,
            ip=ip,
            user_agent=user_agent,
        ),
    )
