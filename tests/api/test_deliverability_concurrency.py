"""Providers retry webhooks and send events in bursts: over real HTTP, at the same moment, the
same event is applied once and distinct events each count (PostgreSQL row locks)."""

import json

import pytest

from contacts.models import Contact, EmailDeliverability
from tests.api.live import LIVE_DB, at_the_same_time, post_over_http
from tests.factories import ApiClientFactory, ContactFactory

EVENTS = "/api/v1/deliverability-events/"


@pytest.mark.postgres
@LIVE_DB
def test_the_same_soft_bounce_sent_five_times_at_once_counts_once(live_server):
    contact = ContactFactory()
    key = ApiClientFactory().plain_key
    body = json.dumps(
        {"email": contact.email, "type": "soft_bounce", "event_id": "evt-burst"}
    ).encode()

    answers = at_the_same_time(
        lambda: post_over_http(f"{live_server.url}{EVENTS}", key, body), times=5
    )

    assert {status for status, _body in answers} == {201}
    contact = Contact.objects.get(pk=contact.pk)
    assert contact.email_soft_bounces == 1


@pytest.mark.postgres
@LIVE_DB
def test_three_distinct_soft_bounces_at_once_all_count(live_server):
    contact = ContactFactory()
    key = ApiClientFactory().plain_key
    bodies = [  # list.pop is atomic: each thread takes its own
        json.dumps({"email": contact.email, "type": "soft_bounce", "event_id": f"e{n}"}).encode()
        for n in range(3)
    ]

    answers = at_the_same_time(
        lambda: post_over_http(f"{live_server.url}{EVENTS}", key, bodies.pop()), times=3
    )

    assert {status for status, _body in answers} == {201}
    contact = Contact.objects.get(pk=contact.pk)
    assert contact.email_soft_bounces == 3
    assert contact.email_deliverability == EmailDeliverability.SOFT_BOUNCES
