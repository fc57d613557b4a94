"""The contact's lawful-basis fields (issue 12, SPEC §4): `b2b`, `relationship`,
`customer_since`, `customer_until`, through the service, the API, imports and the export."""

import json
from datetime import date

import pytest
from django.core.exceptions import ValidationError

from contacts.models import Contact
from contacts.services import contact_update, contact_upsert
from crmsync.models import OutboxEvent
from privacy.exports import personal_data_json
from privacy.merge import contact_merge
from tests.contacts.imports import csv_bytes, rejected, run_import
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

CONTACTS = "/api/v1/contacts/"


def test_a_new_contact_is_a_consumer_prospect_until_told_otherwise():
    contact, _created = contact_upsert(email="lea@example.fr")

    assert (contact.b2b, contact.relationship) == (False, "prospect")
    assert (contact.customer_since, contact.customer_until) == (None, None)


def test_the_service_stores_a_customer_with_its_contract_dates_and_tells_the_crms():
    contact, _created = contact_upsert(
        email="lea@example.fr",
        fields={
            "b2b": "oui",
            "relationship": "customer",
            "customer_since": "2024-03-01",
            "customer_until": "01/03/2026",
        },
    )

    contact.refresh_from_db()
    assert contact.b2b is True
    assert contact.relationship == "customer"
    assert (contact.customer_since, contact.customer_until) == (date(2024, 3, 1), date(2026, 3, 1))
    payload = OutboxEvent.objects.get(topic="contact.created").payload
    assert payload["relationship"] == "customer"
    assert payload["customer_until"] == "2026-03-01"
    assert payload["b2b"] is True


def test_a_contract_cannot_end_before_it_began():
    with pytest.raises(ValidationError) as error:
        contact_upsert(
            email="lea@example.fr",
            fields={
                "relationship": "customer",
                "customer_since": "2025-01-01",
                "customer_until": "2024-12-31",
            },
        )

    assert list(error.value.message_dict) == ["customer_until"]
    assert not Contact.objects.exists()  # nothing half-written


def test_a_prospect_has_no_customer_dates():
    with pytest.raises(ValidationError) as error:
        contact_upsert(email="lea@example.fr", fields={"customer_since": "2025-01-01"})

    assert "customer_since" in error.value.message_dict
    assert not Contact.objects.exists()


def test_an_update_is_checked_against_the_dates_already_stored():
    contact = ContactFactory(relationship="customer", customer_since=date(2025, 1, 1))

    with pytest.raises(ValidationError) as error:
        contact_update(contact=contact, fields={"customer_until": "2024-06-30"})
    assert list(error.value.message_dict) == ["customer_until"]

    contact_update(contact=contact, fields={"customer_until": "2026-06-30"})
    contact.refresh_from_db()
    assert contact.customer_until == date(2026, 6, 30)


def test_bad_values_name_their_field():
    with pytest.raises(ValidationError) as error:
        contact_upsert(
            email="lea@example.fr",
            fields={"b2b": "maybe", "relationship": "partner", "customer_since": "soon"},
        )

    assert set(error.value.message_dict) == {"b2b", "relationship", "customer_since"}


# --- the API (SPEC §4 names) ------------------------------------------------------------------


def test_the_api_takes_and_answers_the_lawful_basis_fields(api):
    client = api()

    created = client.post(
        CONTACTS,
        {
            "email": "jordan@northwind.example",
            "b2b": True,
            "relationship": "customer",
            "customer_since": "2024-03-01",
        },
        format="json",
    )

    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["b2b"] is True
    assert body["relationship"] == "customer"
    assert (body["customer_since"], body["customer_until"]) == ("2024-03-01", None)

    patched = client.patch(
        f"{CONTACTS}{body['id']}/", {"customer_until": "2026-02-28"}, format="json"
    )
    assert patched.status_code == 200, patched.json()
    assert client.get(f"{CONTACTS}{body['id']}/").json()["customer_until"] == "2026-02-28"


def test_the_api_refuses_an_end_before_the_start_and_writes_nothing(api):
    response = api().post(
        CONTACTS,
        {
            "email": "jordan@northwind.example",
            "relationship": "customer",
            "customer_since": "2024-03-01",
            "customer_until": "2023-03-01",
        },
        format="json",
    )

    assert response.status_code == 400
    assert "customer_until" in response.json()
    assert not Contact.objects.exists()


def test_the_api_refuses_an_unknown_relationship(api):
    response = api().post(
        CONTACTS, {"email": "jordan@northwind.example", "relationship": "partner"}, format="json"
    )

    assert response.status_code == 400
    assert "relationship" in response.json()


# --- imports and the person's export ----------------------------------------------------------


def test_an_import_maps_the_french_columns_of_the_relationship():
    contact_import = run_import(
        csv_bytes(
            [
                "Courriel,Professionnel,Relation,Client depuis,Client jusqu'au",
                "ana@example.fr,oui,client,01/02/2024,",
                "bruno@example.fr,non,prospect,,",
                "chloe@example.fr,non,prospect,01/02/2024,",
                "dan@example.fr,non,client,01/02/2024,01/01/2024",
            ],
            delimiter=";",
        )
    )

    ana = Contact.objects.get(email="ana@example.fr")
    assert (ana.b2b, ana.relationship, ana.customer_since) == (True, "customer", date(2024, 2, 1))
    assert Contact.objects.get(email="bruno@example.fr").relationship == "prospect"
    lines = dict(rejected(contact_import))
    assert set(lines) == {4, 5}
    assert lines[4].startswith("customer_since: ")
    assert lines[5].startswith("customer_until: ")


def test_an_import_checks_the_dates_against_the_contact_already_there():
    ContactFactory(email="ana@example.fr", relationship="customer", customer_since=date(2025, 1, 1))

    contact_import = run_import(csv_bytes(["email,customer_until", "ana@example.fr,2024-01-01"]))

    assert [line for line, _reason in rejected(contact_import)] == [2]
    assert Contact.objects.get(email="ana@example.fr").customer_until is None


def test_the_persons_export_carries_the_lawful_basis_fields():
    contact = ContactFactory(
        b2b=True, relationship="customer", customer_since=date(2024, 3, 1), customer_until=None
    )

    exported = json.loads(personal_data_json(contact))["contact"]

    assert exported["b2b"] is True
    assert exported["relationship"] == "customer"
    assert exported["customer_since"] == "2024-03-01"
    assert exported["customer_until"] is None


def test_a_merge_keeps_the_persons_customer_relationship():
    survivor = ContactFactory(email="lea@example.fr")
    merged = ContactFactory(
        email="lea.old@example.fr",
        relationship="customer",
        customer_since=date(2021, 5, 1),
        customer_until=date(2024, 5, 1),
    )

    contact_merge(survivor=survivor, merged=merged, actor="test")

    survivor.refresh_from_db()
    assert (survivor.relationship, survivor.customer_since, survivor.customer_until) == (
        "customer",
        date(2021, 5, 1),
        date(2024, 5, 1),
    )
