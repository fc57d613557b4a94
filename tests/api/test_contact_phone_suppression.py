"""`/api/v1/contacts/`: a phone on the suppression list is refused on `phone`, never saved."""

import pytest

from contacts.services import suppression_add

CONTACTS = "/api/v1/contacts/"


@pytest.mark.django_db
def test_patch_to_a_suppressed_phone_is_400_on_phone(api, camille):
    suppression_add(reason="erased", phone="+33698765432")

    response = api().patch(
        f"{CONTACTS}{camille.public_id}/",
        {"phone": "06 98 76 54 32", "company": "ACME"},
        format="json",
    )

    assert response.status_code == 400
    assert list(response.json()) == ["phone"]
    assert "suppression list" in response.json()["phone"][0]
    camille.refresh_from_db()
    assert (camille.phone, camille.company) == ("", "")


@pytest.mark.django_db
def test_upserting_a_known_contact_with_a_suppressed_phone_is_400_on_phone(api, camille):
    suppression_add(reason="erased", phone="+33698765432")

    response = api().post(
        CONTACTS, {"email": camille.email, "phone": "+33 6 98 76 54 32"}, format="json"
    )

    assert response.status_code == 400
    assert list(response.json()) == ["phone"]
    camille.refresh_from_db()
    assert camille.phone == ""


@pytest.mark.django_db
def test_patch_keeping_the_contacts_own_suppressed_phone_is_accepted(api, camille):
    camille.phone = "+33698765432"
    camille.save()
    suppression_add(reason="hard_bounce", phone="+33698765432")

    response = api().patch(
        f"{CONTACTS}{camille.public_id}/",
        {"phone": "+33698765432", "company": "ACME"},
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["company"] == "ACME"
