"""The benchmark dataset (bench/dataset.py): built through the set-based consent path, in the
shares it promises, reproducible from its seed, with a ledger that verifies and consent
states that agree with it."""

from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from bench.dataset import GRANT_SHARES, SHARES, dataset_build, dataset_counts, people
from consent.ledger import ledger_verify
from consent.models import ConsentRecord, ConsentState
from contacts.models import Contact, Suppression
from contacts.selectors import contact_is_suppressed
from tests.conftest import Mailbox

N = 2000


def within(found: int, share: float, of: int, sigmas: float = 4.0) -> bool:
    """`found` out of `of` is the promised `share`, give or take `sigmas` standard errors."""
    error = (share * (1 - share) / of) ** 0.5
    return abs(found / of - share) <= sigmas * error


def expected_statuses(plan: list) -> Counter:
    """The consent state each planned grant must end in."""
    statuses: Counter = Counter()
    for person in plan:
        for _slug, _channel, _given, pending, withdrawn_at in person.grants:
            if withdrawn_at is not None or person.unsubscribed:
                statuses["withdrawn"] += 1
            else:
                statuses["pending" if pending else "granted"] += 1
    return statuses


def test_the_plan_is_reproducible_from_its_seed_and_changes_with_it() -> None:
    now = timezone.now()
    first = [(p.country, p.phone, p.paused, p.grants) for p in people(300, seed=5, now=now)]
    again = [(p.country, p.phone, p.paused, p.grants) for p in people(300, seed=5, now=now)]
    other = [(p.country, p.phone, p.paused, p.grants) for p in people(300, seed=6, now=now)]
    assert first == again
    assert first != other


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_dataset_of_2000_contacts_has_its_shares_a_verified_ledger_and_agreeing_states(
    mailbox: Mailbox,
    celery_worker: object,  # with a broker, the confirmation emails go through a real worker
) -> None:
    now = timezone.now()
    plan = list(people(N, seed=11, now=now))

    built = dataset_build(n=N, seed=11, now=now)

    # the base is exactly the plan ...
    counts = dataset_counts()
    assert built["contacts"] == Contact.objects.count() == N
    assert counts["contacts_paused"] == sum(p.paused for p in plan)
    assert counts["contacts_bounced"] == sum(p.bounced for p in plan)
    assert counts["contacts_with_phone"] == sum(bool(p.phone) for p in plan)
    assert counts["suppressions"] == sum(p.bounced or p.unsubscribed for p in plan)
    assert Counter(counts["states"]) == expected_statuses(plan)
    assert counts["records"] == built["writes"]
    assert Contact.objects.filter(country="FR").count() == sum(p.country == "FR" for p in plan)
    assert Contact.interests.through.objects.count() == sum(len(p.interests) for p in plan)
    # ... and the plan holds the promised shares
    for name in ("phone", "paused", "bounced", "unsubscribed"):
        found = sum(bool(p.phone) if name == "phone" else getattr(p, name) for p in plan)
        assert within(found, SHARES[name], N), name
    with_phone = sum(bool(p.phone) for p in plan)
    for (slug, channel), share in GRANT_SHARES.items():
        granted = sum(any(g[:2] == (slug, channel) for g in p.grants) for p in plan)
        assert within(granted, share, with_phone if channel == "sms" else N), (slug, channel)
    grants = [g for p in plan for g in p.grants]
    assert within(sum(g[4] is not None for g in grants), SHARES["withdrawn"], len(grants))
    newsletter = [g for g in grants if g[0] == "newsletter"]
    assert within(sum(g[3] for g in newsletter), SHARES["pending"], len(newsletter))
    assert len({p.country for p in plan}) == 7  # six countries and the unknown
    assert {p.language for p in plan} == {"fr", "en", ""}

    # the ledger verifies, and every state is its contact's last record for the triple
    assert ledger_verify() == []
    last: dict[tuple, tuple[int, str]] = {}
    for record_id, contact_id, purpose_id, channel, status in ConsentRecord.objects.order_by(
        "id"
    ).values_list("id", "contact_id", "purpose_id", "channel", "status"):
        last[(contact_id, purpose_id, channel)] = (record_id, status)
    states = {
        (contact_id, purpose_id, channel): (record_id, status)
        for contact_id, purpose_id, channel, record_id, status in ConsentState.objects.values_list(
            "contact_id", "purpose_id", "channel", "record_id", "status"
        )
    }
    assert states == last

    # the suppressed ones are those the plan bounced or unsubscribed; the pending grants of
    # active contacts were announced by one confirmation email per contact (a paused contact
    # is sent nothing)
    suppressed = {c.email for c in Contact.objects.all() if contact_is_suppressed(c)}
    assert suppressed == {f"person{p.n}@example.org" for p in plan if p.bounced or p.unsubscribed}
    assert Suppression.objects.filter(reason="hard_bounce").count() == sum(p.bounced for p in plan)
    pending_people = {
        p.n
        for p in plan
        if any(g[3] and g[4] is None for g in p.grants) and not p.unsubscribed and not p.paused
    }
    assert len(pending_people) > 0
    assert len(mailbox.wait(len(pending_people), timeout=180)) == len(pending_people)
    # dates are in the past, withdrawals after their grants
    assert not ConsentRecord.objects.filter(given_at__gt=now).exists()
    assert min(g[2] for g in grants) > now - timedelta(days=1031)


@pytest.mark.django_db
def test_dataset_refuses_a_base_that_already_holds_contacts() -> None:
    Contact.objects.create(email="someone@example.org")
    with pytest.raises(ValueError, match="empty contact base"):
        dataset_build(n=10)
