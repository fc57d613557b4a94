"""What each kind of campaign targets and which rule lets a message go (SPEC §3 campaigns,
"Built-in kinds"): the sending path (`campaigns.sending`) is one, the rules differ by kind.

A regular campaign is marketing: its audience is its segment, and a message goes only where
the eligibility rule (`consent.eligibility`) finds no reason against it, in its two forms:
the reasons in SQL when a step's rows are written, the queryset for a batch at the moment of
sending, the per-contact explanation for the few who changed in between.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Case, CharField, QuerySet, Value, When

from campaigns.models import Campaign, CampaignKind, CampaignStep
from campaigns.selectors import segment_contacts
from consent.eligibility import (
    contact_eligibility,
    eligible_contacts,
    reason_conditions,
    with_pair_state,
)
from contacts.models import Contact

# The annotation holding the first reason against a contact ("" when there is none).
SKIP_REASON = "skip_reason"


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
        contacts = with_pair_state(contacts, campaign.purpose, step.channel)
        conditions = reason_conditions(campaign.purpose, step.channel, at)
        return contacts.annotate(
            **{
                SKIP_REASON: Case(
                    *[
                        When(condition, then=Value(str(reason)))
                        for reason, condition in conditions.items()
                    ],
                    default=Value(""),
                    output_field=CharField(),
                )
            }
        )

    def eligible_ids(
        self, campaign: Campaign, step: CampaignStep, contact_ids: Sequence[int], at: datetime
    ) -> set[int]:
        """Which of the contacts may receive the step's message at `at` (one query)."""
        contacts = Contact.objects.filter(pk__in=list(contact_ids))
        eligible = eligible_contacts(campaign.purpose, step.channel, at, queryset=contacts)
        return set(eligible.values_list("pk", flat=True))

    def explain(
        self, campaign: Campaign, step: CampaignStep, contact: Contact, at: datetime
    ) -> list[str]:
        """Why the contact may not receive the step's message at `at`."""
        return contact_eligibility(contact, campaign.purpose, step.channel, at)


REGULAR = KindRules()
RULES: dict[str, KindRules] = {CampaignKind.REGULAR: REGULAR}


def kind_rules(campaign: Campaign) -> KindRules:
    return RULES.get(campaign.kind, REGULAR)
