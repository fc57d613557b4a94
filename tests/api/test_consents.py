"""`POST /api/v1/consents/`, state, history and receipts (SPEC §4)."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from consent.models import ConsentRecord, ConsentState
from contacts.models import Contact, TimelineEvent
from contacts.selectors import suppression_reason
from contacts.services import suppression_add
from crmsync.models import OutboxEvent
from privacy.merge import contact_merge
from tests.api.payloads import consent_body, evidence_body
from tests.factories import ContactFactory, grant

CONSENTS = "/api/v1/consents/"
RECORD_KEYS = {
    "id",
    "contact",
    "purpose",
    "version",
    "channel",
    "action",
    "status",
    "recorded_at",
    "hash",
}


def written() -> dict[str, int]:
    """How many rows every consent write touches: nothing may change after a refused request."""
    return {
        "records": ConsentRecord.objects.count(),
        "states": ConsentState.objects.count(),
        "contacts": Contact.objects.count(),
        "timeline": TimelineEvent.objects.count(),
        "outbox": OutboxEvent.objects.count(),
        "ledger": sum(Contact.objects.values_list("ledger_seq", flat=True)),
    }


@pytest.mark.django_db
def test_one_object_is_recorded_and_answered_as_one_record(api, camille, newsletter):
    response = api().post(
        CONSENTS, consent_body(newsletter, contact=str(camille.public_id)), format="json"
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) >= RECORD_KEYS
    record = ConsentRecord.objects.get()
    assert body["id"] == str(record.uuid)
    assert (body["contact"], body["purpose"], body["version"]) == (
        str(camille.public_id),
        "newsletter",
        1,
    )
    assert (body["action"], body["status"], body["hash"]) == ("grant", "granted", record.hash)


@pytest.mark.django_db
def test_a_grant_by_email_creates_the_unknown_contact(api, newsletter):
    response = api().post(
        CONSENTS, consent_body(newsletter, email=" New.Person@Example.fr"), format="json"
    )

    assert response.status_code == 201
    contact = Contact.objects.get()
    assert contact.email == "new.person@example.fr"
    assert response.json()["contact"] == str(contact.public_id)


@pytest.mark.django_db
def test_an_array_is_recorded_and_answered_as_an_array(api, camille, newsletter):
    response = api().post(
        CONSENTS,
        [
            consent_body(newsletter, contact=str(camille.public_id), channel="email"),
            consent_body(newsletter, email="other@example.fr", channel="sms"),
        ],
        format="json",
    )

    assert response.status_code == 201
    body = response.json()
    assert [(item["channel"], item["status"]) for item in body] == [
        ("email", "granted"),
        ("sms", "granted"),
    ]
    assert ConsentRecord.objects.count() == 2


@pytest.mark.django_db
def test_an_array_with_one_unknown_purpose_writes_nothing_and_reports_per_item(
    api, camille, newsletter
):
    grant(camille, newsletter, channel="sms")
    before = written()
    invalid = {
        **consent_body(newsletter, contact=str(camille.public_id)),
        "purpose": "no-such-purpose",
    }

    response = api().post(
        CONSENTS,
        [consent_body(newsletter, email="new@example.fr"), invalid],
        format="json",
    )

    assert response.status_code == 400
    errors = response.json()
    assert errors[0] == {}
    assert list(errors[1]) == ["purpose"]
    assert written() == before
    assert not Contact.objects.filter(email="new@example.fr").exists()


@pytest.mark.django_db
def test_an_unknown_purpose_is_reported_before_the_contact_is_looked_up(api, newsletter):
    unknown_both = {
        **consent_body(newsletter, contact=str(uuid.uuid4())),
        "purpose": "no-such-purpose",
    }
    by_new_email = {**consent_body(newsletter, email="new@example.fr"), "purpose": "nope"}

    response = api().post(CONSENTS, [unknown_both, by_new_email], format="json")

    assert response.status_code == 400
    assert [list(error) for error in response.json()] == [["purpose"], ["purpose"]]
    assert not Contact.objects.filter(email="new@example.fr").exists()


@pytest.mark.django_db
def test_an_array_with_one_malformed_item_writes_nothing_and_reports_per_item(
    api, camille, newsletter
):
    before = written()

    response = api().post(
        CONSENTS,
        [
            consent_body(newsletter, contact=str(camille.public_id)),
            consent_body(newsletter, contact=str(camille.public_id), channel="pigeon"),
        ],
        format="json",
    )

    assert response.status_code == 400
    assert response.json()[0] == {}
    assert list(response.json()[1]) == ["channel"]
    assert written() == before


@pytest.mark.django_db
def test_an_empty_array_is_400(api):
    assert api().post(CONSENTS, [], format="json").status_code == 400


@pytest.mark.django_db
def test_a_grant_on_a_double_opt_in_purpose_is_pending(api, camille, offers):
    response = api().post(
        CONSENTS, consent_body(offers, contact=str(camille.public_id)), format="json"
    )

    assert response.status_code == 201
    assert response.json()["status"] == "pending"
    assert ConsentState.objects.get().status == "pending"


@pytest.mark.django_db
def test_a_withdraw_is_withdrawn(api, camille, newsletter):
    grant(camille, newsletter)

    response = api().post(
        CONSENTS,
        consent_body(newsletter, contact=str(camille.public_id), action="withdraw", evidence={}),
        format="json",
    )

    assert response.status_code == 201
    assert (response.json()["action"], response.json()["status"]) == ("withdraw", "withdrawn")
    assert ConsentState.objects.get(channel="email").status == "withdrawn"


@pytest.mark.django_db
def test_a_withdraw_for_an_unknown_email_is_400_and_creates_nobody(api, newsletter):
    response = api().post(
        CONSENTS,
        consent_body(newsletter, email="nobody@example.fr", action="withdraw"),
        format="json",
    )

    assert response.status_code == 400
    assert list(response.json()) == ["email"]
    assert Contact.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"contact": str(uuid.UUID(int=1))}, "contact"),
        ({"contact": "not-a-uuid"}, "contact"),
        ({"purpose": "no-such-purpose"}, "purpose"),
        ({"channel": "postal"}, "channel"),  # not a channel of this purpose
        ({"action": "confirm"}, "action"),  # only the confirmation link confirms
        ({"source": {"kind": "admin"}}, "source"),
        ({"evidence": {"wording": "", "unticked_by_default": True}}, "evidence"),
        ({"evidence": {"wording": "I agree", "unticked_by_default": False}}, "evidence"),
        ({"evidence": {"wording": "I agree", "ip": "not-an-ip"}}, "evidence"),
    ],
)
def test_an_invalid_single_consent_is_400_on_its_field_and_writes_nothing(
    api, camille, newsletter, change, field
):
    before = written()
    body = {**consent_body(newsletter, contact=str(camille.public_id)), **change}

    response = api().post(CONSENTS, body, format="json")

    assert response.status_code == 400
    errors = response.json()
    assert isinstance(errors, dict), errors
    assert list(errors) == [field]
    assert written() == before


@pytest.mark.django_db
def test_a_pre_ticked_box_is_refused_as_consent(api, camille, newsletter):
    body = consent_body(
        newsletter,
        contact=str(camille.public_id),
        evidence=evidence_body(newsletter, unticked_by_default=False),
    )

    response = api().post(CONSENTS, body, format="json")

    assert response.status_code == 400
    assert "Planet49" in response.json()["evidence"][0]
    assert ConsentRecord.objects.count() == 0


@pytest.mark.django_db
def test_consent_given_in_the_future_is_400(api, camille, newsletter):
    tomorrow = (timezone.now() + timedelta(days=1)).isoformat()
    body = consent_body(newsletter, contact=str(camille.public_id), given_at=tomorrow)

    response = api().post(CONSENTS, body, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["given_at"]
    assert ConsentRecord.objects.count() == 0


@pytest.mark.django_db
def test_consent_given_in_the_past_keeps_its_date(api, camille, newsletter):
    given_at = timezone.now() - timedelta(days=3)
    body = consent_body(newsletter, contact=str(camille.public_id), given_at=given_at.isoformat())

    response = api().post(CONSENTS, body, format="json")

    assert response.status_code == 201
    assert ConsentRecord.objects.get().given_at == given_at


@pytest.mark.django_db
@pytest.mark.parametrize("both", [True, False], ids=["both", "neither"])
def test_email_and_contact_are_both_or_neither_is_400(api, camille, newsletter, both):
    body = consent_body(newsletter)
    if both:
        body.update(email=camille.email, contact=str(camille.public_id))

    response = api().post(CONSENTS, body, format="json")

    assert response.status_code == 400
    assert "email" in response.json()
    assert ConsentRecord.objects.count() == 0


@pytest.mark.django_db
def test_consent_history_lists_every_record_oldest_first(api, camille, newsletter):
    first = grant(camille, newsletter)
    second = grant(camille, newsletter, action="withdraw")
    third = grant(camille, newsletter, channel="sms")

    response = api().get(f"/api/v1/contacts/{camille.public_id}/consent-history/")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert [item["id"] for item in body["results"]] == [
        str(first.uuid),
        str(second.uuid),
        str(third.uuid),
    ]
    assert [item["action"] for item in body["results"]] == ["grant", "withdraw", "grant"]


@pytest.mark.django_db
def test_consent_history_shows_only_this_contacts_records(api, camille, newsletter):
    grant(ContactFactory(), newsletter)

    response = api().get(f"/api/v1/contacts/{camille.public_id}/consent-history/")

    assert response.json()["count"] == 0


@pytest.mark.django_db
def test_consents_show_the_current_state_per_purpose_and_channel(api, camille, newsletter, offers):
    grant(camille, newsletter)
    withdrawn = grant(camille, newsletter, action="withdraw")
    granted = grant(camille, newsletter, channel="sms")
    pending = grant(camille, offers)

    response = api().get(f"/api/v1/contacts/{camille.public_id}/consents/")

    assert response.status_code == 200
    results = response.json()["results"]
    assert all(set(item) == {"purpose", "channel", "status", "since", "record"} for item in results)
    assert [
        (item["purpose"], item["channel"], item["status"], item["record"]) for item in results
    ] == [
        ("newsletter", "email", "withdrawn", str(withdrawn.uuid)),
        ("newsletter", "sms", "granted", str(granted.uuid)),
        ("offers", "email", "pending", str(pending.uuid)),
    ]


@pytest.mark.django_db
def test_the_receipt_is_shaped_after_iso_27560(api, camille, newsletter):
    record = grant(camille, newsletter)

    response = api().get(f"{CONSENTS}{record.uuid}/receipt/")

    assert response.status_code == 200
    receipt = response.json()
    assert {"record_id", "pii_principal_id", "notice", "processing", "event", "integrity"} <= set(
        receipt
    )
    assert receipt["record_id"] == str(record.uuid)
    assert receipt["pii_principal_id"] == str(camille.public_id)
    assert receipt["notice"]["wording"] == newsletter.current_version.wording_fr
    assert receipt["processing"]["purposes"][0]["purpose"] == "newsletter"
    assert receipt["event"]["event_type"] == "given"
    assert receipt["integrity"]["hash"] == record.hash
    assert receipt["integrity"]["previous_hash"] == record.previous_hash


@pytest.mark.django_db
def test_the_receipt_of_an_unknown_record_is_404(api):
    assert api().get(f"{CONSENTS}{uuid.uuid4()}/receipt/").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["crm", "import"])
def test_a_list_cannot_re_add_a_suppressed_email(api, newsletter, kind):
    suppression_add(reason="global_unsubscribe", email="gone@example.fr")

    response = api().post(
        CONSENTS, consent_body(newsletter, email="gone@example.fr", kind=kind), format="json"
    )

    assert response.status_code == 400
    assert list(response.json()) == ["email"]
    assert Contact.objects.count() == 0
    assert suppression_reason(kind="email", value="gone@example.fr") == "global_unsubscribe"


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["crm", "import"])
def test_a_list_cannot_re_grant_a_known_suppressed_contact(api, camille, newsletter, kind):
    suppression_add(reason="complaint", email=camille.email)

    response = api().post(
        CONSENTS, consent_body(newsletter, contact=str(camille.public_id), kind=kind), format="json"
    )

    assert response.status_code == 400
    assert list(response.json()) == ["email"]
    assert ConsentRecord.objects.count() == 0
    assert suppression_reason(kind="email", value=camille.email) == "complaint"


@pytest.mark.django_db
def test_a_web_form_claimed_by_the_client_no_longer_lifts_the_suppression(api, newsletter):
    # A client claiming `web_form` used to lift the suppression at once; anyone can claim it,
    # so the grant now waits, pending, for the person's own click (test_suppressed_addresses).
    suppression_add(reason="global_unsubscribe", email="back@example.fr")

    response = api().post(
        CONSENTS, consent_body(newsletter, email="back@example.fr", kind="web_form"), format="json"
    )

    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "pending"
    assert not Contact.objects.filter(email="back@example.fr").exists()
    assert suppression_reason(kind="email", value="back@example.fr") == "global_unsubscribe"


@pytest.mark.django_db
def test_an_array_costs_the_same_statements_whatever_its_length(
    api, newsletter, django_assert_max_num_queries
):
    """Contacts of an array are found at once, by public id and by email (a merged contact's
    address finding its survivor): an array of 60 known people costs what an array of 5
    costs (SPEC §3 "Ledger at scale")."""
    client = api(scopes=["consents:write", "contacts:write"])

    def array(size: int, start: int) -> list[dict]:
        known = ContactFactory.create_batch(size)
        survivor = ContactFactory()
        contact_merge(survivor=survivor, merged=known[0], actor="test")
        return [
            *(consent_body(newsletter, contact=str(c.public_id)) for c in known[1:]),
            consent_body(newsletter, email=known[0].email),
            *(consent_body(newsletter, email=f"new{start + n}@example.fr") for n in range(2)),
        ]

    short, long = array(5, 0), array(60, 100)

    with django_assert_max_num_queries(100) as few:
        assert client.post(CONSENTS, short, format="json").status_code == 201
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert client.post(CONSENTS, long, format="json").status_code == 201
    assert ConsentRecord.objects.filter(contact__status="merged").count() == 0
