"""The notices the law requires (SPEC §3 campaigns, "Built-in kinds"): a privacy policy update
and a breach notification to the persons concerned. Who they reach is `campaigns.kinds`'s
`NoticeRules`; this module makes the campaigns.

Neither is marketing. A privacy policy update tells the persons what GDPR Art. 13/14 require
them to know, and a breach notification is the controller's duty of Art. 34 when a breach is
likely to result in a high risk to them: both reach every contact of their audience whatever
their marketing choices (a withdrawn consent, an objection, the suppression list of
unsubscribed addresses, a pause, the frequency caps), since those choices are about marketing.
They carry no List-Unsubscribe header (there is nothing to unsubscribe from), count no
`MessageSent` (exempt from the caps, SPEC §4), and record "legal obligation" (Art. 6(1)(c)) as
the basis of each message. What still keeps a message from leaving: an erased or merged
contact, and a channel that cannot reach the person (a hard-bounced address, no address):
sending there again would harm the sender's reputation and reach nobody.

A notice campaign has no purpose (the footer of its messages names none) and its content is
built-in, in French and English, from the templates under `templates/campaigns/kinds/`; it
stays editable in the admin until the campaign is sent.
"""

from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from campaigns.models import Campaign, CampaignKind, Segment, StepChannel
from campaigns.repermission import kind_content, template_literal
from campaigns.services import campaign_create
from consent.models import PrivacyNotice
from consent.selectors import privacy_notice_current
from contacts.models import Language
from core.errors import StructuredValidationError

# Persons concerned written per statement.
CONCERNED_CHUNK = 5000
# A text in French and English ({"fr": ..., "en": ...}; English falls back to French), or
# one text for both.
Localized = str | Mapping[str, str]


def _in(text: Localized, language: str) -> str:
    if isinstance(text, str):
        return text
    return (text.get(language) or "").strip() or (text.get(Language.FRENCH) or "").strip()


def policy_update_campaign_create(
    *,
    notice: PrivacyNotice | None = None,
    summary: Localized = "",
    segment: Segment | None = None,
    name: str = "",
    created_by: User | None = None,
) -> Campaign:
    """A draft notice of the current privacy notice (or `notice`) to every contact of the
    segment (everyone, without one): its version, its publication date, what changed
    (`summary`, optional) and the link to it."""
    notice = notice or privacy_notice_current()
    if notice is None:
        raise StructuredValidationError(
            {"notice": [_("Publish the privacy notice first: there is none yet.")]}
        )
    contexts: dict[str, dict[str, Any]] = {}
    for language in (Language.FRENCH, Language.ENGLISH):
        with translation.override(language):
            contexts[language] = {
                "version": template_literal(notice.version),
                "published": date_format(timezone.localtime(notice.published_at), "DATE_FORMAT"),
                "url": template_literal(notice.url),
                "summary": template_literal(_in(summary, language)),
                "controller": template_literal(settings.CONTROLLER_NAME),
                "dpo": template_literal(settings.DPO_CONTACT),
            }
    step = {"channel": StepChannel.EMAIL, **kind_content(CampaignKind.POLICY_UPDATE, contexts)}
    return campaign_create(
        name=name or _("Privacy notice update: %(version)s") % {"version": notice.version},
        purpose=None,
        steps=[step],
        segment=segment,
        kind=CampaignKind.POLICY_UPDATE,
        created_by=created_by,
    )


@transaction.atomic
def breach_notice_campaign_create(
    *,
    contacts: Iterable[int] | None = None,
    segment: Segment | None = None,
    nature: Localized,
    consequences: Localized,
    measures: Localized,
    name: str = "",
    created_by: User | None = None,
) -> Campaign:
    """A draft breach notification (GDPR Art. 34) to the persons concerned, given as contact
    ids or as a segment (one of them): in clear and plain language, the nature of the breach,
    the DPO's contact, its likely consequences and the measures taken or proposed (Art. 34(2),
    33(3)(b)-(d)). The breach register calls it."""
    errors: dict[str, list[str]] = {}
    if (contacts is None) == (segment is None):
        errors["contacts"] = [_("Give the persons concerned or a segment, one of them.")]
    for field, text in (("nature", nature), ("consequences", consequences), ("measures", measures)):
        if not _in(text, Language.FRENCH).strip():
            errors[field] = [_("This field may not be blank.")]
    if errors:
        raise StructuredValidationError(errors)
    contexts: dict[str, dict[str, Any]] = {}
    for language in (Language.FRENCH, Language.ENGLISH):
        contexts[language] = {
            "nature": template_literal(_in(nature, language)),
            "consequences": template_literal(_in(consequences, language)),
            "measures": template_literal(_in(measures, language)),
            "controller": template_literal(settings.CONTROLLER_NAME),
            "dpo": template_literal(settings.DPO_CONTACT),
        }
    step = {"channel": StepChannel.EMAIL, **kind_content(CampaignKind.BREACH_NOTICE, contexts)}
    campaign = campaign_create(
        name=name or _("Breach notification"),
        purpose=None,
        steps=[step],
        segment=segment,
        kind=CampaignKind.BREACH_NOTICE,
        created_by=created_by,
    )
    if contacts is not None:
        _concerned_add(campaign, contacts)
    return campaign


def _concerned_add(campaign: Campaign, contact_ids: Iterable[int]) -> None:
    through = Campaign.concerned.through
    chunk: list[Any] = []
    for contact_id in sorted(set(contact_ids)):
        chunk.append(through(campaign_id=campaign.pk, contact_id=contact_id))
        if len(chunk) >= CONCERNED_CHUNK:
            through.objects.bulk_create(chunk, ignore_conflicts=True)
            chunk = []
    if chunk:
        through.objects.bulk_create(chunk, ignore_conflicts=True)
