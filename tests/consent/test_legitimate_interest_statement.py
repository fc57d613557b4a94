"""A purpose on legitimate interests states the interest it pursues (GDPR Art. 13(1)(d)), and
the person reads it where the purpose is shown: the preference center, the receipt, the API
that web forms read, and the access answer."""

import json

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import translation

from consent.models import LegalBasis, Purpose
from preferences.services import preference_token_issue
from privacy.exports import personal_data_json
from tests.factories import ContactFactory, PurposeFactory, grant
from tests.preferences.conftest import BROWSER, center_path, page_text

pytestmark = pytest.mark.django_db


@pytest.fixture
def customer_news() -> Purpose:
    return PurposeFactory(
        slug="customer-news",
        legal_basis=LegalBasis.LEGITIMATE_INTERESTS,
        legitimate_interest_fr="Vous tenir informé des produits que vous avez achetés",
        legitimate_interest_en="Keeping you informed about the products you bought",
        channels=["email"],
    )


def test_a_legitimate_interest_purpose_without_its_interest_is_refused_clearly():
    purpose = PurposeFactory.build(
        slug="offers", legal_basis=LegalBasis.LEGITIMATE_INTERESTS, legitimate_interest_en="x"
    )
    purpose.legitimate_interest_fr = ""

    with pytest.raises(ValidationError) as refused:
        purpose.full_clean()

    assert set(refused.value.message_dict) == {"legitimate_interest_fr"}


def test_a_consent_purpose_needs_no_interest_and_shows_none():
    purpose = PurposeFactory.build(slug="newsletter", legal_basis=LegalBasis.CONSENT)
    purpose.legitimate_interest_en = "left over from an earlier basis"

    purpose.full_clean()

    assert purpose.legitimate_interest == ""


def test_the_preference_center_shows_the_interest_next_to_the_purpose(
    client: Client, customer_news
):
    camille = ContactFactory(language="fr")
    token = preference_token_issue(contact=camille)

    french = page_text(client.get(center_path(token, lang="fr"), **BROWSER))
    english = page_text(client.get(center_path(token, lang="en"), **BROWSER))

    assert "Vous tenir informé des produits que vous avez achetés" in french
    assert "Keeping you informed about the products you bought" in english


def test_the_receipt_and_the_purposes_api_state_the_interest(api, customer_news):
    camille = ContactFactory()
    record = grant(camille, customer_news, action="withdraw", evidence=None)

    receipt = api().get(f"/api/v1/consents/{record.uuid}/receipt/").json()
    purposes = api().get("/api/v1/purposes/", HTTP_ACCEPT_LANGUAGE="fr").json()["results"]

    [processing] = receipt["processing"]["purposes"]
    assert processing["legitimate_interest"] == "Keeping you informed about the products you bought"
    [listed] = purposes
    assert listed["legitimate_interest"] == "Vous tenir informé des produits que vous avez achetés"


def test_the_access_answer_states_the_interest_in_the_person_s_language(customer_news):
    camille = ContactFactory(language="fr")

    with translation.override("en"):
        data = json.loads(personal_data_json(camille))

    [row] = [row for row in data["purposes"] if row["purpose"] == "customer-news"]
    assert row["legal_basis"] == "legitimate_interests"
    assert row["legitimate_interest"] == "Vous tenir informé des produits que vous avez achetés"
