"""Who may call what: tokens (401) and scopes (403), per endpoint (SPEC §4)."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from rest_framework.test import APIClient

from consent.models import ConsentRecord, Purpose
from contacts.models import Contact
from core.models import Scope
from tests.api.payloads import consent_body, form_body
from tests.factories import grant

ALL_SCOPES = [scope.value for scope in Scope]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # formatted with `contact`, `record`
    scopes: list[str]
    body: Callable[[Contact, Purpose], Any] | None = field(default=None)

    def url(self, contact: Contact, record: ConsentRecord) -> str:
        return self.path.format(contact=contact.public_id, record=record.uuid)


ENDPOINTS = [
    Endpoint("get", "/api/v1/contacts/", [Scope.CONTACTS_READ]),
    Endpoint("get", "/api/v1/contacts/{contact}/", [Scope.CONTACTS_READ]),
    Endpoint("get", "/api/v1/contacts/{contact}/consents/", [Scope.CONTACTS_READ]),
    Endpoint("get", "/api/v1/contacts/{contact}/consent-history/", [Scope.CONTACTS_READ]),
    Endpoint("get", "/api/v1/consents/{record}/receipt/", [Scope.CONTACTS_READ]),
    Endpoint(
        "post",
        "/api/v1/contacts/",
        [Scope.CONTACTS_WRITE],
        lambda contact, purpose: {"email": "new@example.fr"},
    ),
    Endpoint(
        "patch",
        "/api/v1/contacts/{contact}/",
        [Scope.CONTACTS_WRITE],
        lambda contact, purpose: {"company": "ACME"},
    ),
    Endpoint(
        "post",
        "/api/v1/consents/",
        [Scope.CONSENTS_WRITE],
        lambda contact, purpose: consent_body(purpose, contact=str(contact.public_id)),
    ),
    Endpoint(
        "post",
        "/api/v1/forms/submissions/",
        [Scope.CONTACTS_WRITE, Scope.CONSENTS_WRITE],
        lambda contact, purpose: form_body(email="new@example.fr", boxes=[]),
    ),
    Endpoint(
        "post",
        "/api/v1/privacy-requests/",
        [Scope.PRIVACY_WRITE],
        lambda contact, purpose: {"email": contact.email, "type": "access"},
    ),
]
ENDPOINT_IDS = [f"{endpoint.method} {endpoint.path}" for endpoint in ENDPOINTS]


def call(client: APIClient, endpoint: Endpoint, contact: Contact, purpose: Purpose) -> Any:
    url = endpoint.url(contact, grant(contact, purpose))
    body = endpoint.body(contact, purpose) if endpoint.body else None
    return getattr(client, endpoint.method)(url, body, format="json")


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ENDPOINT_IDS)
def test_a_request_without_a_token_is_401(endpoint, camille, newsletter):
    response = call(APIClient(), endpoint, camille, newsletter)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.django_db
@pytest.mark.parametrize("header", ["Token not-a-key", "Token", "Token a b", "Bearer abc"])
def test_a_request_with_a_bad_token_is_401(header, camille):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)

    response = client.get("/api/v1/contacts/")

    assert response.status_code == 401


@pytest.mark.django_db
def test_a_revoked_client_is_401(api):
    client = api()
    client.record.is_active = False
    client.record.save()

    assert client.get("/api/v1/contacts/").status_code == 401


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("endpoint", "missing"),
    [(endpoint, scope) for endpoint in ENDPOINTS for scope in endpoint.scopes],
    ids=[f"{e.method} {e.path} without {scope}" for e in ENDPOINTS for scope in e.scopes],
)
def test_a_client_lacking_the_scope_is_403(api, endpoint, missing, camille, newsletter):
    client = api(scopes=[scope for scope in ALL_SCOPES if scope != missing])

    response = call(client, endpoint, camille, newsletter)

    assert response.status_code == 403
    assert missing in response.json()["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ENDPOINT_IDS)
def test_a_client_with_exactly_the_scopes_it_needs_is_served(api, endpoint, camille, newsletter):
    client = api(scopes=[str(scope) for scope in endpoint.scopes])

    response = call(client, endpoint, camille, newsletter)

    assert response.status_code in (200, 201), response.content


@pytest.mark.django_db
def test_privacy_request_reads_need_the_privacy_scope(api, camille):
    filed = api(scopes=[Scope.PRIVACY_WRITE]).post(
        "/api/v1/privacy-requests/", {"email": camille.email, "type": "access"}, format="json"
    )
    url = f"/api/v1/privacy-requests/{filed.json()['id']}/"

    assert api(scopes=[Scope.CONTACTS_READ]).get(url).status_code == 403
    assert api(scopes=[Scope.PRIVACY_WRITE]).get(url).status_code == 200


@pytest.mark.django_db
def test_any_authenticated_client_reads_the_purposes(api, newsletter):
    response = api(scopes=[]).get("/api/v1/purposes/")

    assert response.status_code == 200
    assert [purpose["slug"] for purpose in response.json()["results"]] == ["newsletter"]


@pytest.mark.django_db
def test_purposes_still_need_a_token(newsletter):
    assert APIClient().get("/api/v1/purposes/").status_code == 401


@pytest.mark.django_db
def test_head_needs_the_same_scope_as_get(api, camille):
    url = f"/api/v1/contacts/{camille.public_id}/"

    assert api(scopes=[Scope.CONTACTS_READ]).head(url).status_code == 200
    assert api(scopes=[Scope.CONTACTS_WRITE]).head(url).status_code == 403


@pytest.mark.django_db
def test_a_method_no_endpoint_declares_is_refused(api, camille):
    response = api().delete(f"/api/v1/contacts/{camille.public_id}/")

    assert response.status_code == 405
    assert Contact.objects.filter(pk=camille.pk).exists()
