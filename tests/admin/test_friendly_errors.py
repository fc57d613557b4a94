"""Friendly 403 pages: in the user's language, saying what happened and what to do."""

import pytest
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import translation

from core.error_views import csrf_failure, permission_denied
from tests.admin.conftest import otp_verified_login
from tests.factories import ApiClientFactory

pytestmark = pytest.mark.django_db

AUDIT_LOG = reverse("admin:core_auditevent_changelist")  # the DPO's, not the marketers'
FRIENDLY_FRENCH = "Votre rôle ne vous donne pas accès à cette page."


@pytest.fixture
def marketer_browser(marketer: object) -> Client:
    client = Client()
    otp_verified_login(client, marketer)
    return client


def test_a_marketer_opening_the_audit_log_gets_a_french_admin_page_by_default(
    marketer_browser: Client,
) -> None:
    response = marketer_browser.get(AUDIT_LOG)

    page = response.content.decode()
    assert response.status_code == 403
    assert response.templates[0].name == "admin/403.html"
    assert '<html lang="fr"' in page
    # the admin's header with the user's tools, in Django's own French
    assert "Déconnexion" in page and 'href="/admin/"' in page
    assert settings.DPO_CONTACT in page


def test_the_forbidden_page_explains_in_french(marketer_browser: Client) -> None:
    page = marketer_browser.get(AUDIT_LOG).content.decode()

    assert FRIENDLY_FRENCH in page and "Retour au tableau de bord" in page


def test_the_forbidden_page_follows_the_language_switcher(marketer_browser: Client) -> None:
    marketer_browser.post("/i18n/setlang/", {"language": "en", "next": "/admin/"})

    response = marketer_browser.get(AUDIT_LOG)

    page = response.content.decode()
    assert response.status_code == 403 and '<html lang="en"' in page
    assert "Your role does not give you access to this page." in page
    assert "ask an administrator to add the permission" in page
    assert "Back to the dashboard" in page and "Log out" in page


def test_a_dpo_opens_the_same_page(as_dpo: Client) -> None:
    assert as_dpo.get(AUDIT_LOG).status_code == 200


def test_an_api_client_without_the_scope_still_gets_json(db: None) -> None:
    client = ApiClientFactory(scopes=[])
    response = Client().get("/api/v1/contacts/", HTTP_AUTHORIZATION=f"Token {client.plain_key}")

    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"


def test_a_permission_refused_under_the_api_is_json() -> None:
    response = permission_denied(RequestFactory().get("/api/v1/contacts/"), PermissionDenied())

    assert response.status_code == 403 and response["Content-Type"] == "application/json"


def test_a_permission_refused_outside_the_admin_gets_the_public_page() -> None:
    with translation.override("en"):
        response = permission_denied(RequestFactory().get("/p/abc/"), PermissionDenied())

    page = response.content.decode()
    assert response.status_code == 403 and "You do not have access to this page." in page
    assert settings.DPO_CONTACT in page and "Log out" not in page


def test_an_expired_admin_form_gets_the_friendly_csrf_page(marketer: object) -> None:
    client = Client(enforce_csrf_checks=True)
    otp_verified_login(client, marketer)

    response = client.post(
        reverse("admin:contacts_contact_add"), {"email": "x@example.fr"}, HTTP_ACCEPT_LANGUAGE="en"
    )

    page = response.content.decode()
    assert response.status_code == 403
    assert "The form could not be sent" in page and "Log out" in page
    assert "Back to the dashboard" in page


def test_an_expired_public_form_gets_the_public_csrf_page() -> None:
    with translation.override("en"):
        response = csrf_failure(RequestFactory().post("/p/abc/"), reason="CSRF token missing.")

    page = response.content.decode()
    assert response.status_code == 403 and "The form could not be sent" in page
    assert "Back to the dashboard" not in page
