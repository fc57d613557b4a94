"""Privacy notice versions (GDPR Art. 12-13): each consent record points at the version shown.

A `policy_version` naming a stored version links to it; one the product does not know is kept
as given and shown as an unknown notice, in the receipt and in the admin, for the DPO to add.
"""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from consent.models import ConsentRecord, PrivacyNotice, Purpose
from consent.selectors import privacy_notice_current, privacy_notice_versions_unknown
from consent.services import Evidence, privacy_notice_save
from contacts.models import Contact
from preferences.services import preference_token_issue
from tests.factories import ContactFactory, PrivacyNoticeFactory, PurposeFactory, grant
from tests.preferences.conftest import save_consents

pytestmark = pytest.mark.django_db

CONSENTS = "/api/v1/consents/"


@pytest.fixture
def newsletter() -> Purpose:
    return PurposeFactory(slug="newsletter", channels=["email"])


@pytest.fixture
def camille() -> Contact:
    return ContactFactory(email="camille@example.fr", language="fr")


def evidence(policy_version: str) -> Evidence:
    return Evidence(wording="J'accepte.", unticked_by_default=True, policy_version=policy_version)


def test_a_record_naming_a_stored_version_links_to_it_in_the_receipt(api, camille, newsletter):
    notice = PrivacyNoticeFactory(version="2026-03", url="https://www.example.fr/vie-privee")
    record = grant(camille, newsletter, evidence=evidence("2026-03"))

    receipt = api().get(f"{CONSENTS}{record.uuid}/receipt/").json()

    assert receipt["privacy_notice"] == {
        "version": "2026-03",
        "status": "known",
        "url": "https://www.example.fr/vie-privee",
        "published_at": notice.published_at.isoformat(),
    }
    assert receipt["notice"]["privacy_policy_version"] == "2026-03"


def test_a_version_the_product_does_not_know_is_kept_as_given_and_shown_unknown(
    api, camille, newsletter
):
    # given a web form that names a notice version nobody stored
    response = api().post(
        CONSENTS,
        {
            "email": camille.email,
            "purpose": "newsletter",
            "channel": "email",
            "action": "grant",
            "source": {"kind": "web_form", "reference": "https://example.fr/form"},
            "evidence": {
                "wording": "J'accepte.",
                "unticked_by_default": True,
                "policy_version": "v7-draft",
            },
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    record = ConsentRecord.objects.get(uuid=response.json()["id"])

    # then the record keeps it as given, and the receipt flags it
    assert record.policy_version == "v7-draft"
    receipt = api().get(f"{CONSENTS}{record.uuid}/receipt/").json()
    assert receipt["privacy_notice"] == {"version": "v7-draft", "status": "unknown"}
    assert [row["policy_version"] for row in privacy_notice_versions_unknown()] == ["v7-draft"]

    # when the DPO adds that version, the same record links to it
    PrivacyNoticeFactory(version="v7-draft")
    receipt = api().get(f"{CONSENTS}{record.uuid}/receipt/").json()
    assert receipt["privacy_notice"]["status"] == "known"
    assert not privacy_notice_versions_unknown().exists()


def test_a_record_without_a_version_says_so(api, camille, newsletter):
    record = grant(camille, newsletter, evidence=evidence(""))

    receipt = api().get(f"{CONSENTS}{record.uuid}/receipt/").json()

    assert receipt["privacy_notice"] == {"version": "", "status": "none"}


def test_the_current_notice_is_the_latest_published_not_a_future_one():
    PrivacyNoticeFactory(version="old", published_at=timezone.now() - timedelta(days=60))
    PrivacyNoticeFactory(version="now", published_at=timezone.now() - timedelta(days=1))
    PrivacyNoticeFactory(version="next", published_at=timezone.now() + timedelta(days=5))

    current = privacy_notice_current()

    assert current is not None and current.version == "now"


def test_preference_center_choices_record_the_current_notice_version(
    client: Client, camille, newsletter, settings
):
    # given a stored notice, which the page's footer links to
    PrivacyNoticeFactory(version="2026-04", url="https://www.example.fr/confidentialite")
    token = preference_token_issue(contact=camille)

    response = save_consents(client, token, tick=["newsletter:email"])

    assert response.status_code == 303
    record = ConsentRecord.objects.get(contact=camille, purpose=newsletter)
    assert record.policy_version == "2026-04"
    assert settings.PRIVACY_POLICY_VERSION != "2026-04"


def test_without_a_stored_notice_the_center_records_the_configured_version(
    client: Client, camille, newsletter, settings
):
    settings.PRIVACY_POLICY_VERSION = "configured-1"
    token = preference_token_issue(contact=camille)

    save_consents(client, token, tick=["newsletter:email"])

    record = ConsentRecord.objects.get(contact=camille, purpose=newsletter)
    assert record.policy_version == "configured-1"


def test_a_version_named_by_a_record_can_no_longer_change(camille, newsletter):
    notice = PrivacyNoticeFactory(version="2026-05")
    grant(camille, newsletter, evidence=evidence("2026-05"))

    notice.text_en = "Something else than what was shown."
    with pytest.raises(ValidationError, match="cannot change any more"):
        privacy_notice_save(notice=notice, by="dpo")

    assert (
        PrivacyNotice.objects.get(pk=notice.pk).text_en == "We process your data to write to you."
    )


def test_a_version_nobody_names_yet_can_be_corrected():
    notice = PrivacyNoticeFactory(version="2026-06")

    notice.url = "https://www.example.fr/corrected"
    privacy_notice_save(notice=notice, by="dpo")

    assert PrivacyNotice.objects.get(pk=notice.pk).url == "https://www.example.fr/corrected"


def test_a_version_must_be_unique_and_have_a_url():
    PrivacyNoticeFactory(version="2026-07")

    with pytest.raises(ValidationError) as refused:
        privacy_notice_save(
            notice=PrivacyNotice(version="2026-07", text_fr="x", text_en="x"), by=""
        )

    assert set(refused.value.message_dict) == {"version", "url"}
