"""OpenAPI 3 at `/api/schema/` and the human docs at `/api/docs/`, open to anyone."""

import re

import pytest
import yaml
from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import Client

SCRIPT_SOURCES = re.compile(r"<script[^>]*\bsrc=[\"']([^\"']+)[\"']", re.IGNORECASE)
STYLESHEETS = re.compile(r"<link[^>]*\bhref=[\"']([^\"']+)[\"']", re.IGNORECASE)


@pytest.mark.django_db
def test_the_schema_is_openapi_3_without_authentication():
    response = Client().get("/api/schema/")

    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/contacts/" in schema["paths"]
    assert "/api/v1/forms/submissions/" in schema["paths"]


@pytest.mark.django_db
def test_the_schema_is_also_served_as_json():
    response = Client().get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.")


@pytest.mark.django_db
def test_the_schema_documents_consents_as_one_object_or_an_array():
    schema = Client().get("/api/schema/", {"format": "json"}).json()

    operation = schema["paths"]["/api/v1/consents/"]["post"]
    request_schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert [option.get("type") for option in request_schema["oneOf"]] == [None, "array"]


@pytest.mark.django_db
def test_the_docs_load_no_third_party_script():
    response = Client().get("/api/docs/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    sources = SCRIPT_SOURCES.findall(html) + STYLESHEETS.findall(html)
    assert sources, "the docs page should load Swagger UI from our static files"
    third_party = [
        source
        for source in sources
        if re.match(r"(https?:)?//", source) and not source.startswith("http://testserver/")
    ]
    assert third_party == []


@pytest.mark.django_db
def test_every_script_and_stylesheet_of_the_docs_is_one_of_our_static_files():
    html = Client().get("/api/docs/").content.decode()

    for source in SCRIPT_SOURCES.findall(html) + STYLESHEETS.findall(html):
        if source.startswith("/api/docs/?"):
            continue  # Swagger UI's start-up script, served by the docs view (no inline script)
        assert source.startswith(settings.STATIC_URL) or source.startswith(
            "/" + settings.STATIC_URL
        )
        path = source.split(settings.STATIC_URL, 1)[1]
        assert finders.find(path), source


@pytest.mark.django_db
def test_the_schema_generates_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yml"))

    assert yaml.safe_load((tmp_path / "s.yml").read_text())["openapi"].startswith("3.")


@pytest.mark.django_db
def test_privacy_requests_keep_their_paths_operations_and_components():
    # integrations generate clients from these names: moving the code between apps kept them
    schema = Client().get("/api/schema/", {"format": "json"}).json()

    paths = schema["paths"]
    assert paths["/api/v1/privacy-requests/"]["post"]["operationId"] == "v1_privacy_requests_create"
    detail = paths["/api/v1/privacy-requests/{id}/"]["get"]
    assert detail["operationId"] == "v1_privacy_requests_retrieve"
    components = schema["components"]["schemas"]
    assert {
        "PrivacyRequest",
        "PrivacyRequestEvent",
        "PrivacyRequestInputRequest",
        "PrivacyRequestStatusEnum",
    } <= set(components)
    assert components["PrivacyRequestStatusEnum"]["enum"] == [
        "received",
        "verified",
        "in_progress",
        # an erasure waiting for the connected CRMs' acknowledgements (added, issue 14)
        "awaiting_crms",
        "completed",
        "rejected",
    ]
