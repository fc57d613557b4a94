"""A suppressed address is lifted only by the person's own confirmed act (SPEC §3, security).

Whatever `source.kind` an API client claims, a grant for a suppressed address changes nothing
at once: it is answered pending, an erased person is not re-created, one confirmation email a
day at most goes to the address, and only following its link records the grant and brings the
person back. Lists (import, CRM) are refused with the reason.
"""

import re
from urllib.parse import urlsplit

import pytest
from django.test import Client

from consent.eligibility import contact_eligibility
from consent.models import ConsentRecord, ConsentState
from contacts.models import Contact
from contacts.selectors import suppression_reason
from contacts.services import suppression_add
from tests.api.payloads import box, consent_body, form_body
from tests.conftest import Mailbox, message_text, wait_for, worker_settled
from tests.factories import ContactFactory, PurposeFactory

CONSENTS = "/api/v1/consents/"
FORMS = "/api/v1/forms/submissions/"
ADDRESS = "back@example.fr"
# the kinds an API client may claim for the origin of a consent (consent/api/serializers.py)
PERSON_KINDS = ["api", "web_form"]
LIST_KINDS = ["crm", "import"]


def signup_links(mailbox: Mailbox, to: str = ADDRESS) -> list[str]:
    """The paths of the confirmation links emailed to an address."""
    paths = []
    for message in mailbox.messages:
        found = re.search(r"https?://\S+/confirm/\S+/", message_text(message))
        if message["To"] == to and found:
            paths.append(urlsplit(found.group(0)).path)
    return paths


# --- an address with no contact: an erased person, or one who unsubscribed before ----------


@pytest.mark.django_db
@pytest.mark.parametrize("kind", PERSON_KINDS)
@pytest.mark.parametrize("reason", ["erased", "global_unsubscribe", "complaint", "hard_bounce"])
def test_a_grant_for_a_suppressed_address_is_answered_pending_and_creates_nobody(
    api, newsletter, kind, reason
):
    suppression_add(reason=reason, email=ADDRESS)

    response = api().post(
        CONSENTS, consent_body(newsletter, email=ADDRESS, kind=kind), format="json"
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["status"], body["action"], body["purpose"]) == ("pending", "grant", "newsletter")
    assert (body["id"], body["contact"], body["recorded_at"], body["hash"]) == (None,) * 4
    assert not Contact.objects.exists()
    assert not ConsentRecord.objects.exists()
    assert suppression_reason(kind="email", value=ADDRESS) == reason


@pytest.mark.django_db
@pytest.mark.parametrize("kind", LIST_KINDS)
def test_a_list_grant_for_a_suppressed_address_is_refused_with_the_reason(api, newsletter, kind):
    suppression_add(reason="erased", email=ADDRESS)

    response = api().post(
        CONSENTS, consent_body(newsletter, email=ADDRESS, kind=kind), format="json"
    )

    assert response.status_code == 400
    assert "suppression list" in response.json()["email"][0]
    assert not Contact.objects.exists()
    assert suppression_reason(kind="email", value=ADDRESS) == "erased"


@pytest.mark.django_db
def test_a_grant_for_a_suppressed_address_still_needs_valid_evidence(api, newsletter):
    suppression_add(reason="erased", email=ADDRESS)
    body = consent_body(newsletter, email=ADDRESS)
    body["evidence"]["unticked_by_default"] = False

    response = api().post(CONSENTS, body, format="json")

    assert response.status_code == 400
    assert "pre-ticked" in response.json()["evidence"][0]


def test_an_erased_person_comes_back_only_by_following_the_emailed_link(
    transactional_db, celery_worker, mailbox, api, newsletter
):
    # given an erased person (only the suppression digest remembers the address)
    suppression_add(reason="erased", email=ADDRESS)

    # when a form signs her up again
    response = api().post(
        FORMS, form_body(email=ADDRESS, boxes=[box(newsletter)], first_name="Léa"), format="json"
    )

    # then nothing is stored yet, and her address gets a link
    assert response.status_code == 201, response.json()
    assert response.json()["contact"] is None
    assert [c["status"] for c in response.json()["consents"]] == ["pending"]
    assert not Contact.objects.exists()
    [link] = wait_for(lambda: signup_links(mailbox), timeout=30)
    browser = Client()
    page = browser.get(link)
    assert page.status_code == 200 and b'<button type="submit"' in page.content
    assert not Contact.objects.exists()  # link scanners only GET

    # when she confirms
    confirmed = browser.post(link, HTTP_USER_AGENT="Mozilla/5.0 (Léa)")

    # then she is back, with the grant recorded as her email confirmation
    assert confirmed.status_code == 200
    lea = Contact.objects.get(email=ADDRESS)
    record = ConsentRecord.objects.get(contact=lea)
    assert (record.action, record.status, record.source_kind) == (
        "grant",
        "granted",
        "email_confirmation",
    )
    assert record.wording == newsletter.current_version.wording_fr
    assert record.personal_evidence.user_agent == "Mozilla/5.0 (Léa)"
    assert suppression_reason(kind="email", value=ADDRESS) is None
    assert contact_eligibility(lea, newsletter, "email") == []
    # a second click records nothing more
    browser.post(link)
    assert ConsentRecord.objects.filter(contact=lea).count() == 1


def test_many_grants_for_a_suppressed_address_send_one_email_a_day(
    transactional_db, celery_worker, mailbox, api, newsletter
):
    suppression_add(reason="erased", email=ADDRESS)
    client = api()

    for channel in ("email", "sms", "email"):
        response = client.post(
            CONSENTS, consent_body(newsletter, email=ADDRESS, channel=channel), format="json"
        )
        assert response.status_code == 201
    client.post(FORMS, form_body(email=ADDRESS, boxes=[box(newsletter)]), format="json")

    wait_for(lambda: signup_links(mailbox), timeout=30)
    # let the later tasks run too: they must send nothing (and none may still write when the
    # test's tables are emptied)
    worker_settled()
    assert len(signup_links(mailbox)) == 1


# --- a known contact whose address is suppressed ----------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("kind", PERSON_KINDS)
@pytest.mark.parametrize("reason", ["global_unsubscribe", "complaint", "hard_bounce"])
def test_a_grant_for_a_suppressed_contact_is_pending_and_lifts_nothing(
    api, camille, newsletter, kind, reason
):
    suppression_add(reason=reason, email=camille.email)

    response = api().post(
        CONSENTS, consent_body(newsletter, contact=str(camille.public_id), kind=kind), format="json"
    )

    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "pending"
    assert response.json()["contact"] == str(camille.public_id)
    assert ConsentState.objects.get(contact=camille).status == "pending"
    assert suppression_reason(kind="email", value=camille.email) == reason
    assert "pending_confirmation" in contact_eligibility(camille, newsletter, "email")


@pytest.mark.django_db
@pytest.mark.parametrize("kind", LIST_KINDS)
def test_a_list_grant_for_a_suppressed_contact_is_refused_with_the_reason(
    api, camille, newsletter, kind
):
    suppression_add(reason="complaint", email=camille.email)

    response = api().post(
        CONSENTS, consent_body(newsletter, contact=str(camille.public_id), kind=kind), format="json"
    )

    assert response.status_code == 400
    assert "suppression list (Complaint)" in response.json()["email"][0]
    assert not ConsentRecord.objects.exists()


def test_a_suppressed_contact_is_back_once_the_emailed_link_is_followed(
    transactional_db, celery_worker, mailbox, api
):
    newsletter = PurposeFactory(slug="newsletter", channels=["email"])
    camille = ContactFactory(email="camille@example.fr")
    suppression_add(reason="global_unsubscribe", email=camille.email)
    response = api().post(
        FORMS, form_body(email=camille.email, boxes=[box(newsletter)]), format="json"
    )
    assert response.status_code == 201, response.json()
    assert response.json()["contact"]["id"] == str(camille.public_id)
    assert [c["status"] for c in response.json()["consents"]] == ["pending"]

    [link] = wait_for(lambda: signup_links(mailbox, to=camille.email), timeout=30)
    assert Client().post(link).status_code == 200

    state = ConsentState.objects.get(contact=camille)
    assert (state.status, state.record.source_kind) == ("granted", "email_confirmation")
    assert suppression_reason(kind="email", value=camille.email) is None


# --- who may create contacts ------------------------------------------------------------------


@pytest.mark.django_db
def test_a_client_with_only_consents_write_cannot_create_a_contact(api, newsletter):
    response = api(scopes=["consents:write"]).post(
        CONSENTS, consent_body(newsletter, email="new@example.fr"), format="json"
    )

    assert response.status_code == 400
    assert "contacts:write" in response.json()["email"][0]
    assert not Contact.objects.exists()


@pytest.mark.django_db
def test_a_consents_write_client_gets_the_same_answer_for_a_suppressed_address(api, newsletter):
    suppression_add(reason="erased", email=ADDRESS)

    response = api(scopes=["consents:write"]).post(
        CONSENTS, consent_body(newsletter, email=ADDRESS), format="json"
    )

    assert response.status_code == 400
    assert "contacts:write" in response.json()["email"][0]


@pytest.mark.django_db
def test_a_client_with_only_consents_write_still_records_for_known_contacts(
    api, camille, newsletter
):
    response = api(scopes=["consents:write"]).post(
        CONSENTS, consent_body(newsletter, email=camille.email), format="json"
    )

    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "granted"


@pytest.mark.django_db
def test_form_submissions_need_contacts_write(api, newsletter):
    response = api(scopes=["consents:write"]).post(
        FORMS, form_body(email="new@example.fr", boxes=[box(newsletter)]), format="json"
    )

    assert response.status_code == 403
    assert not Contact.objects.exists()


@pytest.mark.django_db
def test_the_schema_declares_the_null_fields_of_a_pending_signup() -> None:
    """The nullable fields of a pending signup are declared in the schema."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    answer = schema["components"]["schemas"]["ConsentWriteAnswer"]["properties"]
    assert all(answer[name].get("nullable") for name in ("id", "contact", "recorded_at", "hash"))
    form = schema["components"]["schemas"]["FormSubmissionResult"]["properties"]
    assert form["contact"].get("nullable") or any(
        option.get("nullable") for option in form["contact"].get("oneOf", [])
    )


@pytest.mark.django_db
def test_a_form_for_an_erased_address_still_refuses_bad_contact_data(api, newsletter):
    suppression_add(reason="erased", email=ADDRESS)

    response = api().post(
        FORMS,
        form_body(email=ADDRESS, boxes=[box(newsletter)], interests=["no-such-topic"]),
        format="json",
    )

    assert response.status_code == 400
    assert list(response.json()["contact"]) == ["interests"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "kind", ["preference_center", "email_confirmation", "admin", "paper_form", "system"]
)
def test_a_client_cannot_claim_a_source_that_lifts_or_bypasses(api, camille, newsletter, kind):
    suppression_add(reason="global_unsubscribe", email=camille.email)

    response = api().post(
        CONSENTS, consent_body(newsletter, contact=str(camille.public_id), kind=kind), format="json"
    )

    assert response.status_code == 400
    assert list(response.json()) == ["source"]
    assert suppression_reason(kind="email", value=camille.email) == "global_unsubscribe"
    assert not ConsentRecord.objects.exists()


def test_a_used_signup_link_says_so_before_the_button(
    transactional_db, celery_worker, mailbox, api, newsletter
):
    suppression_add(reason="erased", email=ADDRESS)
    api().post(CONSENTS, consent_body(newsletter, email=ADDRESS), format="json")
    [link] = wait_for(lambda: signup_links(mailbox), timeout=30)
    browser = Client()
    browser.post(link)

    page = browser.get(link)

    assert page.status_code == 200
    assert b'<button type="submit"' not in page.content
