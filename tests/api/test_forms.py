"""`POST /api/v1/forms/submissions/`: a web form's contact and consent boxes, all or nothing."""

import pytest

from consent.models import ConsentRecord, ConsentState
from contacts.models import Contact, TimelineEvent
from contacts.selectors import suppression_reason
from contacts.services import suppression_add
from crmsync.models import OutboxEvent
from tests.api.payloads import FORM_URL, box, form_body
from tests.factories import grant

FORMS = "/api/v1/forms/submissions/"


def nothing_written() -> bool:
    return not (
        Contact.objects.exists()
        or ConsentRecord.objects.exists()
        or ConsentState.objects.exists()
        or TimelineEvent.objects.exists()
        or OutboxEvent.objects.exists()
    )


@pytest.mark.django_db
def test_a_submission_writes_the_contact_and_its_consents(api, newsletter, offers):
    response = api().post(
        FORMS,
        form_body(
            email=" Lea@Example.FR",
            first_name="Léa",
            phone="06 12 34 56 78",
            boxes=[box(newsletter), box(newsletter, channel="sms"), box(offers)],
        ),
        format="json",
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == {"contact", "consents"}
    contact = Contact.objects.get()
    assert body["contact"]["id"] == str(contact.public_id)
    assert (contact.email, contact.first_name, contact.phone) == (
        "lea@example.fr",
        "Léa",
        "+33612345678",
    )
    assert [(item["purpose"], item["channel"], item["status"]) for item in body["consents"]] == [
        ("newsletter", "email", "granted"),
        ("newsletter", "sms", "granted"),
        ("offers", "email", "pending"),
    ]
    record = ConsentRecord.objects.get(uuid=body["consents"][0]["id"])
    assert (record.source_kind, record.source_reference) == ("web_form", FORM_URL)
    assert record.unticked_by_default is True
    assert record.personal_evidence.ip == "203.0.113.7"
    assert TimelineEvent.objects.filter(contact=contact, kind="form_submitted").count() == 1


@pytest.mark.django_db
def test_an_unknown_purpose_rejects_the_whole_submission(api, newsletter):
    bad_box = {**box(newsletter), "purpose": "no-such-purpose"}

    response = api().post(
        FORMS, form_body(email="lea@example.fr", boxes=[box(newsletter), bad_box]), format="json"
    )

    assert response.status_code == 400
    errors = response.json()
    assert list(errors) == ["consents"]
    assert errors["consents"][0] == {}
    assert list(errors["consents"][1]) == ["purpose"]
    assert nothing_written()


@pytest.mark.django_db
def test_a_malformed_box_is_reported_in_the_same_per_box_shape(api, newsletter):
    malformed = {**box(newsletter), "granted": "perhaps"}

    response = api().post(
        FORMS,
        form_body(email="lea@example.fr", boxes=[box(newsletter), malformed, box(newsletter)]),
        format="json",
    )

    assert response.status_code == 400
    consents = response.json()["consents"]
    assert consents[0] == {} and consents[2] == {}
    assert list(consents[1]) == ["granted"]
    assert nothing_written()


@pytest.mark.django_db
def test_a_ticked_box_without_its_wording_is_refused(api, newsletter):
    unworded = {**box(newsletter), "wording": ""}

    response = api().post(FORMS, form_body(email="lea@example.fr", boxes=[unworded]), format="json")

    assert response.status_code == 400
    assert list(response.json()["consents"][0]) == ["evidence"]
    assert nothing_written()


@pytest.mark.django_db
def test_an_invalid_contact_field_is_reported_under_contact(api, newsletter):
    response = api().post(
        FORMS,
        form_body(email="lea@example.fr", phone="123", boxes=[box(newsletter)]),
        format="json",
    )

    assert response.status_code == 400
    assert list(response.json()) == ["contact"]
    assert list(response.json()["contact"]) == ["phone"]
    assert nothing_written()


@pytest.mark.django_db
def test_an_invalid_email_is_reported_under_contact(api, newsletter):
    response = api().post(
        FORMS, form_body(email="not-an-email", boxes=[box(newsletter)]), format="json"
    )

    assert response.status_code == 400
    assert list(response.json()["contact"]) == ["email"]
    assert nothing_written()


@pytest.mark.django_db
def test_an_unticked_box_without_earlier_consent_records_nothing(api, newsletter, offers):
    response = api().post(
        FORMS,
        form_body(email="lea@example.fr", boxes=[box(newsletter), box(offers, granted=False)]),
        format="json",
    )

    assert response.status_code == 201
    assert [item["purpose"] for item in response.json()["consents"]] == ["newsletter"]
    assert not ConsentRecord.objects.filter(purpose=offers).exists()
    assert not ConsentState.objects.filter(purpose=offers).exists()


@pytest.mark.django_db
def test_an_unticked_box_after_an_earlier_grant_withdraws_it(api, camille, newsletter):
    grant(camille, newsletter)

    response = api().post(
        FORMS,
        form_body(email=camille.email, boxes=[box(newsletter, granted=False)]),
        format="json",
    )

    assert response.status_code == 201
    consents = response.json()["consents"]
    assert [(item["action"], item["status"]) for item in consents] == [("withdraw", "withdrawn")]
    assert ConsentState.objects.get(contact=camille, purpose=newsletter).status == "withdrawn"


@pytest.mark.django_db
def test_a_suppressed_person_ticking_a_box_is_answered_pending_and_stays_suppressed(
    api, newsletter
):
    suppression_add(reason="global_unsubscribe", email="back@example.fr")

    response = api().post(
        FORMS, form_body(email="back@example.fr", boxes=[box(newsletter)]), format="json"
    )

    assert response.status_code == 201, response.json()
    assert response.json()["contact"] is None
    assert [item["status"] for item in response.json()["consents"]] == ["pending"]
    assert nothing_written()
    assert suppression_reason(kind="email", value="back@example.fr") == "global_unsubscribe"


@pytest.mark.django_db
def test_a_suppressed_person_is_not_re_added_by_a_form_without_consent(api, newsletter):
    suppression_add(reason="global_unsubscribe", email="gone@example.fr")

    response = api().post(
        FORMS,
        form_body(email="gone@example.fr", boxes=[box(newsletter, granted=False)]),
        format="json",
    )

    assert response.status_code == 400
    assert "suppression" in response.json()["contact"]["email"][0]
    assert nothing_written()
    assert suppression_reason(kind="email", value="gone@example.fr") == "global_unsubscribe"
