"""`token_hash`: the one digest kept in place of a secret token, the same as ever, so that API
keys and preference links issued before keep working."""

import hashlib

import pytest

from core.models import ApiClient, hash_api_key
from core.tokens import token_hash
from preferences.models import PreferenceToken
from preferences.selectors import contact_for_token
from preferences.services import preference_token_issue
from tests.factories import ContactFactory


def test_a_token_s_hash_is_its_sha256_hex_digest():
    # the FIPS 180-2 test vector
    assert token_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert hash_api_key("abc") == token_hash("abc")


@pytest.mark.django_db
def test_an_api_key_stored_before_still_opens_the_api(client):
    key = "an-api-key-issued-long-ago-0123456789abcdef"
    ApiClient.objects.create(
        name="crm",
        key_hash=hashlib.sha256(key.encode()).hexdigest(),  # as it was always stored
        key_prefix=key[:8],
        scopes=["contacts:read"],
    )

    response = client.get("/api/v1/contacts/", HTTP_AUTHORIZATION=f"Token {key}")

    assert response.status_code == 200


@pytest.mark.django_db
def test_a_preference_link_issued_before_still_opens_the_center():
    camille = ContactFactory()
    token = "A" * 43
    PreferenceToken.objects.create(
        contact=camille, digest=hashlib.sha256(token.encode()).hexdigest()
    )

    assert contact_for_token(token) == camille


@pytest.mark.django_db
def test_a_new_preference_link_is_stored_only_as_its_hash():
    camille = ContactFactory()

    token = preference_token_issue(contact=camille)

    [stored] = PreferenceToken.objects.filter(contact=camille)
    assert stored.digest == token_hash(token) != token
    assert contact_for_token(token) == camille
