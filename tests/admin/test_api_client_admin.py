"""API clients in the admin: the key shown once, the scopes as checkboxes."""

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from rest_framework.test import APIRequestFactory

from core.authentication import ApiClientTokenAuthentication
from core.models import ApiClient, hash_api_key
from tests.admin.forms import submitted_form

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
