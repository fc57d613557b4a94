import pytest
from django.test import Client

from tests.admin.conftest import otp_verified_login

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged_in(marketer) -> Client:
    client = Client()
    otp_verified_login(client, marketer)
    return client


def test_admin_renders_in_french(logged_in):
    response = logged_in.get("/admin/", HTTP_ACCEPT_LANGUAGE="fr")

    page = response.content.decode()
    assert '<html lang="fr"' in page
    assert "Site d’administration" in page and "Ajouter" in page


def test_admin_renders_in_english(logged_in):
    response = logged_in.get("/admin/", HTTP_ACCEPT_LANGUAGE="en")

    page = response.content.decode()
    assert '<html lang="en"' in page
    assert "Site administration" in page and ">Add<" in page
    assert "Ajouter" not in page


def test_french_is_the_default_language(logged_in):
    assert '<html lang="fr"' in logged_in.get("/admin/").content.decode()


def test_every_admin_page_has_a_language_switcher(logged_in):
    page = logged_in.get("/admin/contacts/contact/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()

    assert 'action="/i18n/setlang/"' in page
    assert '<option value="en"' in page and '<option value="fr"' in page


def test_the_switcher_changes_the_admin_language(logged_in):
    response = logged_in.post(
        "/i18n/setlang/", {"language": "en", "next": "/admin/"}, HTTP_ACCEPT_LANGUAGE="fr"
    )
    page = logged_in.get("/admin/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()

    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert "Site administration" in page


def test_the_login_page_has_the_switcher_too(client):
    page = client.get("/admin/login/", HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert 'action="/i18n/setlang/"' in page
