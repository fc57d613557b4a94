"""The DPO's side of API privacy requests: erasures held past the daily cap, unknown emails."""

import pytest
from django.urls import reverse

from contacts.models import Contact
from core.models import Scope
from privacy.models import PrivacyRequest
from privacy.services import privacy_requests_carry_out_pending
from tests.admin.forms import submitted_form
from tests.admin.test_privacy_request_admin import change_url, handle
from tests.api.test_privacy_request_intake import erasure
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:privacy_privacyrequest_changelist")
ADD = reverse("admin:privacy_privacyrequest_add")


def test_the_dpo_sees_the_held_erasures_and_has_them_carried_out_by_verifying(
    api, settings, as_dpo
):
    # given a client's second erasure of the day, held past the limit, beside its first
    settings.API_ERASURE_DAILY_LIMIT = 1
    client = api()
    erasure(client, ContactFactory().email)
    person = ContactFactory()
    held = PrivacyRequest.objects.get(id=erasure(client, person.email)["id"])

    # when the DPO lists the held requests and opens it
    listed = as_dpo.get(CHANGELIST, {"held_reason__isempty": "0"})
    page = as_dpo.get(change_url(held))

    # then it is there with the reason
    assert list(listed.context["cl"].result_list) == [held]
    assert "API_ERASURE_DAILY_LIMIT" in page.content.decode()

    # when the DPO verifies it, the workers carry it out
    handle(as_dpo, held, next_status="verified")
    privacy_requests_carry_out_pending()

    held.refresh_from_db()
    assert held.status == "completed"
    assert Contact.objects.get(pk=person.pk).status == "erased"


def test_a_request_for_an_unknown_email_is_kept_without_a_contact_and_done_with_nothing(
    api, as_dpo
):
    client = api(scopes=[Scope.PRIVACY_WRITE])
    contacts_before = Contact.objects.count()

    answer = erasure(client, "nobody@example.fr")
    privacy_requests_carry_out_pending()

    request = PrivacyRequest.objects.get(id=answer["id"])
    assert (request.contact, request.status) == (None, "completed")
    assert Contact.objects.count() == contacts_before  # nobody created, nobody erased
    assert "No contact had the email given" in as_dpo.get(change_url(request)).content.decode()


def test_the_dpo_still_files_a_request_for_a_named_contact_only(as_dpo):
    page = as_dpo.get(ADD)

    response = as_dpo.post(ADD, submitted_form(page, contact="", type="access"))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["contact"]
    assert not PrivacyRequest.objects.exists()
