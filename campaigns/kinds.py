"""What each kind of campaign targets and which rule lets a message go (SPEC §3 campaigns,
"Built-in kinds"): the sending path (`campaigns.sending`) is one, the rules differ by kind.

A regular campaign is marketing: its audience is its segment, and a message goes only where
the eligibility rule (`consent.eligibility`) finds no reason against it, in its two forms:
the reasons in SQL when a step's rows are written, the queryset for a batch at the moment of
sending, the per-contact explanation for the few who changed in between.

The built-in kinds (double opt-in confirmations keep their own path, `consent.services`):

- a **re-permission request** (`campaigns.repermission`) is marketing too: the regular rule,
  and reasons of its own after `erased` and `merged`: `deadline_passed` (for everyone, once
  its deadline has passed: its links are closed), `consent_documented` (the live grant is
  documented: nothing to ask) and `already_asked` (another request for the purpose asked
  them); those without a live grant keep the rule's reason (`no_consent`, ...). Each message
  carries the person's confirm link (`{{ confirm_url }}`).
- a **privacy policy update notice** and a **breach notification** (`campaigns.notices`) are
  not marketing but information the law requires (GDPR Art. 13/14, 34): they reach every
  contact of their audience whatever their marketing choices (consent, objection, pause,
  suppression list, frequency caps), with no unsubscribe header, no `MessageSent`, and
  "legal obligation" as the recorded basis. Only `erased`, `merged` and `undeliverable` (a
  hard-bounced address, no address or number) keep a message from leaving. Their campaign
  has no purpose; a breach notification targets the persons concerned.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Case, CharField, Exists, OuterRef, Q, QuerySet, Value, When

from campaigns.models import Campaign, CampaignKind, CampaignStep, Recipient
from campaigns.repermission import (
    asked_condition,
    confirm_url,
    repermission_open,
    repermission_reason_conditions,
    repermission_reasons,
    undocumented_grant_condition,
)
from campaigns.selectors import segment_contacts
from consent.eligibility import (
    GONE,
    Ineligible,
    channel_deliverable,
    contact_eligibility,
    eligible_contacts,
    first_reason_conditions,
    undeliverable_condition,
    with_pair_state,
)
from consent.models import LegalBasis, Purpose
from contacts.models import Contact

# The annotation holding the first reason against a contact ("" when there is none).
SKIP_REASON = "skip_reason"


def purpose_of(campaign: Campaign) -> Purpose:
    """The purpose of a campaign that has one (every kind but the notices)."""
    if campaign.purpose is None:
        raise ValueError(f"campaign {campaign.pk} ({campaign.kind}) has no purpose")
    return campaign.purpose


@dataclass(frozen=True)
class KindRules:
    """The rules of regular (marketing) campaigns; the built-in kinds override them."""

    # Marketing messages count towards the frequency caps (`MessageSent`), carry the
    # one-click unsubscribe headers and the SMS STOP instruction, and keep their legal basis.
    marketing: bool = True

    def audience(self, campaign: Campaign) -> QuerySet[Contact]:
        """Every contact the campaign considers, before any rule."""
        return segment_contacts(campaign.segment)

    def with_reason(
        self, campaign: Campaign, step: CampaignStep, contacts: QuerySet[Contact], at: datetime
    ) -> QuerySet[Contact]:
        """The contacts annotated with `SKIP_REASON`: the first reason, in the order of
        `consent.eligibility.Ineligible`, that keeps them from the step at `at`."""
        contacts = with_pair_state(contacts, purpose_of(campaign), step.channel)
        conditions = first_reason_conditions(purpose_of(campaign), step.channel, at)
        ordered = [(str(reason), condition) for reason, condition in conditions.items()]
        return contacts.annotate(**{SKIP_REASON: _first_reason(ordered)})

    def eligible_ids(
        self,
        campaign: Campaign,
        step: CampaignStep,
        contact_ids: Sequence[int],
        at: datetime,
        *,
        frequency: bool = True,
    ) -> set[int]:
        """Which of the contacts may receive the step's message at `at` (one query);
        `frequency=False` for a message already counted (`eligible_contacts`)."""
        contacts = Contact.objects.filter(pk__in=list(contact_ids))
        return _eligible_ids(campaign, step, contacts, at, frequency=frequency)

    def explain(
        self, campaign: Campaign, step: CampaignStep, contact: Contact, at: datetime
    ) -> list[str]:
        """Why the contact may not receive the step's message at `at`."""
        return contact_eligibility(contact, purpose_of(campaign), step.channel, at)

    def legal_basis(self, campaign: Campaign) -> str:
        """The legal basis a recipient row records: the purpose's."""
        return campaign.purpose.legal_basis if campaign.purpose is not None else ""

    def context(self, campaign: Campaign, row: Recipient, contact: Contact) -> dict[str, Any]:
        """What the step's content may use besides the personalisation, for this row."""
        return {}


def _eligible_ids(
    campaign: Campaign,
    step: CampaignStep,
    contacts: QuerySet[Contact],
    at: datetime,
    *,
    frequency: bool,
) -> set[int]:
    """The ids of `contacts` the eligibility rule lets the step reach at `at`."""
    eligible = eligible_contacts(
        purpose_of(campaign), step.channel, at, queryset=contacts, frequency=frequency, few=True
    )
    return set(eligible.values_list("pk", flat=True))


def _first_reason(conditions: Sequence[tuple[str, Q]]) -> Case:
    return Case(
        *[When(condition, then=Value(str(reason))) for reason, condition in conditions],
        default=Value(""),
        output_field=CharField(),
    )


@dataclass(frozen=True)
class RepermissionRules(KindRules):
    """A re-permission request: the regular rule, for those whose live grant is
    undocumented and whom no other request for the purpose asked (`campaigns.repermission`)."""

    def with_reason(
        self, campaign: Campaign, step: CampaignStep, contacts: QuerySet[Contact], at: datetime
    ) -> QuerySet[Contact]:
        contacts = with_pair_state(contacts, purpose_of(campaign), step.channel)
        regular = first_reason_conditions(purpose_of(campaign), step.channel, at)
        gone = [(str(reason), regular.pop(reason)) for reason in GONE.values()]
        own = list(repermission_reason_conditions(campaign, step.channel, at).items())
        ordered = gone + own + [(str(reason), q) for reason, q in regular.items()]
        return contacts.annotate(**{SKIP_REASON: _first_reason(ordered)})

    def eligible_ids(
        self,
        campaign: Campaign,
        step: CampaignStep,
        contact_ids: Sequence[int],
        at: datetime,
        *,
        frequency: bool = True,
    ) -> set[int]:
        if not repermission_open(campaign, at):
            return set()
        contacts = Contact.objects.filter(pk__in=list(contact_ids)).filter(
            undocumented_grant_condition(purpose_of(campaign), step.channel)
        )
        contacts = contacts.exclude(asked_condition(campaign))
        return _eligible_ids(campaign, step, contacts, at, frequency=frequency)

    def explain(
        self, campaign: Campaign, step: CampaignStep, contact: Contact, at: datetime
    ) -> list[str]:
        regular = contact_eligibility(contact, purpose_of(campaign), step.channel, at)
        if contact.status in GONE:
            return regular
        return repermission_reasons(campaign, contact, step.channel, at) + regular

    def context(self, campaign: Campaign, row: Recipient, contact: Contact) -> dict[str, Any]:
        return {"confirm_url": confirm_url(row, contact)}


@dataclass(frozen=True)
class NoticeRules(KindRules):
    """A notice the law requires (privacy policy update, breach notification): every contact
    of the audience the channel can reach, whatever their marketing choices."""

    marketing: bool = False

    def audience(self, campaign: Campaign) -> QuerySet[Contact]:
        """The segment's contacts; for a breach notification without a segment, the persons
        concerned."""
        if campaign.kind == CampaignKind.BREACH_NOTICE and campaign.segment_id is None:
            concerned = Campaign.concerned.through.objects.filter(
                campaign_id=campaign.pk, contact_id=OuterRef("pk")
            )
            return Contact.objects.filter(Exists(concerned))
        return segment_contacts(campaign.segment)

    def reasons(self, channel: str) -> list[tuple[str, Q]]:
        gone = [(str(reason), Q(status=status)) for status, reason in GONE.items()]
        return gone + [(str(Ineligible.UNDELIVERABLE), undeliverable_condition(channel))]

    def with_reason(
        self, campaign: Campaign, step: CampaignStep, contacts: QuerySet[Contact], at: datetime
    ) -> QuerySet[Contact]:
        return contacts.annotate(**{SKIP_REASON: _first_reason(self.reasons(step.channel))})

    def eligible_ids(
        self,
        campaign: Campaign,
        step: CampaignStep,
        contact_ids: Sequence[int],
        at: datetime,
        *,
        frequency: bool = True,
    ) -> set[int]:
        contacts = Contact.objects.filter(pk__in=list(contact_ids))
        for _reason, condition in self.reasons(step.channel):
            contacts = contacts.exclude(condition)
        return set(contacts.values_list("pk", flat=True))

    def explain(
        self, campaign: Campaign, step: CampaignStep, contact: Contact, at: datetime
    ) -> list[str]:
        if contact.status in GONE:
            return [GONE[contact.status]]
        return [] if channel_deliverable(contact, step.channel) else [Ineligible.UNDELIVERABLE]

    def legal_basis(self, campaign: Campaign) -> str:
        """Informing the persons is the controller's obligation (GDPR Art. 6(1)(c) with
        Art. 13/14 and 34)."""
        return LegalBasis.LEGAL_OBLIGATION


REGULAR = KindRules()
NOTICE = NoticeRules()
RULES: dict[str, KindRules] = {
    CampaignKind.REGULAR: REGULAR,
    CampaignKind.REPERMISSION: RepermissionRules(),
    CampaignKind.POLICY_UPDATE: NOTICE,
    CampaignKind.BREACH_NOTICE: NOTICE,
}


def kind_rules(campaign: Campaign) -> KindRules:
    return RULES.get(campaign.kind, REGULAR)
