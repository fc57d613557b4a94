"""The campaign benchmarks (bench/campaigns.py) compare like with like: the hand-written preview,
count, id stream and recipient rows are exactly the product's (`campaign_audience`,
`eligible_contacts`, `step_begin`), with and without a segment, and the SMTP sink counts every
message and each distinct Message-ID once (PostgreSQL: arrays, server-side cursors)."""

import socket
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from bench.campaigns import (
    SEGMENT,
    Sink,
    baseline_send,
    campaign_for,
    hand_audience_sql,
    hand_ids,
    hand_preview,
    hand_recipients_insert,
)
from bench.dataset import dataset_build
from campaigns.models import Recipient
from campaigns.selectors import campaign_audience, segment_contacts
from campaigns.sending import step_begin
from consent.eligibility import eligible_contacts
from consent.models import MessageSent
from consent.selectors import purposes_with_versions
from consent.tasks import send_double_opt_in_confirmation
from contacts.models import Contact
from tests.queued import held_back


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("segment", [None, SEGMENT], ids=["no segment", "FR+fr"])
def test_the_campaign_baselines_by_hand_do_the_products_work(segment: dict | None) -> None:
    with held_back(send_double_opt_in_confirmation):  # no worker busy past the test's end
        dataset_build(n=400, seed=7)
    at = timezone.now()
    # a few more reasons than the dataset has: a minor, a restriction, messages sent
    contacts = list(Contact.objects.filter(status="active", country="FR").order_by("id")[:40])
    Contact.objects.filter(pk__in=[c.pk for c in contacts[:5]]).update(is_minor=True)
    Contact.objects.filter(pk__in=[c.pk for c in contacts[5:10]]).update(
        processing_restricted_at=at
    )
    Contact.objects.filter(pk__in=[c.pk for c in contacts[10:20]]).update(frequency="weekly")
    purpose = purposes_with_versions().get(slug="newsletter")
    MessageSent.objects.bulk_create(
        MessageSent(contact=c, purpose=purpose, channel="email", sent_at=at - timedelta(days=2))
        for c in contacts[10:30]
    )
    campaign = campaign_for(purpose, segment)
    step = campaign.steps.get()

    (preview,) = campaign_audience(campaign, at)
    sql, params = hand_audience_sql(purpose, "email", at, segment)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        assert cursor.fetchone()[0] == preview.eligible
    assert {"minor", "frequency", "suppressed", "no_consent"} <= set(preview.excluded)
    assert hand_preview(purpose, "email", at, segment) == {
        "eligible": preview.eligible,
        "excluded": preview.excluded,
    }

    expected_ids = set(
        eligible_contacts(purpose, "email", at, queryset=segment_contacts(campaign.segment))
        .values_list("pk", flat=True)
        .iterator(chunk_size=50)
    )
    assert len(expected_ids) == preview.eligible > 0
    sql, params = hand_audience_sql(purpose, "email", at, segment, select="c.id")
    assert hand_ids(sql, params, 50) == (len(expected_ids), sum(expected_ids))

    def rows() -> dict[int, tuple[str, str, str]]:
        written = Recipient.objects.filter(step=step).values_list(
            "contact_id", "status", "exclusion_reason", "legal_basis"
        )
        return {contact: (status, reason, basis) for contact, status, reason, basis in written}

    step_begin(campaign=campaign, step=step, at=at)
    by_product = rows()
    Recipient.objects.filter(step=step).delete()
    sql, params = hand_recipients_insert(campaign, step, at, segment)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    assert rows() == by_product
    assert {contact for contact, row in by_product.items() if row[0] == "queued"} == expected_ids
    reasons = {row[1] for row in by_product.values()}
    assert {"minor", "frequency", "restricted", "suppressed", "paused"} <= reasons


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_smtp_sink_counts_every_message_and_each_message_id_once() -> None:
    port = _free_port()
    people = [(f"reader{n}@example.org", f"Camille{n}", "fr") for n in range(6)]
    sink = Sink(port)
    try:
        baseline_send(people, 1, port=port)
        baseline_send(people[:2], 1, port=port)  # the same two messages again
        baseline_send(people[:3], 2, port=port)  # three other messages
    finally:
        stats = sink.stop()
    assert stats == {
        "messages": 11,
        "recipients": 11,
        "distinct_message_ids": 9,
        "without_message_id": 0,
    }
