"""`GET /api/v1/events/?after=<cursor>`: the outbox as a feed, oldest first, paged by a cursor
that never loses or repeats an event, whatever order the transactions committed in."""

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, transaction
from rest_framework.test import APIClient

from contacts.services import contact_update
from crmsync.services import outbox_emit
from tests.factories import ContactFactory

FEED = "/api/v1/events/"


@pytest.fixture
def reader(api: Callable[..., APIClient]) -> APIClient:
    return api(scopes=["events:read"])


def read_all(reader: APIClient, after: str = "0", limit: int = 2) -> tuple[list[dict], str]:
    """Every event after `after`, page by page: the items and the last cursor."""
    items: list[dict] = []
    cursor = after
    while True:
        page = reader.get(FEED, {"after": cursor, "limit": limit}).json()
        items += page["results"]
        cursor = page["next_cursor"]
        if page["next"] is None:
            return items, cursor


@pytest.mark.django_db
def test_a_client_without_the_events_scope_is_refused(api: Callable[..., APIClient]) -> None:
    response = api(scopes=["contacts:read"]).get(FEED)

    assert response.status_code == 403
    assert "events:read" in response.json()["detail"]


@pytest.mark.django_db
def test_the_feed_serves_the_events_oldest_first_as_the_webhook_posts_them(
    reader: APIClient,
) -> None:
    contact = ContactFactory()
    first = outbox_emit(topic="contact.updated", contact=contact, payload={"city": "Lyon"})
    second = outbox_emit(topic="consent.recorded", contact=contact, payload={"purpose": "news"})

    page = reader.get(FEED).json()

    assert [item["id"] for item in page["results"]] == [str(first.pk), str(second.pk)]
    item = page["results"][0]
    assert set(item) == {"id", "cursor", "topic", "contact", "occurred_at", "data"}
    assert (item["topic"], item["contact"], item["data"]) == (
        "contact.updated",
        str(contact.public_id),
        {"city": "Lyon"},
    )
    assert item["occurred_at"].endswith("+00:00")
    assert page["next_cursor"] == page["results"][-1]["cursor"] and page["next"] is None


@pytest.mark.django_db
def test_paging_by_cursor_serves_each_event_once(reader: APIClient) -> None:
    contact = ContactFactory()
    emitted = [
        outbox_emit(topic="contact.updated", contact=contact, payload={"n": n}) for n in range(5)
    ]

    items, cursor = read_all(reader, limit=2)
    later = outbox_emit(topic="contact.updated", contact=contact, payload={"n": 5})
    more, _cursor = read_all(reader, after=cursor, limit=2)

    assert [item["id"] for item in items] == [str(event.pk) for event in emitted]
    assert [item["id"] for item in more] == [str(later.pk)]


@pytest.mark.django_db
def test_nothing_new_answers_the_same_cursor_to_poll_again(reader: APIClient) -> None:
    outbox_emit(topic="contact.updated", contact=ContactFactory(), payload={})
    cursor = reader.get(FEED).json()["next_cursor"]

    page = reader.get(FEED, {"after": cursor}).json()

    assert page == {"results": [], "next_cursor": cursor, "next": None}


@pytest.mark.django_db
@pytest.mark.parametrize("cursor", ["abc", "-1", "1.5", "99999999999999999999", " 3"])
def test_a_bad_cursor_is_a_400_naming_the_field(reader: APIClient, cursor: str) -> None:
    response = reader.get(FEED, {"after": cursor})

    assert response.status_code == 400
    assert list(response.json()) == ["after"]


@pytest.mark.django_db
@pytest.mark.parametrize("limit", ["0", "1001", "many"])
def test_a_limit_outside_1_to_1000_is_a_400_naming_the_field(reader: APIClient, limit: str) -> None:
    response = reader.get(FEED, {"limit": limit})

    assert response.status_code == 400
    assert list(response.json()) == ["limit"]


@pytest.mark.django_db
def test_an_erased_person_s_delivered_events_are_served_scrubbed(reader: APIClient) -> None:
    from crmsync.models import OutboxEvent
    from privacy.services import contact_erase

    contact = ContactFactory(email="lea@example.fr")
    contact_update(contact=contact, fields={"city": "Lyon"})
    OutboxEvent.objects.update(processed_at="2026-01-01T00:00:00Z")

    contact_erase(contact=contact, reason="request")

    page = reader.get(FEED).json()
    assert "lea@example.fr" not in str(page)
    assert page["results"][-1]["topic"] == "contact.erased"
    assert {"erased": True} in [item["data"] for item in page["results"]]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_event_committed_late_is_served_after_the_cursor_already_given(
    reader: APIClient,
) -> None:
    # given: a transaction writes an event first but commits last
    contact = ContactFactory()
    written, release, done = threading.Event(), threading.Event(), threading.Event()
    late: dict[str, Any] = {}

    def slow_writer() -> None:
        try:
            with transaction.atomic():
                late["event"] = outbox_emit(
                    topic="contact.updated", contact=contact, payload={"late": True}
                )
                written.set()
                release.wait(10)
        finally:
            connection.close()
            done.set()

    thread = threading.Thread(target=slow_writer)
    thread.start()
    assert written.wait(10)
    early = outbox_emit(topic="contact.updated", contact=contact, payload={"late": False})
    assert late["event"].created_at < early.created_at

    # when: an integrator reads while the slow transaction is still open, then after it
    first_items, cursor = read_all(reader)
    release.set()
    assert done.wait(10)
    thread.join()
    second_items, _cursor = read_all(reader, after=cursor)

    # then: each event exactly once, the late one after the cursor it could not precede
    assert [item["id"] for item in first_items] == [str(early.pk)]
    assert [item["id"] for item in second_items] == [str(late["event"].pk)]
    assert int(second_items[0]["cursor"]) > int(first_items[0]["cursor"])


@pytest.mark.django_db
def test_the_feed_is_in_the_openapi_schema(api: Callable[..., APIClient]) -> None:
    schema = APIClient().get("/api/schema/", {"format": "json"}).json()

    operation = schema["paths"]["/api/v1/events/"]["get"]
    assert {parameter["name"] for parameter in operation["parameters"]} >= {"after", "limit"}
    page = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    name = page.rsplit("/", 1)[-1]
    assert set(schema["components"]["schemas"][name]["properties"]) == {
        "results",
        "next_cursor",
        "next",
    }
