from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from core.models import ApiClient

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("create_api_client", *args, stdout=out)
    return out.getvalue()


def test_it_prints_a_working_key_on_its_last_line():
    output = run("newsletter-form", "--scopes", "contacts:write", "consents:write")

    key = output.strip().splitlines()[-1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/v1/purposes/").status_code == 200
    stored = ApiClient.objects.get(name="newsletter-form")
    assert stored.scopes == ["contacts:write", "consents:write"]
    assert key not in (stored.key_hash, stored.key_prefix)  # only a hash is kept


def test_a_wrong_key_is_refused_by_the_api():
    run("newsletter-form", "--scopes", "contacts:read")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-the-key")

    assert client.get("/api/v1/purposes/").status_code == 401


def test_comma_separated_scopes_are_accepted():
    run("crm", "--scopes", "contacts:read,privacy:write")

    assert ApiClient.objects.get(name="crm").scopes == ["contacts:read", "privacy:write"]


def test_an_unknown_scope_is_a_clear_error_and_creates_nothing():
    with pytest.raises(CommandError, match=r"Unknown scope: consents:read\. Valid scopes: "):
        run("form", "--scopes", "contacts:write", "consents:read")

    assert not ApiClient.objects.exists()


def test_scopes_are_required():
    with pytest.raises(CommandError, match="--scopes"):
        run("form")


def test_a_taken_name_is_refused():
    run("form", "--scopes", "contacts:write")

    with pytest.raises(CommandError, match="already exists"):
        run("form", "--scopes", "consents:write")
    assert ApiClient.objects.get(name="form").scopes == ["contacts:write"]
