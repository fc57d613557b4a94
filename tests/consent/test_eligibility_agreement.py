"""The eligibility rule's two forms agree: the explanation of one contact
(`contact_eligibility`) and the audience in SQL (`eligible_contacts`, `contacts_with_reasons`,
`ineligible_counts`), on varied contacts covering every reason and their combinations."""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from django.db import transaction
from django.test import override_settings
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consent.eligibility import (
    Ineligible,
    contact_eligibility,
    contacts_with_reasons,
    eligible_contacts,
    ineligible_counts,
    reasons_of,
)
from consent.models import ConsentState, LegalBasis, MessageSent, Purpose, PurposeVersion
from consent.selectors import purposes_with_versions
from consent.services import Evidence, purpose_wording_update
from contacts.models import Contact
from contacts.services import suppression_add
from tests.factories import ContactFactory, PurposeFactory, grant

pytestmark = pytest.mark.django_db

CHANNELS = ["email", "sms", "postal", "phone", "push"]
STATUSES = ["granted", "pending", "withdrawn", "expired"]
# wording a state may point at: the replaced first version, the current one, or the one a
# minor change followed (still valid)
VERSIONS = ["replaced", "material", "minor"]
AGES = [timedelta(hours=2), timedelta(hours=30), timedelta(days=5), timedelta(days=20)]
CAPS = [{"day": 1, "week": 3}, {"day": 2, "week": 0}, {"day": 0, "week": 2}]
# who set a state: the person, or a child's guardian (alone, or with the child: France)
ACTORS = ["person", "guardian", "person_and_guardian"]
# birth years by age this year: a child anywhere, 14 (a child but in Belgium), 15 (France's
# edge, possibly 14), 16 (possibly 15), an adult; and countries with other ages
BIRTH_AGES = [None, 10, 14, 15, 16, 17, 30]
COUNTRIES = ["", "FR", "DE", "BE", "ZZ"]
# the purposes and channels of `catalogue`, in its order: offers on five channels, events
# (double opt-in) on email and on sms (a channel it does not use), then legitimate interest,
# profiling on both bases, a contract and a retired purpose, then "similar products" on
# legitimate interest (soft opt-in) on every channel
TARGET_NAMES = [
    *[("offers", channel) for channel in CHANNELS],
    ("events", "email"),
    ("events", "sms"),
    ("news", "email"),
    ("news", "sms"),
    ("tailoring", "email"),
    ("personal", "email"),
    ("account", "email"),
    ("retired", "email"),
    *[("similar", channel) for channel in CHANNELS],
]
STATE_COUNT = len(TARGET_NAMES)
# the relationship and the end of the contract, in days from `at` (None: still running)
RELATIONSHIPS = [("prospect", None), ("customer", None), ("customer", 30), ("customer", -30)]


@dataclass
class Catalogue:
    """The purposes every example is checked against, and one ledger record to hang states on."""

    targets: list[tuple[Purpose, str]]
    versions: dict[tuple[int, str], PurposeVersion]
    record_for: dict[tuple[int, str], object] = field(default_factory=dict)


@pytest.fixture
def catalogue() -> Catalogue:
    offers = PurposeFactory(slug="offers", channels=CHANNELS)
    events = PurposeFactory(slug="events", double_opt_in=True, channels=["email"])
    news = PurposeFactory(
        slug="news", legal_basis=LegalBasis.LEGITIMATE_INTERESTS, channels=["email", "sms"]
    )
    tailoring = PurposeFactory(
        slug="tailoring",
        legal_basis=LegalBasis.LEGITIMATE_INTERESTS,
        is_profiling=True,
        channels=["email"],
    )
    personal = PurposeFactory(slug="personal", is_profiling=True, channels=["email"])
    account = PurposeFactory(slug="account", legal_basis=LegalBasis.CONTRACT, channels=["email"])
    retired = PurposeFactory(slug="retired", channels=["email"])
    similar = PurposeFactory(
        slug="similar",
        legal_basis=LegalBasis.LEGITIMATE_INTERESTS,
        similar_products=True,
        channels=CHANNELS,
    )
    anchor = ContactFactory(email="anchor@example.fr")
    catalogue = Catalogue(targets=[], versions={})
    for purpose in (offers, events, news, tailoring, personal, account, retired, similar):
        first = purpose.current_version
        for actor in ACTORS:
            catalogue.record_for[(purpose.id, actor)] = grant(
                anchor,
                purpose,
                channel=purpose.channels[0],
                actor=actor,
                evidence=Evidence(
                    wording="J'accepte.",
                    unticked_by_default=True,
                    guardian_name="Alex Martin",
                    guardian_contact="parent@example.fr",
                ),
            )
        purpose_wording_update(purpose=purpose, wording_fr="v2", wording_en="v2")
        second = Purpose.objects.get(pk=purpose.pk).current_version
        purpose_wording_update(purpose=purpose, wording_fr="v3", wording_en="v3", is_material=False)
        third = Purpose.objects.get(pk=purpose.pk).current_version
        for name, version in zip(VERSIONS, (first, second, third), strict=True):
            catalogue.versions[(purpose.id, name)] = version
    Purpose.objects.filter(pk=retired.pk).update(is_active=False)
    # as senders load them: with their wording versions (no query per contact for those)
    for fresh in purposes_with_versions().order_by("id"):
        catalogue.targets += [(fresh, channel) for channel in fresh.channels]
        if fresh.slug == "events":
            catalogue.targets.append((fresh, "sms"))  # a channel the purpose does not use
    assert [(purpose.slug, channel) for purpose, channel in catalogue.targets] == TARGET_NAMES
    return catalogue


def state_options() -> st.SearchStrategy:
    """Per target: no state, or a status on some wording, recorded before or after an
    objection to marketing (when the person has one)."""
    some_state = st.tuples(
        st.sampled_from(STATUSES),
        st.sampled_from(VERSIONS),
        st.sampled_from(["before", "after"]),
        st.sampled_from(ACTORS),
    )
    return st.one_of(st.none(), some_state)


def person() -> st.SearchStrategy:
    return st.fixed_dictionaries(
        {
            "status": st.sampled_from(["active", "active", "active", "paused", "erased"]),
            "paused_days": st.sampled_from([None, -3, 3]),
            "restricted": st.booleans(),
            "profiling_objected": st.booleans(),
            "marketing_objected": st.booleans(),
            "frequency": st.sampled_from(["as_published", "weekly", "monthly"]),
            "email_deliverability": st.sampled_from(
                ["deliverable", "deliverable", "hard_bounce", "soft_bounces"]
            ),
            "postal_deliverability": st.sampled_from(["deliverable", "returned"]),
            "address": st.sampled_from([("1 rue Haute", "Lyon"), ("", "Lyon"), ("1 rue", "")]),
            "phone": st.sampled_from(["", "+33612345678", "+33698765432"]),
            "minor": st.booleans(),
            "birth_age": st.sampled_from(BIRTH_AGES),
            "country": st.sampled_from(COUNTRIES),
            "suppressed": st.sampled_from([None, "email", "phone"]),
            "messages": st.lists(
                st.tuples(st.sampled_from(["email", "sms", "phone"]), st.sampled_from(AGES)),
                max_size=4,
            ),
            "states": st.lists(state_options(), min_size=STATE_COUNT, max_size=STATE_COUNT),
            "b2b": st.booleans(),
            "relationship": st.sampled_from(RELATIONSHIPS),
        }
    )


def build(spec: dict, number: int, catalogue: Catalogue, at: datetime) -> Contact:
    """One contact as the spec says, written as the write paths leave the tables."""
    paused = spec["paused_days"]
    relationship, until_days = spec["relationship"]
    customer = relationship == "customer"
    contact = ContactFactory(
        b2b=spec["b2b"],
        relationship=relationship,
        customer_since=(at - timedelta(days=400)).date() if customer else None,
        customer_until=(at + timedelta(days=until_days)).date() if until_days else None,
        email=f"p{number}@example.fr",
        status=spec["status"],
        paused_until=at + timedelta(days=paused) if paused is not None else None,
        processing_restricted_at=at - timedelta(days=9) if spec["restricted"] else None,
        profiling_objected_at=at - timedelta(days=9) if spec["profiling_objected"] else None,
        marketing_objected_at=at - timedelta(days=10) if spec["marketing_objected"] else None,
        frequency=spec["frequency"],
        email_deliverability=spec["email_deliverability"],
        postal_deliverability=spec["postal_deliverability"],
        address_line1=spec["address"][0],
        city=spec["address"][1],
        phone=spec["phone"],
        is_minor=spec["minor"],
        birth_year=at.year - spec["birth_age"] if spec["birth_age"] is not None else None,
        country=spec["country"],
    )
    if spec["suppressed"] == "email":
        suppression_add(reason="hard_bounce", email=contact.email)
    elif spec["suppressed"] == "phone" and contact.phone:
        suppression_add(reason="complaint", phone=contact.phone)
    for option, (purpose, channel) in zip(spec["states"], catalogue.targets, strict=False):
        if option is not None:
            status, version, when, actor = option
            ConsentState.objects.create(
                contact=contact,
                purpose=purpose,
                channel=channel,
                status=status,
                purpose_version=catalogue.versions[(purpose.id, version)],
                record=catalogue.record_for[(purpose.id, actor)],
                since=at - timedelta(days=20 if when == "before" else 1),
                actor=actor,  # as the write path copies its record's
            )
    offers = catalogue.targets[0][0]
    MessageSent.objects.bulk_create(
        MessageSent(contact=contact, purpose=offers, channel=channel, sent_at=at - age)
        for channel, age in spec["messages"]
    )
    return contact


def assert_forms_agree(
    contacts: list[Contact], targets: list[tuple[Purpose, str]], at: datetime
) -> Counter:
    """For every target: the same reasons per contact, the same audience, the same counts."""
    seen: Counter = Counter()
    ids = [contact.id for contact in contacts]
    for purpose, channel in targets:
        scope = Contact.objects.filter(id__in=ids)
        explained = {c.id: contact_eligibility(c, purpose, channel, at=at) for c in contacts}
        in_sql = {
            c.id: reasons_of(c) for c in contacts_with_reasons(purpose, channel, at, queryset=scope)
        }
        audience = set(eligible_contacts(purpose, channel, at, queryset=scope).values_list("id"))
        assert in_sql == explained, (purpose.slug, channel)
        assert {(i,) for i, reasons in explained.items() if not reasons} == audience, (
            purpose.slug,
            channel,
        )
        # the form a batch being sent uses: each frequency limit counted per contact
        few = eligible_contacts(purpose, channel, at, queryset=scope, few=True)
        assert set(few.values_list("id")) == audience, (purpose.slug, channel, "few")
        counted = Counter(reason for reasons in explained.values() for reason in reasons)
        assert ineligible_counts(purpose, channel, at, queryset=scope) == dict(counted)
        seen.update(counted)
        seen["eligible"] += len(audience)
    return seen


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    people=st.lists(person(), min_size=10, max_size=25),
    caps=st.sampled_from(CAPS),
    picks=st.lists(st.integers(min_value=0, max_value=len(TARGET_NAMES) - 1), min_size=4),
)
def test_the_explanation_and_the_queryset_agree_on_every_contact(
    catalogue: Catalogue, people: list[dict], caps: dict[str, int], picks: list[int]
) -> None:
    # a few purposes and channels per example (all of them in the test below)
    targets = [catalogue.targets[pick] for pick in sorted(set(picks))[:4]]
    at = timezone.now()
    with override_settings(MARKETING_CAPS=caps), transaction.atomic():
        contacts = [build(spec, n, catalogue, at) for n, spec in enumerate(people)]
        assert_forms_agree(contacts, targets, at)
        transaction.set_rollback(True)


EVERY_REASON = {
    "erased": {"status": "erased"},
    "merged": {"status": "merged", "all_states": ("granted", "before")},
    "paused": {"status": "paused", "paused_days": 3},
    "paused and ended": {"status": "paused", "paused_days": -3},
    "restricted": {"restricted": True},
    "objected to profiling": {"profiling_objected": True},
    "objected to marketing": {"marketing_objected": True},
    "objected, then granted": {"marketing_objected": True, "all_states": ("granted", "after")},
    "objected after the grant": {"marketing_objected": True, "all_states": ("granted", "before")},
    "granted": {"all_states": ("granted", "before")},
    "granted on replaced wording": {"all_states": ("granted", "before"), "version": "replaced"},
    "pending": {"all_states": ("pending", "before")},
    "pending on replaced wording": {"all_states": ("pending", "before"), "version": "replaced"},
    "withdrawn": {"all_states": ("withdrawn", "before")},
    "expired": {"all_states": ("expired", "before")},
    "suppressed email": {"suppressed": "email", "all_states": ("granted", "before")},
    "suppressed phone": {"suppressed": "phone", "phone": "+33612345678"},
    "bounced": {"email_deliverability": "hard_bounce"},
    "soft-bounced three times": {"email_deliverability": "soft_bounces"},
    "returned mail": {"postal_deliverability": "returned"},
    "no address": {"address": ("", "")},
    "minor": {"minor": True},
    "minor, granted by the person": {"minor": True, "all_states": ("granted", "before")},
    "minor, granted by the guardian": {
        "minor": True,
        "all_states": ("granted", "before", "guardian"),
    },
    "French child, granted by the guardian alone": {
        "birth_age": 14,
        "country": "FR",
        "all_states": ("granted", "before", "guardian"),
    },
    "French child, granted jointly": {
        "birth_age": 14,
        "country": "FR",
        "all_states": ("granted", "before", "person_and_guardian"),
    },
    "maybe 14 in France": {"birth_age": 15, "country": "FR", "all_states": ("granted", "before")},
    "16 in France": {"birth_age": 16, "country": "FR", "all_states": ("granted", "before")},
    "14 in Belgium": {"birth_age": 14, "country": "BE", "all_states": ("granted", "before")},
    "maybe 15 in Germany": {"birth_age": 16, "country": "DE", "all_states": ("granted", "before")},
    "German child, granted by the guardian": {
        "birth_age": 10,
        "country": "DE",
        "all_states": ("granted", "before", "guardian"),
    },
    "child, no country": {"birth_age": 15, "all_states": ("granted", "before", "guardian")},
    "day cap": {"messages": [("email", timedelta(hours=2))], "all_states": ("granted", "before")},
    "week cap": {"messages": [("email", timedelta(days=2))] * 3},
    "under the caps": {"messages": [("email", timedelta(days=2))] * 2},
    "weekly": {"frequency": "weekly", "messages": [("email", timedelta(days=5))]},
    "monthly": {"frequency": "monthly", "messages": [("sms", timedelta(days=20))]},
    "monthly, long ago": {"frequency": "monthly", "messages": [("email", timedelta(days=40))]},
    "four calls in 30 days": {
        "messages": [("phone", timedelta(days=20))] * 4,
        "all_states": ("granted", "before"),
    },
    "four calls to a b2b contact": {
        "b2b": True,
        "messages": [("phone", timedelta(days=20))] * 4,
        "all_states": ("granted", "before"),
    },
    "b2b": {"b2b": True},
    "b2b, objected": {"b2b": True, "marketing_objected": True},
    "customer": {"relationship": ("customer", None)},
    "customer with soft opt-in": {
        "relationship": ("customer", None),
        "all_states": ("granted", "before"),
    },
    "customer, contract ending": {"relationship": ("customer", 30)},
    "former customer with soft opt-in": {
        "relationship": ("customer", -30),
        "all_states": ("granted", "before"),
    },
    "former customer, withdrawn": {
        "relationship": ("customer", -30),
        "all_states": ("withdrawn", "before"),
    },
}


def spec_for(overrides: dict) -> dict:
    spec = {
        "status": "active",
        "paused_days": None,
        "restricted": False,
        "profiling_objected": False,
        "marketing_objected": False,
        "frequency": "as_published",
        "email_deliverability": "deliverable",
        "postal_deliverability": "deliverable",
        "address": ("1 rue Haute", "Lyon"),
        "phone": "+33698765432",
        "minor": False,
        "birth_age": None,
        "country": "",
        "suppressed": None,
        "messages": [],
        "states": [None] * STATE_COUNT,
        "b2b": False,
        "relationship": ("prospect", None),
    }
    overrides = dict(overrides)
    if "all_states" in overrides:
        status, when, *actor = overrides.pop("all_states")
        version = overrides.pop("version", "minor")
        spec["states"] = [(status, version, when, (actor or ["person"])[0])] * STATE_COUNT
    spec.update(overrides)
    return spec


def test_every_reason_and_eligibility_itself_are_covered_and_agree(catalogue: Catalogue) -> None:
    # given one contact per case, and all of them together (combinations)
    at = timezone.now()
    contacts = [
        build(spec_for(overrides), n, catalogue, at)
        for n, overrides in enumerate(EVERY_REASON.values())
    ]
    combined = {}
    for overrides in EVERY_REASON.values():
        if "all_states" not in overrides:
            combined.update(overrides)
    contacts.append(build(spec_for(combined), 99, catalogue, at))

    # when both forms judge them on every purpose and channel
    seen = assert_forms_agree(contacts, catalogue.targets, at)

    # then each reason the forms compute was met at least once, and so was eligibility
    computed = set(Ineligible) - {Ineligible.QUIET_HOURS}
    assert computed | {"eligible"} <= set(seen)
