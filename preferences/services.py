"""Writes from the preference center: links, consent choices, unsubscribe, confirmed actions.

Every consent change goes through `consent.services.consent_record` with the source
"preference center" and the visit's evidence; contact changes go through the contacts services.
"""

import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext as _

from campaigns.feedback import recipient_unsubscribed
from consent.models import (
    ConsentAction,
    ConsentRecord,
    LegalBasis,
    Purpose,
    SourceKind,
)
from consent.selectors import (
    contact_consent_states,
    privacy_notice_current,
    purposes_active,
    purposes_with_versions,
)
from consent.services import (
    MARKETING_BASES,
    Announcements,
    ConsentWrite,
    Evidence,
    consent_record,
    consents_withdraw_all,
)
from consent.status import LIVE_STATUSES, holds_usable_grant
from contacts.models import (
    Contact,
    SuppressionKind,
    SuppressionReason,
    TimelineKind,
)
from contacts.selectors import contact_find, suppression_reason
from contacts.services import (
    contact_marketing_objection_set,
    contact_profiling_objection_set,
    contact_update,
    email_change_check,
    suppression_add,
    suppressions_add_many,
    timeline_add,
)
from core.emails import email_send
from core.links import signed_token, signed_token_read, site_url
from core.tokens import token_hash
from crmsync.models import OutboxTopic
from preferences.models import PreferenceToken
from preferences.selectors import purposes_loaded, resubscribe_candidates, seen_stamp

SOURCE_REFERENCE = "preference-center"
PROFILING_OBJECTION_REFERENCE = "profiling-objection"
LINK_SALT = "preferences.action-link"


class LinkAction:
    """What a confirmation link sent by email lets the person do.

    An email change takes two links: EMAIL_CHANGE, to the address on file, approves it and
    sends NEW_EMAIL to the new address, which applies it. DOWNLOAD and ERASURE go to an
    address trusted with the person's data (`Contact.trusted_emails`).
    """

    EMAIL_CHANGE = "email_change"
    NEW_EMAIL = "new_email"
    DOWNLOAD = "download"
    ERASURE = "erasure"
    ALL = (EMAIL_CHANGE, NEW_EMAIL, DOWNLOAD, ERASURE)
    REQUESTABLE = (EMAIL_CHANGE, DOWNLOAD, ERASURE)  # what the center's forms ask for


@dataclass(frozen=True)
class Visit:
    """Who is at the page: the personal evidence every record from the center carries, and
    the digest of the preference link they came through (`link`, `core.tokens.token_hash`):
    an unsubscribe through the link a campaign message carried is attributed to it."""

    ip: str | None = None
    user_agent: str = ""
    link: str = ""

    def evidence(self, wording: str = "") -> Evidence:
        return Evidence(
            wording=wording,
            # the center never pre-ticks: a box the person ticks was shown unticked
            unticked_by_default=True if wording else None,
            policy_version=current_policy_version(),
            ip=self.ip or None,
            user_agent=self.user_agent,
        )


def current_policy_version() -> str:
    """The privacy notice version the recipient pages show (their footer links to it): the
    current stored version, else PRIVACY_POLICY_VERSION while none is stored."""
    notice = privacy_notice_current(cached=True)
    return notice.version if notice else settings.PRIVACY_POLICY_VERSION


def preference_token_issue(*, contact: Contact) -> str:
    """A new random preference token (256 bits) for the contact; only its hash is stored."""
    token = secrets.token_urlsafe(32)
    PreferenceToken.objects.create(contact=contact, digest=token_hash(token))
    return token


def preference_tokens_revoke(*, contact: Contact) -> int:
    """Revoke every live preference link of the contact (they were issued before now)."""
    return PreferenceToken.objects.filter(contact=contact, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )


def preference_link_renew(*, contact: Contact, by: str = "") -> None:
    """Revoke every preference link of the contact (a forwarded or leaked one) and email a
    new one to the person; whoever asked for it never sees it."""
    with transaction.atomic():
        preference_tokens_revoke(contact=contact)
        timeline_add(contact=contact, kind=TimelineKind.LINK_RENEWED, summary=by or "-")
        contact_id = contact.id
        transaction.on_commit(lambda: _queue_preference_link(contact_id))


def _queue_preference_link(contact_id: int) -> None:
    from preferences.tasks import send_preference_link

    send_preference_link.delay(contact_id)


def preference_link_send(*, contact_id: int) -> bool:
    """Issue a preference link and email it to the person, at an address trusted with their
    data (the token exists only in this email)."""
    contact = contact_find(pk=contact_id, with_erased=False)
    if contact is None:
        return False
    token = preference_token_issue(contact=contact)
    context = {
        "contact": contact,
        "link": preference_url(token),
        "unsubscribe": unsubscribe_url(token),
    }
    email_send(
        template="preferences/email/link",
        context=context,
        to=contact.trusted_emails(),
        reader=contact,
    )
    return True


def preference_url(token: str) -> str:
    return site_url("preferences:center", token)


def unsubscribe_url(token: str) -> str:
    return site_url("preferences:unsubscribe", token)


def preferences_consents_save(
    *,
    contact: Contact,
    wanted: set[tuple[str, str]],
    shown_versions: dict[str, int],
    seen: dict[tuple[str, str], str],
    visit: Visit,
) -> list[ConsentRecord]:
    """Apply the person's ticks: grant what they ticked, withdraw what they unticked.

    `wanted` holds the (purpose slug, channel) pairs ticked; `shown_versions` the wording
    version displayed per purpose; `seen` the stamp (`seen_stamp`) of every choice the page
    showed. Only the choices shown are considered, so a purpose added since the page loaded
    is left alone, and a choice that changed since (another window, a form, the API) is
    refused rather than overwritten. Only changes are written; nothing is written when one
    choice is invalid.
    """
    purposes = [
        p for p in purposes_active() if p.legal_basis in MARKETING_BASES and p.current_version
    ]
    states = {(s.purpose_id, s.channel): s for s in contact_consent_states(contact)}
    changes = []
    errors: dict[str, list[str]] = {}
    for purpose in purposes:
        for channel in purpose.channels:
            if (purpose.slug, channel) not in seen:  # not on the page the person sent
                if (purpose.slug, channel) in wanted:
                    errors[purpose.slug] = [
                        _("This purpose was added since the page was opened; read it, then save.")
                    ]
                continue
            state = states.get((purpose.id, channel))
            was_on = holds_usable_grant(contact, purpose, state)
            if ((purpose.slug, channel) in wanted) == was_on:
                continue
            if seen[(purpose.slug, channel)] != seen_stamp(state):
                errors[purpose.slug] = [
                    _("This choice changed since the page was opened; check it and save again.")
                ]
                continue
            action = ConsentAction.WITHDRAW if was_on else ConsentAction.GRANT
            if action == ConsentAction.GRANT:
                problem = _grant_problem(contact, purpose, shown_versions.get(purpose.slug))
                if problem:
                    errors[purpose.slug] = [problem]
            changes.append((purpose, channel, action))
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        records = [
            _record(contact, purpose, channel, action, visit)
            for purpose, channel, action in changes
        ]
        withdrawn = {
            purpose.pk for purpose, _ch, action in changes if action == ConsentAction.WITHDRAW
        }
        if withdrawn:
            # through a campaign message's link: the campaign of a purpose withdrawn counts it
            recipient_unsubscribed(contact=contact, link=visit.link, purposes=withdrawn)
        return records


def _grant_problem(contact: Contact, purpose: Purpose, shown_version: int | None) -> str:
    if purpose.is_profiling and contact.profiling_objected_at is not None:
        return _("You objected to profiling: withdraw your objection first.")
    current = purpose.current_version  # the page lists only purposes with a wording
    if current is None or shown_version != current.number:
        return _("The wording of this purpose changed while the page was open; read it again.")
    return ""


def _record(
    contact: Contact, purpose: Purpose, channel: str, action: str, visit: Visit
) -> ConsentRecord:
    version = purpose.current_version
    wording = version.wording if version is not None and action == ConsentAction.GRANT else ""
    return consent_record(
        write=ConsentWrite(
            contact=contact,
            purpose=purpose,
            channel=channel,
            action=action,
            source_kind=SourceKind.PREFERENCE_CENTER,
            source_reference=SOURCE_REFERENCE,
            evidence=visit.evidence(wording),
        )
    )


def preferences_unsubscribe_all(
    *, contact: Contact, visit: Visit, source_kind: str = SourceKind.PREFERENCE_CENTER
) -> list[ConsentRecord]:
    """Unsubscribe from all marketing at once (GDPR Art. 7(3), 21(2); RFC 8058 one click).

    Withdraws every consent, objects to every legitimate-interest purpose (those created later
    too: `contact_marketing_objection_set`) and puts the email on the suppression list.
    Repeating it writes nothing more.
    """
    purposes = purposes_loaded(legal_basis__in=MARKETING_BASES)  # with wordings, in one query
    # the withdrawals' timeline moments and outbox events, written with the unsubscribe's own
    announcements = Announcements()
    with transaction.atomic():
        # the contact is locked first, by the withdrawals, as for every consent write
        records = consents_withdraw_all(
            contact=contact,
            source_kind=source_kind,
            evidence=visit.evidence(),
            purposes=purposes,
            announcements=announcements,
        )
        # the CRMs learn of the objection from the unsubscribe event below
        objected = contact_marketing_objection_set(
            contact=contact, objected=True, source=source_kind, announce=False
        )
        if records or objected:
            # a first unsubscribe: list the address unless it is listed already (for a
            # bounce, say, which keeps its reason), without reading the list first
            suppressions_add_many(
                reason=SuppressionReason.GLOBAL_UNSUBSCRIBE,
                addresses=[(contact.email, "")],
                replace=False,
            )
        elif suppression_reason(kind=SuppressionKind.EMAIL, value=contact.email) is None:
            suppression_add(reason=SuppressionReason.GLOBAL_UNSUBSCRIBE, email=contact.email)
        else:
            return records  # unsubscribed already: nothing changed
        # through a campaign message's link: attributed to that campaign (one statement)
        recipient_unsubscribed(contact=contact, link=visit.link)
        withdrawn = [str(record.uuid) for record in records]
        announcements.timeline.append(
            {
                "contact_id": contact.pk,
                "kind": TimelineKind.UNSUBSCRIBED,
                "summary": source_kind,
                "data": {"records": withdrawn, "source": source_kind},
                "occurred_at": timezone.now(),
            }
        )
        announcements.outbox.append(
            (
                OutboxTopic.CONTACT_UNSUBSCRIBED,
                contact,
                {"source": source_kind, "marketing_objection": objected},
            )
        )
        announcements.write()
    return records


def preferences_resubscribe(*, contact: Contact, visit: Visit) -> list[ConsentRecord]:
    """Grant again what the last "unsubscribe from all" withdrew, with the current wording.

    The grants are the person's own new explicit consent, which lifts the suppression; the
    objection to legitimate-interest marketing is lifted with them.
    """
    with transaction.atomic():
        contact = Contact.objects.select_for_update().get(pk=contact.pk)
        records = [
            _record(contact, state.purpose, state.channel, ConsentAction.GRANT, visit)
            for state in resubscribe_candidates(contact)
        ]
        contact_marketing_objection_set(contact=contact, objected=False, source=SOURCE_REFERENCE)
        if records:
            timeline_add(
                contact=contact,
                kind=TimelineKind.RESUBSCRIBED,
                summary=", ".join(sorted({record.purpose.slug for record in records})),
                data={"records": [str(record.uuid) for record in records]},
            )
    return records


def preferences_profiling_objection_set(
    *, contact: Contact, objected: bool, visit: Visit
) -> list[ConsentRecord]:
    """Object to profiling (GDPR Art. 21), withdrawing every profiling purpose, or lift it.

    Lifting the objection restores the legitimate-interest profiling it had stopped; consent-
    based profiling stays off until the person ticks it again.
    """
    with transaction.atomic():
        if not contact_profiling_objection_set(
            contact=contact, objected=objected, source=SOURCE_REFERENCE
        ):
            return []
        profiling = purposes_with_versions().filter(
            is_profiling=True, legal_basis__in=MARKETING_BASES
        )
        if objected:
            return consents_withdraw_all(
                contact=contact,
                source_kind=SourceKind.PREFERENCE_CENTER,
                source_reference=PROFILING_OBJECTION_REFERENCE,
                evidence=visit.evidence(),
                purposes=profiling,
            )
        return _restore_legitimate_interest_profiling(contact, profiling, visit)


def _restore_legitimate_interest_profiling(
    contact: Contact, profiling: object, visit: Visit
) -> list[ConsentRecord]:
    restored = []
    states = contact_consent_states(contact).filter(
        purpose__in=profiling,
        purpose__legal_basis=LegalBasis.LEGITIMATE_INTERESTS,
        purpose__is_active=True,
        record__source_reference=PROFILING_OBJECTION_REFERENCE,
    )
    for state in states.exclude(status__in=LIVE_STATUSES):
        if state.channel in state.purpose.channels:
            restored.append(
                _record(contact, state.purpose, state.channel, ConsentAction.GRANT, visit)
            )
    return restored


def action_link_request(*, contact: Contact, action: str, new_email: str = "") -> None:
    """Email a signed, time-limited link confirming an email change (first to the address on
    file), a data download or an erasure request (to an address trusted with the data)."""
    if action not in LinkAction.REQUESTABLE:
        raise ValidationError({"action": [_("Not a valid choice.")]})
    if action == LinkAction.EMAIL_CHANGE:
        new_email = _checked_new_email(contact, new_email)
    transaction.on_commit(lambda: _queue_action_link(contact.id, action, new_email))


def _link_recipients(contact: Contact, action: str, new_email: str) -> list[str]:
    if action == LinkAction.EMAIL_CHANGE:
        return [contact.email]  # the change is approved from the address on file first
    if action == LinkAction.NEW_EMAIL:
        return [new_email]
    return contact.trusted_emails()


def _queue_action_link(contact_id: int, action: str, new_email: str) -> None:
    from preferences.tasks import send_action_link

    send_action_link.delay(contact_id, action, new_email)


def _checked_new_email(contact: Contact, raw_email: str) -> str:
    email = email_change_check(contact=contact, raw_email=raw_email)
    if email is None:
        raise ValidationError({"email": [_("This is already your email address.")]})
    return email


def action_link_send(*, contact_id: int, action: str, new_email: str = "") -> bool:
    """Send a confirmation link of `action_link_request` (or the second link of an email
    change), in the contact's language."""
    contact = contact_find(pk=contact_id, with_erased=False)
    if contact is None or action not in LinkAction.ALL:
        return False
    recipients = _link_recipients(contact, action, new_email)
    token = signed_token(
        salt=LINK_SALT,
        data={
            "c": str(contact.public_id),
            "a": action,
            "e": new_email,
            "m": _address_mark(contact.email),
        },
    )
    context = {
        "contact": contact,
        "action": action,
        "link": site_url("preferences:action", token),
        "new_email": new_email,
        "to_previous": recipients != [contact.email] and action != LinkAction.NEW_EMAIL,
        "ttl_hours": int(settings.PREFERENCES_LINK_TTL.total_seconds() // 3600),
    }
    email_send(template="preferences/email/action", context=context, to=recipients, reader=contact)
    timeline_add(
        contact=contact,
        kind=TimelineKind.CONFIRMATION_SENT,
        summary=action,
        data={"action": action},
    )
    return True


def action_link_read(token: str) -> tuple[Contact, str, str]:
    """The contact, action and new email of a confirmation link; raises BadSignature."""
    data = signed_token_read(salt=LINK_SALT, token=token, max_age=settings.PREFERENCES_LINK_TTL)
    contact = contact_find(public_id=data.get("c", ""), with_erased=False)
    if contact is None or data.get("a") not in LinkAction.ALL:
        raise signing.BadSignature("unknown contact or action")
    # A link belongs to the address on file when it was sent: after an email change, links sent
    # before are dead (an older email-change link cannot switch back, an old download link
    # cannot be used). The applied new-address link itself stays harmless to follow again.
    new_email = data.get("e", "")
    current = _address_mark(contact.email)
    followed_again = data.get("a") == LinkAction.NEW_EMAIL and _address_mark(new_email) == current
    if data.get("m") != current and not followed_again:
        raise signing.BadSignature("sent for another address")
    return contact, data["a"], new_email


def _address_mark(email: str) -> str:
    return salted_hmac(LINK_SALT, email).hexdigest()[:32]


def email_change_approve(*, contact: Contact, new_email: str) -> None:
    """The address on file approved the change: send the link that applies it to the new one."""
    new_email = _checked_new_email(contact, new_email)  # taken or suppressed in the meantime?
    transaction.on_commit(lambda: _queue_action_link(contact.id, LinkAction.NEW_EMAIL, new_email))


def email_change_confirm(*, contact: Contact, new_email: str) -> str | None:
    """Switch to the new address, confirmed from both mailboxes; revoke every preference link
    issued before and tell the old address. Answers a new preference link, or None when the
    change was already made (the link followed twice)."""
    if contact.email == new_email:
        return None
    with transaction.atomic():
        old_email = contact.email
        contact = contact_update(contact=contact, email=new_email)
        preference_tokens_revoke(contact=contact)
        token = preference_token_issue(contact=contact)
        transaction.on_commit(lambda: _queue_email_changed_notice(contact.id, old_email))
    return token


def _queue_email_changed_notice(contact_id: int, old_email: str) -> None:
    from preferences.tasks import send_email_changed_notice

    send_email_changed_notice.delay(contact_id, old_email)


def email_changed_notice_send(*, contact_id: int, old_email: str) -> bool:
    """Tell the replaced address that the contact's address changed, with whom to contact if
    it was not the person; no link (nothing in it can act on the person's choices)."""
    contact = contact_find(pk=contact_id, with_erased=False)
    if contact is None or contact.email == old_email:
        return False
    context = {
        "contact": contact,
        "old_email": old_email,
        "new_email": _masked(contact.email),
        "changed_at": timezone.localtime(contact.email_changed_at or timezone.now()),
        "controller": settings.CONTROLLER_NAME,
        "controller_contact": settings.DPO_CONTACT,
    }
    email_send(
        template="preferences/email/email_changed",
        context=context,
        to=[old_email],
        reader=contact,
    )
    return True


def _masked(email: str) -> str:
    """c•••@example.fr: enough for the person to recognise, little for anyone else."""
    local, _at, domain = email.partition("@")
    return f"{local[:1]}•••@{domain}"


def personal_data_downloaded(*, contact: Contact, format: str) -> None:
    """Remember that the person downloaded their data (GDPR Art. 15, 20)."""
    timeline_add(contact=contact, kind=TimelineKind.DATA_EXPORTED, summary=format)
