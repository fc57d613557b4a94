"""`/api/v1/contacts/`: upsert by normalised email, reads, updates, suppression (SPEC §4)."""

import uuid
from datetime import datetime

import pytest

from contacts.models import Contact, TimelineEvent
from contacts.services import suppression_add
from crmsync.models import OutboxEvent
from tests.api.live import LIVE_DB, at_the_same_time, post_over_http
from tests.factories import ApiClientFactory, ContactFactory, InterestFactory

CONTACTS = "/api/v1/contacts/"


def has_time_zone(value: str) -> bool:
    return datetime.fromisoformat(value).utcoffset() is not None


@pytest.mark.django_db
def test_post_creates_a_contact_and_answers_201_with_its_public_id(api):
    InterestFactory(slug="gardening")

    response = api().post(
        CONTACTS,
        {
            "email": "  Lea.Durand@Example.FR ",
            "first_name": "Léa",
            "phone": "06 12 34 56 78",
            "address": {"line1": "1 rue de la Paix", "city": "Paris", "country": "fr"},
            "language": "en",
            "lifecycle_stage": "lead",
            "interests": ["gardening"],
        },
        format="json",
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    contact = Contact.objects.get()
    assert body["id"] == str(contact.public_id)
    assert body["email"] == "lea.durand@example.fr"
    assert body["phone"] == "+33612345678"
    assert body["address"]["country"] == "FR"
    assert body["interests"] == ["gardening"]
    assert body["status"] == "active"
    assert has_time_zone(body["created_at"]) and has_time_zone(body["updated_at"])


@pytest.mark.django_db
def test_post_with_a_known_email_updates_the_same_contact_and_answers_200(api):
    client = api()
    first = client.post(CONTACTS, {"email": "lea@example.fr", "first_name": "Léa"}, format="json")

    second = client.post(CONTACTS, {"email": " LEA@Example.fr", "company": "ACME"}, format="json")

    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert (second.json()["first_name"], second.json()["company"]) == ("Léa", "ACME")
    assert Contact.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "lea@"}, "email"),
        ({}, "email"),
        ({"email": "lea@example.fr", "phone": "123"}, "phone"),
        ({"email": "lea@example.fr", "interests": ["no-such-topic"]}, "interests"),
        ({"email": "lea@example.fr", "interests": ["Not a slug!"]}, "interests"),
        ({"email": "lea@example.fr", "language": "de"}, "language"),
    ],
)
def test_post_with_an_invalid_field_is_400_on_that_field_and_writes_nothing(api, body, field):
    response = api().post(CONTACTS, body, format="json")

    assert response.status_code == 400
    errors = response.json()
    assert list(errors) == [field]
    assert errors[field] and all(isinstance(message, str) for message in errors[field])
    assert Contact.objects.count() == 0
    assert OutboxEvent.objects.count() == 0


@pytest.mark.django_db
def test_post_refuses_a_suppressed_email_and_explains_why(api):
    suppression_add(reason="global_unsubscribe", email="lea@example.fr")

    response = api().post(CONTACTS, {"email": "LEA@example.fr "}, format="json")

    assert response.status_code == 400
    assert "suppression" in response.json()["email"][0]
    assert Contact.objects.count() == 0
    assert TimelineEvent.objects.count() == 0
    assert OutboxEvent.objects.count() == 0


@pytest.mark.django_db
def test_get_by_email_matches_after_normalisation(api):
    lea = ContactFactory(email="lea@example.fr")
    ContactFactory(email="other@example.fr")

    response = api().get(CONTACTS, {"email": "  LEA@Example.FR "})

    assert response.status_code == 200
    assert [found["id"] for found in response.json()["results"]] == [str(lea.public_id)]


@pytest.mark.django_db
def test_get_by_an_unknown_or_malformed_email_finds_nothing(api):
    ContactFactory(email="lea@example.fr")
    client = api()

    assert client.get(CONTACTS, {"email": "nobody@example.fr"}).json()["count"] == 0
    assert client.get(CONTACTS, {"email": "not an email"}).json()["count"] == 0


@pytest.mark.django_db
def test_the_contact_list_is_paginated(api):
    ContactFactory.create_batch(52)

    first = api().get(CONTACTS).json()

    assert set(first) == {"count", "next", "previous", "results"}
    assert first["count"] == 52
    assert len(first["results"]) == 50
    assert first["previous"] is None
    second = api().get(first["next"]).json()
    assert len(second["results"]) == 2
    assert second["next"] is None
    assert second["previous"]


@pytest.mark.django_db
def test_get_by_id_answers_the_contact(api, camille):
    response = api().get(f"{CONTACTS}{camille.public_id}/")

    assert response.status_code == 200
    assert response.json()["email"] == "camille@example.fr"


@pytest.mark.django_db
def test_ids_in_urls_are_public_uuids_never_database_ids(api, camille):
    client = api()

    assert client.get(f"{CONTACTS}{camille.pk}/").status_code == 404
    assert client.get(f"{CONTACTS}{uuid.uuid4()}/").status_code == 404
    assert client.get(f"{CONTACTS}{'-' * 36}/").status_code == 404
    assert client.get(f"{CONTACTS}{camille.public_id}/").json()["id"] == str(camille.public_id)


@pytest.mark.django_db
def test_patch_updates_the_given_fields_only(api, camille):
    response = api().patch(
        f"{CONTACTS}{camille.public_id}/",
        {"company": "ACME", "address": {"city": "Lyon"}},
        format="json",
    )

    assert response.status_code == 200
    camille.refresh_from_db()
    assert (camille.company, camille.city, camille.first_name) == ("ACME", "Lyon", "Camille")


@pytest.mark.django_db
def test_patch_changes_the_email_after_normalisation(api, camille):
    response = api().patch(
        f"{CONTACTS}{camille.public_id}/", {"email": " Camille.New@Example.FR"}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["email"] == "camille.new@example.fr"


@pytest.mark.django_db
def test_patch_to_another_contacts_email_is_400_on_email(api, camille):
    ContactFactory(email="taken@example.fr")

    response = api().patch(
        f"{CONTACTS}{camille.public_id}/", {"email": "TAKEN@example.fr"}, format="json"
    )

    assert response.status_code == 400
    assert list(response.json()) == ["email"]
    camille.refresh_from_db()
    assert camille.email == "camille@example.fr"


@pytest.mark.django_db
def test_patch_an_unknown_contact_is_404(api):
    response = api().patch(f"{CONTACTS}{uuid.uuid4()}/", {"company": "ACME"}, format="json")

    assert response.status_code == 404


@pytest.mark.postgres
@pytest.mark.slow
@LIVE_DB
def test_concurrent_posts_of_one_new_email_create_exactly_one_contact(live_server):
    key = ApiClientFactory().plain_key
    url = f"{live_server.url}{CONTACTS}"

    statuses = [
        status
        for status, _body in at_the_same_time(
            lambda: post_over_http(url, key, b'{"email": "race@example.fr"}'), times=10
        )
    ]

    assert set(statuses) <= {200, 201}, statuses
    assert statuses.count(201) == 1
    assert Contact.objects.filter(email="race@example.fr").count() == 1
    assert OutboxEvent.objects.filter(topic="contact.created").count() == 1


@pytest.mark.django_db
def test_patch_to_a_suppressed_email_is_400_on_email(api, camille):
    suppression_add(reason="hard_bounce", email="bounced@example.fr")

    response = api().patch(
        f"{CONTACTS}{camille.public_id}/", {"email": "bounced@example.fr"}, format="json"
    )

    assert response.status_code == 400
    assert "suppression" in response.json()["email"][0]
    camille.refresh_from_db()
    assert camille.email == "camille@example.fr"
