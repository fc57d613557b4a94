"""Writes of campaigns: create, update and cancel (sending comes with its own path)."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from django.contrib.auth.models import User
from django.db import transaction
from django.template import Engine, TemplateSyntaxError
from django.template.base import Variable, VariableNode
from django.template.defaulttags import DebugNode, ForNode, LoadNode, URLNode, WithNode
from django.template.loader_tags import ExtendsNode, IncludeNode
from django.utils.translation import gettext as _

from campaigns.models import (
    NOTICE_KINDS,
    Campaign,
    CampaignKind,
    CampaignStatus,
    CampaignStep,
    Recipient,
    Segment,
    StepChannel,
    StepCondition,
)
from consent.eligibility import purpose_in_use
from consent.models import Purpose
from contacts.models import Interest, Language, LifecycleStage
from core.errors import StructuredValidationError

CONTENT_NAMES = ("subject", "body_text", "body_html", "sms_text")
# The fields of a step a caller may give (content in French and English).
STEP_FIELDS = (
    "channel",
    "delay_hours",
    "condition",
    "subject_fr",
    "subject_en",
    "body_text_fr",
    "body_text_en",
    "body_html_fr",
    "body_html_en",
    "sms_text_fr",
    "sms_text_en",
)
# What each channel needs, in French at least (English falls back to it).
REQUIRED_CONTENT: dict[str, tuple[str, ...]] = {
    StepChannel.EMAIL: ("subject_fr", "body_text_fr"),
    StepChannel.SMS: ("sms_text_fr",),
    StepChannel.POSTAL: ("body_text_fr",),
}
# The content a marketer writes: Django template text, personalised when sent.
CONTENT_FIELDS = tuple(name for name in STEP_FIELDS if name[:-3] in CONTENT_NAMES)
# What the content may name (`campaigns.sending.personalisation` and the links).
PLACEHOLDERS = ("first_name", "last_name", "interests", "preference_url", "unsubscribe_url")
# What a built-in kind's messages may also name (`campaigns.kinds`, `KindRules.context`).
KIND_PLACEHOLDERS: dict[str, tuple[str, ...]] = {CampaignKind.REPERMISSION: ("confirm_url",)}
# Tags that reach beyond the message (other templates, URLs, the server's modules).
FORBIDDEN_TAGS = (ExtendsNode, IncludeNode, LoadNode, URLNode, DebugNode)
# A campaign's steps and segment change only before it is scheduled.
EDITABLE = (CampaignStatus.DRAFT,)
CANCELLABLE = (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED, CampaignStatus.SENDING)


@dataclass(frozen=True)
class SegmentCriteria:
    """A campaign's own segment, given inline (API): each list optional, all must match."""

    interests: list[str] = field(default_factory=list)
    lifecycle_stages: list[str] = field(default_factory=list)
    countries: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)


def template_problem(text: str, kind: str = CampaignKind.REGULAR) -> str:
    """What keeps the text from being personalised: a template syntax error, or a name the
    message of that kind does not know (`PLACEHOLDERS`, `KIND_PLACEHOLDERS`); "" when it is
    fine."""
    known = PLACEHOLDERS + KIND_PLACEHOLDERS.get(kind, ())
    try:
        template = Engine().from_string(text)
    except TemplateSyntaxError as error:
        return _("This text cannot be personalised: %(error)s") % {"error": error}
    if any(template.nodelist.get_nodes_by_type(kind) for kind in FORBIDDEN_TAGS):
        return _("Only variables, conditions, loops and filters may be used here.")
    names = set()
    for node in template.nodelist.get_nodes_by_type(VariableNode):
        variable = cast(VariableNode, node).filter_expression.var
        if isinstance(variable, Variable) and variable.lookups:
            names.add(variable.lookups[0])
    defined = {"forloop"}  # names a loop or a `with` defines inside the text
    for loop in template.nodelist.get_nodes_by_type(ForNode):
        defined.update(cast(ForNode, loop).loopvars)
    for block in template.nodelist.get_nodes_by_type(WithNode):
        defined.update(cast(WithNode, block).extra_context)
    unknown = sorted(names - set(known) - defined)
    if unknown:
        return _("Unknown names: %(names)s. Use %(known)s.") % {
            "names": ", ".join(unknown),
            "known": ", ".join("{{ " + name + " }}" for name in known),
        }
    return ""


def step_problems(
    step: Mapping[str, Any],
    *,
    purpose: Purpose | None,
    first: bool,
    kind: str = CampaignKind.REGULAR,
) -> dict:
    """What is wrong with one step (field: messages): a channel the purpose is not used on,
    content missing for the channel, a delay or condition the first step cannot have."""
    problems: dict[str, list[str]] = {}
    channel = step.get("channel") or ""
    if channel not in StepChannel.values:
        problems["channel"] = [_("Choose email, sms or postal.")]
    elif purpose is not None and not purpose_in_use(purpose, channel):
        problems["channel"] = [
            _("The purpose %(purpose)s is not used on this channel.") % {"purpose": purpose.slug}
        ]
    for name in REQUIRED_CONTENT.get(channel, ()):
        if not (step.get(name) or "").strip():
            problems[name] = [_("This channel needs it.")]
    for name in CONTENT_FIELDS:
        problem = template_problem(step.get(name) or "", kind)
        if problem:
            problems.setdefault(name, []).append(problem)
    if first and step.get("delay_hours"):
        problems["delay_hours"] = [_("The first step starts at once: 0 hours.")]
    if first and step.get("condition") == StepCondition.PREVIOUS_NOT_DELIVERED:
        problems["condition"] = [_("The first step has no previous step.")]
    return problems


def _check(
    *,
    name: str,
    purpose: Purpose | None,
    steps: Sequence[Mapping[str, Any]],
    kind: str = CampaignKind.REGULAR,
) -> None:
    errors: dict[str, Any] = {}
    if not name.strip():
        errors["name"] = [_("This field may not be blank.")]
    if kind in NOTICE_KINDS:
        if purpose is not None:
            errors["purpose"] = [_("A notice informs: it has no purpose.")]
    elif purpose is None:
        errors["purpose"] = [_("This field is required.")]
    elif not purpose.is_active:
        errors["purpose"] = [_("This purpose is retired.")]
    if not steps:
        errors["steps"] = [_("A campaign needs at least one step.")]
    else:
        step_errors = [
            step_problems(step, purpose=purpose, first=index == 0, kind=kind)
            for index, step in enumerate(steps)
        ]
        if any(step_errors):
            errors["steps"] = step_errors
    if errors:
        raise StructuredValidationError(errors)


def segment_for_criteria(*, name: str, criteria: SegmentCriteria) -> Segment:
    """A segment of one campaign from inline criteria; unknown values are field errors."""
    errors: dict[str, list[str]] = {}
    interests = list(Interest.objects.filter(slug__in=criteria.interests))
    unknown = sorted(set(criteria.interests) - {interest.slug for interest in interests})
    if unknown:
        errors["interests"] = [_("Unknown interests: %s") % ", ".join(unknown)]
    checks = {
        "lifecycle_stages": (criteria.lifecycle_stages, set(LifecycleStage.values)),
        "languages": (criteria.languages, set(Language.values)),
    }
    for key, (values, allowed) in checks.items():
        wrong = sorted(set(values) - allowed)
        if wrong:
            errors[key] = [_("Unknown values: %s") % ", ".join(wrong)]
    if any(len(code) != 2 or not code.isalpha() for code in criteria.countries):
        errors["countries"] = [_("Give ISO 3166-1 alpha-2 country codes, e.g. FR.")]
    if errors:
        raise StructuredValidationError({"segment": errors})
    segment = Segment.objects.create(
        name=name[:150],
        saved=False,
        lifecycle_stages=list(criteria.lifecycle_stages),
        countries=[code.upper() for code in criteria.countries],
        languages=list(criteria.languages),
    )
    segment.interests.set(interests)
    return segment


def _steps_write(campaign: Campaign, steps: Sequence[Mapping[str, Any]]) -> None:
    campaign.steps.all().delete()
    CampaignStep.objects.bulk_create(
        CampaignStep(
            campaign=campaign,
            position=index,
            **{name: step[name] for name in STEP_FIELDS if step.get(name) is not None},
        )
        for index, step in enumerate(steps, start=1)
    )


@transaction.atomic
def campaign_create(
    *,
    name: str,
    purpose: Purpose | None,
    steps: Sequence[Mapping[str, Any]],
    segment: Segment | None = None,
    criteria: SegmentCriteria | None = None,
    kind: str = CampaignKind.REGULAR,
    created_by: User | None = None,
) -> Campaign:
    """Create a draft campaign with its steps (numbered from 1) and its segment: a saved one,
    or inline `criteria` that become a segment of its own. Nothing is written on an error.
    A notice (`NOTICE_KINDS`) has no purpose; every other kind needs one."""
    _check(name=name, purpose=purpose, steps=steps, kind=kind)
    if criteria is not None:
        segment = segment_for_criteria(name=name, criteria=criteria)
    campaign = Campaign.objects.create(
        name=name, purpose=purpose, segment=segment, kind=kind, created_by=created_by
    )
    _steps_write(campaign, steps)
    return campaign


@transaction.atomic
def campaign_update(
    *,
    campaign: Campaign,
    name: str | None = None,
    segment: Segment | None = None,
    steps: Sequence[Mapping[str, Any]] | None = None,
) -> Campaign:
    """Change a draft campaign's name, segment or steps (the steps are replaced)."""
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if campaign.status not in EDITABLE:
        raise StructuredValidationError({"status": [_("Only a draft campaign can be changed.")]})
    if steps is None:
        steps = list(campaign.steps.order_by("position").values(*STEP_FIELDS))
    _check(
        name=name if name is not None else campaign.name,
        purpose=campaign.purpose,
        steps=steps,
        kind=campaign.kind,
    )
    if name is not None:
        campaign.name = name
    if segment is not None:
        campaign.segment = segment
    campaign.save()
    _steps_write(campaign, steps)
    return campaign


@transaction.atomic
def campaign_cancel(*, campaign: Campaign) -> Campaign:
    """Cancel a campaign not sent yet: nothing more of it is sent (a batch checks the status
    as it begins, as it reserves messages and as it marks each one sent, and stops at the
    next message); what was sent stays recorded."""
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if campaign.status not in CANCELLABLE:
        raise StructuredValidationError(
            {"status": [_("A campaign that was sent or cancelled cannot be cancelled.")]}
        )
    campaign.status = CampaignStatus.CANCELLED
    campaign.scheduled_at = None
    campaign.save(update_fields=["status", "scheduled_at", "updated_at"])
    return campaign


def recipients_proof_expired(*, contact_ids: Sequence[int]) -> int:
    """Unlink the recipients of people whose ledger records were deleted at the end of their
    proof period (`privacy.proof`, GDPR Art. 5(1)(e)): the rows and their legal basis stay,
    so the campaigns' counts do. Called in the transaction that deleted the records. Answers
    how many recipients were unlinked."""
    return Recipient.objects.filter(
        contact_id__in=list(contact_ids), consent_record__isnull=False
    ).update(consent_record=None)
