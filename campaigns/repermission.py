"""Re-permission (SPEC §3 campaigns, "Built-in kinds"): the contacts whose consent to a purpose
is live but not documented get one request; those who do not confirm by the deadline lose the
purpose, recorded in the ledger.

**Documented consent.** A live grant (the contact's state for the purpose and channel is
`granted`) is *undocumented* when the ledger record behind it proves nothing we hold
ourselves (GDPR Art. 7(1): the controller must be able to demonstrate consent):

1. it is second-hand: `second_hand`, or from an import or a CRM, which relay a consent given
   elsewhere (their records before hash version 3 carry no `second_hand` flag, hence the
   source kinds): we hold a declaration, the proof is someone else's;
2. it was written by an automatic job (`system`), which is no one's consent;
3. it is a staff entry (`admin`) with nothing from the person attached (no signed document,
   no IP or user agent: `evidence_digest` empty): a claim of ours, not a proof;
4. it comes from a form or the API without stating that the box was unticked by default
   (`unticked_by_default` not true: records from before the write path required it; a
   pre-ticked box is no consent, CJEU Planet49, C-673/17);
5. it carries no wording shown (legacy records: the write path now stores the version's
   wording when none is given), unless it is a confirmation (the person clicked the link
   emailed to their address: the double opt-in or this request itself) or a paper form with
   its signed document (the wording is on the paper).

A merge carries the origin's wording and second-hand flag, so it counts as its origin.
The rule is written once per form: `undocumented_record_condition` (SQL, over a record or a
relation to one) and `record_undocumented` (one record); a test proves they agree.

**The request.** Marketing in its own right (the ICO fined Honda and Flybe in 2017 for emails
asking people to update their marketing choices): it goes only to those the regular rule lets
a message reach (so never to someone who withdrew or was suppressed), counts towards the
frequency caps, carries the one-click unsubscribe, and keeps the grant it was sent under as its
proof. Someone a cap holds back is not asked this time and keeps their state: a later request
asks them. Each person is asked once per purpose: a second request skips those another one
sent (`already_asked`). Each message carries a confirm link signed for its recipient row
(`core.links.signed_token`, as the double opt-in's): its page shows the purpose's wording and
one button, whose POST records a fresh grant through the one write path with the wording
shown, the privacy notice version, the IP and user agent and the campaign as reference.

**The deadline.** From the deadline the link is closed; a beat job (`apply-repermission-
deadlines`) withdraws, in batches and through the one write path (source `system`, the
campaign as reference), the purpose on the request's channel from each person it was sent to
whose grant is still undocumented: a confirmation, a new grant from a form or the preference
center, or a withdrawal in the meantime leaves them alone. A withdrawal, not an expiry: the
ledger's `expire` settles a pending double opt-in only, and the state the person loses here is
a grant.
"""

import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from campaigns.models import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    CampaignStep,
    Recipient,
    RecipientStatus,
    Segment,
    StepChannel,
)
from campaigns.services import campaign_create
from consent.models import (
    Actor,
    ConsentAction,
    ConsentRecord,
    ConsentState,
    ConsentStatus,
    Purpose,
    SourceKind,
)
from consent.selectors import privacy_notice_current
from consent.services import ConsentWrite, Evidence, consent_record, consents_record_many
from consent.status import NOBODY
from contacts.models import Contact, ContactStatus, Language
from core.errors import StructuredValidationError
from core.links import signed_token, signed_token_read, site_url


class RepermissionReason(StrEnum):
    """Why a re-permission request skips a contact, besides the eligibility rule's reasons."""

    DEADLINE_PASSED = "deadline_passed"
    CONSENT_DOCUMENTED = "consent_documented"
    ALREADY_ASKED = "already_asked"


# Sources whose records are never our own proof (1 and 2 of the module docstring), and those
# that must state the unticked box (4).
UNDOCUMENTED_SOURCES = (SourceKind.IMPORT, SourceKind.CRM, SourceKind.SYSTEM)
BOX_SOURCES = (SourceKind.WEB_FORM, SourceKind.API)
# What a confirm link is signed for, and how long it may live at most (the deadline, checked
# on each click, closes it earlier).
LINK_SALT = "campaigns.repermission"
LINK_MAX_AGE = timedelta(days=366)
# The ledger reference of what a request writes: the confirmations and the withdrawals.
REFERENCE = "repermission:%(campaign)s"
BATCH_SIZE = 500


# --- the rule: documented consent ---------------------------------------------------------


def undocumented_record_condition(prefix: str = "") -> Q:
    """Records (or, with `prefix` such as "record__", a relation to one) that do not document
    a consent (the module docstring's definition)."""

    def q(**lookups: Any) -> Q:
        return Q(**{prefix + name: value for name, value in lookups.items()})

    paper_with_document = q(source_kind=SourceKind.PAPER_FORM) & ~q(evidence_digest="")
    return (
        q(second_hand=True)
        | q(source_kind__in=UNDOCUMENTED_SOURCES)
        | q(source_kind=SourceKind.ADMIN, evidence_digest="")
        | (q(source_kind__in=BOX_SOURCES) & ~q(unticked_by_default=True))
        | (~q(action=ConsentAction.CONFIRM) & q(wording="") & ~paper_with_document)
    )


def record_undocumented(record: ConsentRecord) -> bool:
    """`undocumented_record_condition` for one record."""
    source = record.source_kind
    if record.second_hand or source in UNDOCUMENTED_SOURCES:
        return True
    if source == SourceKind.ADMIN and not record.evidence_digest:
        return True
    if source in BOX_SOURCES and record.unticked_by_default is not True:
        return True
    paper_with_document = source == SourceKind.PAPER_FORM and bool(record.evidence_digest)
    return record.action != ConsentAction.CONFIRM and not record.wording and not paper_with_document


def undocumented_grant_condition(purpose: Purpose, channel: str) -> Q:
    """Contacts whose live grant for (purpose, channel) is undocumented, in SQL."""
    states = ConsentState.objects.filter(
        undocumented_record_condition("record__"),
        contact=OuterRef("pk"),
        purpose=purpose,
        channel=channel,
        status=ConsentStatus.GRANTED,
    )
    return Q(Exists(states))


def documented_grant_condition(purpose: Purpose, channel: str) -> Q:
    """Contacts whose live grant for (purpose, channel) is documented, in SQL."""
    states = ConsentState.objects.filter(
        contact=OuterRef("pk"), purpose=purpose, channel=channel, status=ConsentStatus.GRANTED
    ).exclude(undocumented_record_condition("record__"))
    return Q(Exists(states))


def grant_state(contact: Contact, purpose: Purpose, channel: str) -> ConsentState | None:
    """The contact's live grant for the pair, if any."""
    return (
        ConsentState.objects.filter(
            contact=contact, purpose=purpose, channel=channel, status=ConsentStatus.GRANTED
        )
        .select_related("record")
        .first()
    )


def grant_undocumented(contact: Contact, purpose: Purpose, channel: str) -> bool | None:
    """Whether the contact's live grant for the pair is undocumented; None without one."""
    state = grant_state(contact, purpose, channel)
    return None if state is None else record_undocumented(state.record)


def asked_condition(campaign: Campaign) -> Q:
    """Contacts another re-permission request for the same purpose reached or is about to
    reach (sent, or queued in a campaign still sending), in SQL."""
    return Q(Exists(_asked_rows(campaign).filter(contact=OuterRef("pk"))))


def asked_before(contact: Contact, campaign: Campaign) -> bool:
    """`asked_condition` for one contact."""
    return _asked_rows(campaign).filter(contact=contact).exists()


def _asked_rows(campaign: Campaign) -> Any:
    return Recipient.objects.filter(
        (Q(sent_at__isnull=False) & ~Q(status=RecipientStatus.SENDING))
        | Q(
            status__in=[RecipientStatus.QUEUED, RecipientStatus.SENDING],
            campaign__status__in=[CampaignStatus.SCHEDULED, CampaignStatus.SENDING],
        ),
        campaign__kind=CampaignKind.REPERMISSION,
        campaign__purpose=campaign.purpose,
    ).exclude(campaign_id=campaign.pk)


def repermission_reason_conditions(campaign: Campaign, channel: str, at: datetime) -> dict[str, Q]:
    """The request's own reasons in SQL, in the order an explanation lists them: a request
    whose deadline has passed sends nothing more (its links would be closed)."""
    assert campaign.purpose is not None
    return {
        RepermissionReason.DEADLINE_PASSED: (
            NOBODY if repermission_open(campaign, at) else Q(pk__isnull=False)
        ),
        RepermissionReason.CONSENT_DOCUMENTED: documented_grant_condition(
            campaign.purpose, channel
        ),
        RepermissionReason.ALREADY_ASKED: asked_condition(campaign),
    }


def repermission_reasons(
    campaign: Campaign, contact: Contact, channel: str, at: datetime
) -> list[str]:
    """`repermission_reason_conditions` for one contact."""
    assert campaign.purpose is not None
    reasons: list[str] = []
    if not repermission_open(campaign, at):
        reasons.append(RepermissionReason.DEADLINE_PASSED)
    if grant_undocumented(contact, campaign.purpose, channel) is False:
        reasons.append(RepermissionReason.CONSENT_DOCUMENTED)
    if asked_before(contact, campaign):
        reasons.append(RepermissionReason.ALREADY_ASKED)
    return reasons


# --- the campaign ---------------------------------------------------------------------------


def template_literal(text: str) -> str:
    """`text` as literal text of a step's content, which is rendered as a template at sending
    (its braces would otherwise be template syntax)."""
    tags = {"{": "{% templatetag openbrace %}", "}": "{% templatetag closebrace %}"}
    return re.sub(r"[{}]", lambda match: tags[match.group()], text)


def kind_content(kind: str, context_by_language: dict[str, dict[str, Any]]) -> dict[str, str]:
    """A built-in kind's step content in French and English, from its templates
    (`templates/campaigns/kinds/<kind>/{subject,body}.<language>.{txt,html}`) with the
    values each language gets; what the message personalises stays a placeholder."""
    fields: dict[str, str] = {}
    for language in (Language.FRENCH, Language.ENGLISH):
        context = context_by_language[language]
        with translation.override(language):
            for field, extension in (
                ("subject", "txt"),
                ("body_text", "txt"),
                ("body_html", "html"),
            ):
                name = f"campaigns/kinds/{kind}/{field}.{language}.{extension}"
                fields[f"{field}_{language}"] = render_to_string(name, context).strip()
    limit = CampaignStep._meta.get_field("subject_fr").max_length or 200
    for language in (Language.FRENCH, Language.ENGLISH):
        fields[f"subject_{language}"] = " ".join(fields[f"subject_{language}"].split())[:limit]
    return fields


def repermission_campaign_create(
    *,
    purpose: Purpose,
    deadline: datetime,
    segment: Segment | None = None,
    name: str = "",
    channel: str = StepChannel.EMAIL,
    created_by: User | None = None,
    now: datetime | None = None,
) -> Campaign:
    """A draft re-permission request for `purpose` on `channel` (email by default) to the
    segment's contacts (everyone's, without one), with its built-in French and English content
    (editable until it is sent): the purpose, the deadline and a confirm link per person."""
    now = now or timezone.now()
    errors: dict[str, list[str]] = {}
    if deadline <= now:
        errors["deadline"] = [_("The deadline must be in the future.")]
    elif deadline > now + LINK_MAX_AGE:
        errors["deadline"] = [_("The deadline must be within a year.")]
    if channel != StepChannel.EMAIL:
        errors["channel"] = [_("A re-permission request is sent by email.")]
    if errors:
        raise StructuredValidationError(errors)
    contexts: dict[str, dict[str, Any]] = {}
    for language in (Language.FRENCH, Language.ENGLISH):
        with translation.override(language):
            contexts[language] = {
                "purpose": template_literal(
                    getattr(purpose, f"name_{language}") or purpose.name_fr
                ),
                "deadline": date_format(timezone.localtime(deadline), "DATE_FORMAT"),
                "controller": template_literal(settings.CONTROLLER_NAME),
            }
    step = {"channel": channel, **kind_content(CampaignKind.REPERMISSION, contexts)}
    with transaction.atomic():
        campaign = campaign_create(
            name=name or _("Re-permission: %(purpose)s") % {"purpose": purpose.name},
            purpose=purpose,
            steps=[step],
            segment=segment,
            kind=CampaignKind.REPERMISSION,
            created_by=created_by,
        )
        campaign.deadline = deadline
        campaign.save(update_fields=["deadline", "updated_at"])
    return campaign


# --- the confirm link -----------------------------------------------------------------------


def confirm_url(row: Recipient, contact: Contact) -> str:
    """The confirm link of one request (a message's `{{ confirm_url }}`)."""
    token = signed_token(salt=LINK_SALT, data={"r": row.pk, "c": str(contact.public_id)})
    return site_url("preferences:confirm_repermission", token)


def repermission_token_read(token: str) -> Recipient:
    """The request a confirm link names, with its campaign, step and contact; raises
    `BadSignature` when the link is forged, too old, or names no request of a live contact."""
    data = signed_token_read(salt=LINK_SALT, token=token, max_age=LINK_MAX_AGE)
    row = (
        Recipient.objects.select_related("campaign__purpose", "step", "contact")
        .filter(
            pk=data.get("r"),
            contact__public_id=data.get("c"),
            contact__status=ContactStatus.ACTIVE,
            campaign__kind=CampaignKind.REPERMISSION,
        )
        .first()
    )
    if row is None:
        raise signing.BadSignature("unknown request")
    return row


def repermission_open(campaign: Campaign, now: datetime | None = None) -> bool:
    """Whether the request's confirm links still work: until its deadline."""
    deadline = campaign.deadline
    return deadline is not None and (now or timezone.now()) < deadline


def repermission_wording(row: Recipient, language: str) -> str:
    """The purpose's current wording in `language`, as the confirm page shows it."""
    purpose = row.campaign.purpose
    version = purpose.current_version if purpose is not None else None
    if version is None:
        return ""
    return (version.wording_en if language == Language.ENGLISH else "") or version.wording_fr


def repermission_confirm(
    *,
    row: Recipient,
    language: str,
    ip: str | None = None,
    user_agent: str = "",
    now: datetime | None = None,
) -> ConsentRecord | None:
    """The person confirmed their consent from the request's link: a fresh grant through the
    one write path, with the wording shown (in `language`, the page's), the privacy notice
    version, the IP and user agent, and the campaign as reference. None when a documented
    grant stands already (the link followed twice). Refused once the deadline has passed."""
    campaign, contact, channel = row.campaign, row.contact, row.step.channel
    if not repermission_open(campaign, now):
        raise ValidationError(_("The deadline of this request has passed."))
    purpose = campaign.purpose
    assert purpose is not None
    if grant_undocumented(contact, purpose, channel) is False:
        return None
    notice = privacy_notice_current()
    write = ConsentWrite(
        contact=contact,
        purpose=purpose,
        channel=channel,
        action=ConsentAction.GRANT,
        source_kind=SourceKind.EMAIL_CONFIRMATION,
        source_reference=REFERENCE % {"campaign": campaign.public_id},
        evidence=Evidence(
            wording=repermission_wording(row, language),
            policy_version=notice.version if notice is not None else "",
            ip=ip,
            user_agent=user_agent,
        ),
        actor=Actor.PERSON,
    )
    with translation.override(language):
        return consent_record(write=write)


# --- the deadline ---------------------------------------------------------------------------


def repermission_deadlines_apply(
    *, now: datetime | None = None, batch_size: int = BATCH_SIZE
) -> int:
    """Apply the deadline of every request whose deadline has passed and whose sending is
    over (beat, `apply-repermission-deadlines`); answers how many consents were withdrawn.
    Safe to run twice, and at once: each batch decides under the contacts' lock."""
    now = now or timezone.now()
    due = Campaign.objects.filter(
        kind=CampaignKind.REPERMISSION,
        deadline__lte=now,
        deadline_applied_at__isnull=True,
        status__in=[CampaignStatus.SENT, CampaignStatus.CANCELLED],
    ).select_related("purpose")
    withdrawn = 0
    for campaign in due:
        withdrawn += repermission_deadline_apply(campaign=campaign, batch_size=batch_size)
        Campaign.objects.filter(pk=campaign.pk).update(deadline_applied_at=now)
    return withdrawn


def repermission_deadline_apply(*, campaign: Campaign, batch_size: int = BATCH_SIZE) -> int:
    """Withdraw the purpose from those the request was sent to who did not confirm: whose
    grant on the request's channel is still undocumented. Pages through the recipients by
    contact id, a batch at a time."""
    purpose = campaign.purpose
    assert purpose is not None
    withdrawn = 0
    channels = sorted(set(campaign.steps.values_list("channel", flat=True)))
    for channel in channels:
        asked = (
            Recipient.objects.filter(
                campaign=campaign, step__channel=channel, sent_at__isnull=False
            )
            .exclude(status=RecipientStatus.SENDING)
            .order_by("contact_id")
        )
        last = 0
        while True:
            page = list(
                asked.filter(contact_id__gt=last).values_list("contact_id", flat=True)[:batch_size]
            )
            if not page:
                break
            withdrawn += _withdraw_batch(campaign, purpose, channel, page)
            last = page[-1]
    return withdrawn


def _withdraw_batch(
    campaign: Campaign, purpose: Purpose, channel: str, contact_ids: Iterable[int]
) -> int:
    with transaction.atomic():
        # the write path's lock, taken first (same order: by id), so that what is decided
        # here still holds when the withdrawals are written
        ids = list(
            Contact.objects.select_for_update()
            .filter(pk__in=list(contact_ids))
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        lapsed = (
            Contact.objects.filter(pk__in=ids)
            .exclude(status=ContactStatus.ERASED)  # nothing is live any more, nor writable
            .filter(undocumented_grant_condition(purpose, channel))
        )
        writes = [
            ConsentWrite(
                contact=contact,
                purpose=purpose,
                channel=channel,
                action=ConsentAction.WITHDRAW,
                source_kind=SourceKind.SYSTEM,
                source_reference=REFERENCE % {"campaign": campaign.public_id},
            )
            for contact in lapsed.order_by("pk")
        ]
        return len(consents_record_many(writes=writes))
