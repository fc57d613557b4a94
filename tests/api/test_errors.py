"""Every API error is JSON with the right status, on every route (SPEC §4: DRF-style errors).

The routes come from the OpenAPI schema (tests/api/routes.py), so a new endpoint is covered
without touching this file.
"""

import json

import pytest
from rest_framework.test import APIClient

from contacts.models import Contact
from tests.api.routes import NOT_ALLOWED, OPERATIONS, WITH_ID, WRITES, Operation

pytestmark = pytest.mark.django_db

NESTED_BODIES = {
    "arrays": "[" * 1000 + "]" * 1000,
    "objects": '{"a":' * 1000 + "1" + "}" * 1000,
    "objects-under-a-field": '{"email": ' + '{"a":' * 100 + "1" + "}" * 100 + "}",
}
MALFORMED_IDS = ["not-a-uuid", "-" * 36, "0" * 33]


def assert_json_error(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response.headers["Content-Type"].startswith("application/json"), response.content[:300]
    return json.loads(response.content)


@pytest.fixture
def client(api) -> APIClient:
    client = api()
    client.raise_request_exception = False
    return client


def send(client: APIClient, operation: Operation, url: str, body: str, **extra):
    if operation.method == "get":
        return client.get(url, **extra)
    return client.generic(
        operation.method.upper(),
        url,
        body,
        content_type=extra.pop("content_type", "application/json"),
        **extra,
    )


def test_the_schema_lists_the_write_operations_these_tests_cover():
    assert {str(operation) for operation in WRITES} >= {
        "POST /api/v1/contacts/",
        "PATCH /api/v1/contacts/{id}/",
        "POST /api/v1/consents/",
        "POST /api/v1/forms/submissions/",
        "POST /api/v1/privacy-requests/",
    }


@pytest.mark.parametrize("operation", WRITES, ids=str)
@pytest.mark.parametrize("shape", list(NESTED_BODIES))
def test_a_deeply_nested_body_is_a_json_400_on_every_write(client, camille, operation, shape):
    response = send(client, operation, operation.url(str(camille.public_id)), NESTED_BODIES[shape])

    body = assert_json_error(response, 400)
    assert "nested" in body["detail"]


@pytest.mark.parametrize("operation", WRITES, ids=str)
def test_a_body_over_the_upload_limit_is_a_json_413_on_every_write(
    client, camille, operation, settings
):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"email": "camille@example.fr", "details": "x" * 2000})

    response = send(client, operation, operation.url(str(camille.public_id)), body)

    assert "detail" in assert_json_error(response, 413)
    assert Contact.objects.count() == 1


@pytest.mark.parametrize("operation", WRITES, ids=str)
def test_a_body_that_is_not_json_is_a_json_415_or_400(client, camille, operation):
    url = operation.url(str(camille.public_id))

    not_json = send(client, operation, url, "{'email':", content_type="application/json")
    other_type = send(client, operation, url, "email=a", content_type="text/plain")

    assert_json_error(not_json, 400)
    assert_json_error(other_type, 415)


@pytest.mark.parametrize("operation", WITH_ID, ids=str)
@pytest.mark.parametrize("identifier", MALFORMED_IDS)
def test_a_malformed_id_is_a_json_404_on_every_route_with_an_id(client, operation, identifier):
    response = send(client, operation, operation.url(identifier), "{}")

    assert "detail" in assert_json_error(response, 404)


@pytest.mark.parametrize(
    "path", ["/api/v1/nothing/", "/api/nothing/", "/api/v2/contacts/", "/api/v1/contacts/x/y/"]
)
def test_an_unknown_api_path_is_a_json_404(client, path):
    assert_json_error(client.get(path), 404)
    assert_json_error(client.post(path, {}, format="json"), 404)


@pytest.mark.parametrize("operation", NOT_ALLOWED, ids=str)
def test_a_method_a_route_does_not_answer_is_a_json_405(client, camille, operation):
    response = send(client, operation, operation.url(str(camille.public_id)), "{}")

    assert "detail" in assert_json_error(response, 405)
    assert Contact.objects.filter(pk=camille.pk).exists()


@pytest.mark.parametrize("operation", OPERATIONS, ids=str)
def test_no_token_is_a_json_401_on_every_operation(camille, operation):
    client = APIClient()

    response = send(client, operation, operation.url(str(camille.public_id)), "{}")

    assert_json_error(response, 401)


@pytest.mark.parametrize("operation", WRITES, ids=str)
def test_a_missing_scope_is_a_json_403_on_every_write(api, camille, operation):
    client = api(scopes=[])

    response = send(client, operation, operation.url(str(camille.public_id)), "{}")

    assert_json_error(response, 403)


@pytest.mark.urls("tests.api.crash_urls")
def test_a_server_error_under_the_api_is_json(client):
    response = client.get("/api/v1/crash/")

    assert assert_json_error(response, 500) == {"detail": "A server error occurred."}


@pytest.mark.urls("tests.api.crash_urls")
def test_a_server_error_elsewhere_is_still_the_html_page(client):
    response = client.get("/crash/")

    assert response.status_code == 500
    assert response.headers["Content-Type"].startswith("text/html")


def test_an_unknown_page_outside_the_api_is_still_the_html_page(client):
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("text/html")
