"""`/`: a small landing page for whoever opens the site."""

import re

import pytest
from django.test import Client

# its footer names the controller and links to the current privacy notice, a stored row
pytestmark = pytest.mark.django_db


def test_the_landing_page_links_to_the_admin_the_api_docs_and_the_health_check():
    response = Client(HTTP_ACCEPT_LANGUAGE="en").get("/")

    assert response.status_code == 200
    html = response.content.decode()
    links = set(re.findall(r'<a href="([^"]+)"', html))
    assert {"/admin/", "/api/docs/", "/health/"} <= links
    assert "<script" not in html


def test_the_landing_page_is_translated():
    response = Client(HTTP_ACCEPT_LANGUAGE="fr").get("/")

    assert '<html lang="fr"' in response.content.decode()
