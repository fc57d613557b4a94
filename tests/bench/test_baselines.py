"""The hand-written baselines of bench/scale.py do the product's work: the audience count by
hand finds the contacts `eligible_contacts` finds, the import by COPY + one upsert writes the
contacts, suppression digests and ledger hashes the product would, and the set-based erasure
leaves each person as `contact_erase` does (PostgreSQL only: COPY, pgcrypto, arrays)."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from bench.dataset import dataset_build
from bench.scale import audience_sql, csv_write, hand_import, pgcrypto_create
from consent.eligibility import eligible_contacts
from consent.ledger import record_hash
from consent.models import ConsentRecord, ConsentState, MessageSent
from consent.selectors import purposes_with_versions
from consent.tasks import send_double_opt_in_confirmation
from contacts.models import Contact
from contacts.normalization import suppression_digest, suppression_digests
from tests.queued import held_back

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def hand_count(purpose: object, channel: str, at: object) -> int:
    sql, params = audience_sql(purpose, channel, at)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_the_audience_count_by_hand_agrees_with_eligible_contacts() -> None:
    with held_back(send_double_opt_in_confirmation):  # no worker busy past the test's end
        dataset_build(n=300, seed=3)
    at = timezone.now()
    # a few more reasons than the dataset has: a minor, a restriction, messages sent
    contacts = list(Contact.objects.filter(status="active").order_by("id")[:40])
    Contact.objects.filter(pk__in=[c.pk for c in contacts[:5]]).update(is_minor=True)
    Contact.objects.filter(pk__in=[c.pk for c in contacts[5:10]]).update(
        processing_restricted_at=at
    )
    Contact.objects.filter(pk__in=[c.pk for c in contacts[10:20]]).update(frequency="weekly")
    for purpose in purposes_with_versions().filter(slug__in=["newsletter", "offers"]):
        MessageSent.objects.bulk_create(
            MessageSent(contact=c, purpose=purpose, channel=channel, sent_at=at - timedelta(days=2))
            for c in contacts[10:30]
            for channel in ("email", "sms")
        )

    for slug in ("newsletter", "offers"):
        purpose = purposes_with_versions().get(slug=slug)
        for channel in ("email", "sms"):
            expected = eligible_contacts(purpose, channel, at).count()
            granted = ConsentState.objects.filter(
                purpose=purpose, channel=channel, status="granted"
            ).count()
            assert 0 < expected < granted  # some are eligible, some granted ones are not
            assert hand_count(purpose, channel, at) == expected, (slug, channel)


@pytest.mark.django_db(transaction=True)
def test_the_import_by_hand_writes_what_the_product_would(tmp_path: Path) -> None:
    from bench.harness import purpose_create

    purpose = purpose_create("offers")
    Contact.objects.create(email="lead3@example.com", first_name="Already", last_name="Here")
    path = tmp_path / "list.csv"
    csv_write(path, 10, 0, consent=True)
    pgcrypto_create()

    hand_import(path, purpose)
    hand_import(path, purpose)  # again: nothing new

    assert Contact.objects.count() == 10
    assert Contact.objects.get(email="lead3@example.com").first_name == "Already"
    for contact in Contact.objects.exclude(email="lead3@example.com"):
        assert [contact.email_digest, contact.email_quoted_digest] == suppression_digests(
            kind="email", value=contact.email
        )
        expected_phone = suppression_digest("phone", contact.phone) if contact.phone else None
        assert contact.phone_digest == expected_phone
        assert contact.public_id is not None
        assert contact.status == "active"
    records = list(ConsentRecord.objects.all())
    assert len(records) == 9  # one per new contact, none for the one already there
    assert all(record_hash(record) == record.hash for record in records)
    states = ConsentState.objects.filter(purpose=purpose, channel="email", status="granted")
    assert sorted(states.values_list("record_id", flat=True)) == sorted(r.id for r in records)


@pytest.mark.django_db(transaction=True)
def test_the_erasure_by_hand_leaves_what_contact_erase_leaves() -> None:
    from bench.scale import hand_erase
    from consent.models import ConsentEvidence
    from contacts.models import Suppression, TimelineEvent
    from contacts.services import PERSONAL_FIELDS
    from crmsync.models import OutboxEvent
    from privacy.services import contact_erase

    with held_back(send_double_opt_in_confirmation):  # no worker busy past the test's end
        dataset_build(n=60, seed=5)
    with_consents = Contact.objects.filter(consent_states__status="granted", status="active")
    chosen = list(with_consents.distinct().order_by("id")[:6])
    by_product, by_hand = chosen[::2], chosen[1::2]
    suppressed = sum(1 + bool(contact.phone) for contact in chosen)  # email, and phone if any
    for contact in by_product:
        contact_erase(contact=contact, reason="bench erasure")
    with connection.cursor() as cursor:
        hand_erase(cursor, [contact.pk for contact in by_hand], timezone.now())

    def left(contact: Contact) -> dict:
        contact.refresh_from_db()
        return {
            "status": contact.status,
            "email": contact.email.split("@")[1],
            "personal": {
                name: getattr(contact, name)
                for name in PERSONAL_FIELDS
                if name not in ("email", "updated_at") and not name.endswith("digest")
            },
            "live states": contact.consent_states.filter(status__in=["granted", "pending"]).count(),
            "evidence": ConsentEvidence.objects.filter(record__contact=contact).count(),
            "interests": contact.interests.count(),
            "timeline": list(TimelineEvent.objects.filter(contact=contact).values_list("kind")),
            "queued outbox": sorted(
                OutboxEvent.objects.filter(
                    contact_public_id=contact.public_id, processed_at__isnull=True
                ).values_list("topic", flat=True)
            ),
        }

    product, hand = [left(c) for c in by_product], [left(c) for c in by_hand]
    assert product[0]["status"] == "erased" and product[0]["live states"] == 0
    assert product[0]["timeline"] == [("erased",)]
    assert product[0]["queued outbox"] == ["contact.erased"]
    for one in product + hand:
        assert one == product[0]
    assert Suppression.objects.filter(reason="erased").count() == suppressed
