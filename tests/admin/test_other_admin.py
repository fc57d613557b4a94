from datetime import timedelta

import pytest
from dateutil.relativedelta import relativedelta
from django.contrib.messages import get_messages
from django.urls import reverse
from rest_framework.test import APIRequestFactory

from contacts.models import TimelineEvent
from contacts.services import suppression_add
from core.authentication import ApiClientTokenAuthentication
from core.models import ApiClient, hash_api_key
from privacy.admin import PrivacyRequestAdmin
from privacy.models import PrivacyRequest
from privacy.services import privacy_request_file
from tests.admin.forms import submitted_form
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def test_creating_an_api_client_shows_its_key_once(as_superuser):
    url = reverse("admin:core_apiclient_add")
    page = as_superuser.get(url)

    response = as_superuser.post(
        url, submitted_form(page, name="shop-form", scopes=["contacts:write", "consents:write"])
    )

    assert response.status_code == 302
    client = ApiClient.objects.get(name="shop-form")
    assert client.scopes == ["contacts:write", "consents:write"]
    (message,) = [str(m) for m in get_messages(response.wsgi_request) if "shown only" in str(m)]
    key = message.split()[-1]
    assert hash_api_key(key) == client.key_hash and key not in client.key_hash
    request = APIRequestFactory().get("/", HTTP_AUTHORIZATION=f"Token {key}")
    assert ApiClientTokenAuthentication().authenticate(request)[1] == client
    change_page = reverse("admin:core_apiclient_change", args=[client.pk])
    assert key in as_superuser.get(change_page).content.decode()  # the message, once
    assert key not in as_superuser.get(change_page).content.decode()


def test_api_client_scopes_are_checkboxes(as_superuser):
    page = as_superuser.get(reverse("admin:core_apiclient_add")).content.decode()

    assert 'type="checkbox" name="scopes" value="privacy:write"' in page


def test_dpo_files_a_privacy_request_through_the_service(as_dpo):
    contact = ContactFactory()
    url = reverse("admin:privacy_privacyrequest_add")
    page = as_dpo.get(url)

    response = as_dpo.post(
        url, submitted_form(page, contact=contact.pk, type="access", details="By letter.")
    )

    assert response.status_code == 302
    request = PrivacyRequest.objects.get(contact=contact)
    assert request.status == "verified" and request.source_kind == "admin"
    assert request.due_at == request.received_at + relativedelta(months=1)
    assert [event.status for event in request.history.all()] == ["verified"]
    assert TimelineEvent.objects.filter(contact=contact, kind="request_filed").exists()


def test_privacy_requests_are_listed_by_due_date_with_late_ones_flagged(as_dpo):
    late = privacy_request_file(contact=ContactFactory(), type="erasure", source_kind="api")
    PrivacyRequest.objects.filter(pk=late.pk).update(due_at=late.due_at - timedelta(days=40))
    privacy_request_file(contact=ContactFactory(), type="access", source_kind="api")

    response = as_dpo.get(reverse("admin:privacy_privacyrequest_changelist"))

    results = list(response.context["cl"].result_list)
    assert [request.type for request in results] == ["erasure", "access"]
    assert [PrivacyRequestAdmin.is_late(None, request) for request in results] == [True, False]


def test_suppression_list_is_searched_by_hashing_the_address(as_marketer):
    suppression_add(reason="complaint", email="gone@example.fr")
    url = reverse("admin:contacts_suppression_changelist")

    found = as_marketer.get(url, {"q": " Gone@Example.FR "})
    not_found = as_marketer.get(url, {"q": "other@example.fr"})

    assert [entry.reason for entry in found.context["cl"].result_list] == ["complaint"]
    assert list(not_found.context["cl"].result_list) == []


def test_marketer_watches_the_crm_outbox_read_only(as_marketer):
    ContactFactory()  # writes nothing to the outbox by itself; list renders anyway
    url = reverse("admin:crmsync_outboxevent_changelist")

    assert as_marketer.get(url).status_code == 200
    assert as_marketer.get(reverse("admin:crmsync_outboxevent_add")).status_code == 403
