"""django-csp sets a Content-Security-Policy on every page; recipient pages allow no script."""

import re

import pytest
from django.test import Client

from preferences.services import preference_token_issue
from tests.admin.conftest import otp_verified_login
from tests.factories import ContactFactory, UserFactory

pytestmark = pytest.mark.django_db


def policy(response) -> dict[str, list[str]]:
    """The Content-Security-Policy header as {directive: sources}."""
    directives = {}
    for part in response["Content-Security-Policy"].split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


def inline_scripts(html: str) -> list[str]:
    return [tag for tag in re.findall(r"<script[^>]*>", html) if "src=" not in tag]


@pytest.fixture
def staff_client() -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    otp_verified_login(client, UserFactory(username="csp-staff", is_superuser=True))
    return client


@pytest.mark.parametrize(
    "path",
    [
        "/admin/",
        "/admin/contacts/contact/",
        "/admin/core/auditevent/",
        "/admin/consent/purpose/add/",
    ],
)
def test_admin_pages_allow_scripts_from_the_site_only(staff_client, path):
    response = staff_client.get(path)

    assert response.status_code == 200
    assert policy(response)["script-src"] == ["'self'"]
    assert policy(response)["default-src"] == ["'self'"]
    assert inline_scripts(response.content.decode()) == []


def test_the_admin_login_page_has_the_policy():
    response = Client().get("/admin/login/")

    assert policy(response)["script-src"] == ["'self'"]
    assert policy(response)["frame-ancestors"] == ["'none'"]


def test_the_api_docs_load_their_script_from_the_site_not_inline():
    page = Client().get("/api/docs/")

    assert page.status_code == 200
    assert policy(page)["script-src"] == ["'self'"]
    html = page.content.decode()
    assert inline_scripts(html) == []
    (init_script,) = [
        src for src in re.findall(r'<script src="([^"]+)"', html) if "script" in src.split("?")[-1]
    ]
    script = Client().get(init_script.replace("&amp;", "&"))
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in script.content.decode()
    # the sidecar's own files are served from the site
    for src in re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', html):
        assert src.startswith("/"), src


@pytest.mark.parametrize("path", ["/", "/health/"])
def test_site_pages_have_the_policy(path):
    response = Client().get(path)

    assert policy(response)["script-src"] == ["'self'"]


@pytest.mark.parametrize("kind", ["center", "unsubscribe"])
def test_recipient_pages_allow_no_script_at_all(kind):
    token = preference_token_issue(contact=ContactFactory())

    response = Client().get(f"/{'p' if kind == 'center' else 'u'}/{token}/")

    assert response.status_code == 200
    assert policy(response)["script-src"] == ["'none'"]
    assert policy(response)["default-src"] == ["'none'"]
    assert "<script" not in response.content.decode()
