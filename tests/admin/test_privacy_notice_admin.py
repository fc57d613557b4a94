"""The DPO's privacy notice versions in the admin, and the notice each ledger record names."""

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from consent.models import PrivacyNotice, Purpose
from consent.services import Evidence
from contacts.models import Contact
from tests.factories import ContactFactory, PrivacyNoticeFactory, PurposeFactory, grant

pytestmark = pytest.mark.django_db


@pytest.fixture
def newsletter() -> Purpose:
    return PurposeFactory(slug="newsletter", channels=["email"])


@pytest.fixture
def camille() -> Contact:
    return ContactFactory(email="camille@example.fr", language="fr")


def evidence(policy_version: str) -> Evidence:
    return Evidence(wording="J'accepte.", unticked_by_default=True, policy_version=policy_version)


def test_dpo_adds_a_version_in_the_admin(as_dpo: Client):
    response = as_dpo.post(
        reverse("admin:consent_privacynotice_add"),
        {
            "version": "2026-08",
            "text_fr": "Nous traitons vos données.",
            "text_en": "We process your data.",
            "url": "https://www.example.fr/confidentialite",
            "published_at_0": timezone.localtime().strftime("%Y-%m-%d"),
            "published_at_1": "08:00:00",
        },
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    notice = PrivacyNotice.objects.get(version="2026-08")
    assert notice.created_by == "dpo-persona"


def test_the_admin_refuses_to_edit_a_version_records_name(as_dpo: Client, camille, newsletter):
    notice = PrivacyNoticeFactory(version="2026-09")
    unused = PrivacyNoticeFactory(version="2026-10")
    grant(camille, newsletter, evidence=evidence("2026-09"))
    url = reverse("admin:consent_privacynotice_change", args=[notice.pk])

    page = as_dpo.get(url)
    refused = as_dpo.post(url, {"text_en": "rewritten", "url": "https://x.example/"})

    assert page.status_code == 200 and "rewritten" not in page.content.decode()
    assert page.context["has_change_permission"] is False
    assert refused.status_code == 403
    assert PrivacyNotice.objects.get(pk=notice.pk).text_en != "rewritten"
    unused_page = as_dpo.get(reverse("admin:consent_privacynotice_change", args=[unused.pk]))
    assert unused_page.context["has_change_permission"] is True
    delete = reverse("admin:consent_privacynotice_delete", args=[unused.pk])
    assert as_dpo.post(delete, {"post": "yes"}).status_code == 403


def test_the_ledger_admin_links_a_known_version_and_flags_an_unknown_one(
    as_dpo: Client, camille, newsletter
):
    notice = PrivacyNoticeFactory(version="2026-11")
    known = grant(camille, newsletter, evidence=evidence("2026-11"))
    unknown = grant(camille, newsletter, evidence=evidence("mystery-1"))

    known_page = as_dpo.get(reverse("admin:consent_consentrecord_change", args=[known.pk]))
    unknown_page = as_dpo.get(reverse("admin:consent_consentrecord_change", args=[unknown.pk]))
    contact_page = as_dpo.get(reverse("admin:contacts_contact_change", args=[camille.pk]))

    notice_url = reverse("admin:consent_privacynotice_change", args=[notice.pk])
    assert f'href="{notice_url}"' in known_page.content.decode()
    assert "unknown notice: mystery-1" in unknown_page.content.decode()
    contact_html = contact_page.content.decode()
    assert f'href="{notice_url}"' in contact_html
    assert "unknown notice: mystery-1" in contact_html


def test_the_dpo_finds_the_records_naming_unknown_versions(as_dpo: Client, camille, newsletter):
    PrivacyNoticeFactory(version="2026-12")
    grant(camille, newsletter, evidence=evidence("2026-12"))
    unknown = grant(camille, newsletter, evidence=evidence("mystery-2"))
    grant(camille, newsletter, evidence=evidence(""))

    listed = as_dpo.get(reverse("admin:consent_consentrecord_changelist"), {"notice": "unknown"})
    notices = as_dpo.get(reverse("admin:consent_privacynotice_changelist"))

    assert [record.pk for record in listed.context["cl"].result_list] == [unknown.pk]
    warnings = [str(message) for message in notices.context["messages"]]
    assert any("mystery-2 (1)" in warning for warning in warnings), warnings


def test_a_marketer_sees_the_notices_but_cannot_add_one(as_marketer: Client):
    PrivacyNoticeFactory(version="2027-01")

    assert as_marketer.get(reverse("admin:consent_privacynotice_changelist")).status_code == 200
    assert as_marketer.get(reverse("admin:consent_privacynotice_add")).status_code == 403
