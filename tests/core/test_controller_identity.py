"""Every recipient page and every message tells who the controller is, how to reach its DPO,
where the privacy notice is and that the person may complain to the CNIL (GDPR Art. 12-13)."""

from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.core import mail
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from core.emails import email_build, email_send
from core.management.commands.setup_roles import DPO
from preferences.services import preference_token_issue
from privacy.services import deadline_reminders_send
from tests.factories import ContactFactory, PrivacyNoticeFactory, PrivacyRequestFactory, UserFactory

pytestmark = pytest.mark.django_db

TEMPLATES = Path(settings.BASE_DIR) / "templates"
CNIL = "https://www.cnil.fr/fr/plaintes"
NOTICE_URL = "https://www.example.fr/confidentialite/2026-02"
# Messages to the staff, not to the people whose data we hold: no notice at their foot.
STAFF_TEMPLATES = {"consent/email/seal_head", "privacy/email/deadlines"}


def email_templates() -> list[str]:
    return sorted(
        str(path.relative_to(TEMPLATES)).removesuffix("_subject.txt")
        for path in TEMPLATES.glob("**/email/*_subject.txt")
    )


def assert_identity(text: str, notice_url: str = NOTICE_URL) -> None:
    assert settings.CONTROLLER_NAME in text
    assert settings.CONTROLLER_ADDRESS in text
    assert settings.DPO_CONTACT in text
    assert notice_url in text
    assert CNIL in text


@pytest.fixture
def notice() -> None:
    PrivacyNoticeFactory(version="2026-02", url=NOTICE_URL)


def test_the_settings_name_a_controller_an_address_and_a_dpo():
    # the test settings set them, as production must (tests/core/test_deploy_settings.py)
    assert settings.CONTROLLER_NAME and settings.CONTROLLER_ADDRESS and settings.DPO_CONTACT


@pytest.mark.parametrize(
    "template", [name for name in email_templates() if name not in STAFF_TEMPLATES]
)
def test_every_message_to_a_person_carries_the_controller_s_identity(notice, template):
    message = email_build(template=template, context={"ttl_hours": 24}, to=["c@example.fr"])

    assert_identity(message.body)
    for html, _mimetype in message.alternatives:
        assert_identity(str(html))
        assert str(html).rstrip().endswith("</html>")  # the footer went inside the body


@pytest.mark.parametrize("template", sorted(STAFF_TEMPLATES))
def test_the_staff_s_messages_are_sent_without_the_footer(template):
    assert template in email_templates()
    message = email_build(template=template, context={}, to=["dpo@x.fr"], for_staff=True)

    assert CNIL not in message.body


def test_the_dpo_s_deadline_reminder_has_no_recipient_footer():
    call_command("setup_roles", stdout=StringIO())
    UserFactory(email="dpo@velos.example").groups.add(Group.objects.get(name=DPO))
    PrivacyRequestFactory(at=timezone.now() - timedelta(days=40))  # late

    assert deadline_reminders_send()

    [message] = mail.outbox
    assert message.to == ["dpo@velos.example"]
    assert CNIL not in message.body


def test_the_footer_is_in_the_reader_s_language(notice):
    camille = ContactFactory(language="fr", first_name="Camille")
    context = {"contact": camille, "link": "https://x/p/t/", "unsubscribe": "https://x/u/t/"}

    email_send(
        template="preferences/email/link", context=context, to=[camille.email], reader=camille
    )

    [message] = mail.outbox
    assert message.body.startswith("Bonjour Camille,")
    assert_identity(message.body)


def test_without_a_stored_notice_the_configured_url_is_linked(settings):
    settings.PRIVACY_NOTICE_URL = "https://www.example.fr/privacy-fallback"

    message = email_build(template="preferences/email/link", context={}, to=["a@x.fr"])

    assert_identity(message.body, notice_url="https://www.example.fr/privacy-fallback")


def page_html(client: Client, path: str) -> str:
    response = client.get(path)
    assert response.status_code in (200, 404), path  # an unknown link: "not valid" page
    return response.content.decode()


def test_every_recipient_page_carries_the_controller_s_identity(client: Client, notice):
    camille = ContactFactory(language="fr")
    token = preference_token_issue(contact=camille)
    pages = [
        reverse("preferences:center", args=[token]),
        reverse("preferences:unsubscribe", args=[token]),
        reverse("preferences:center", args=["x" * 43]),  # an unknown link: the invalid page
        reverse("preferences:confirm", args=["not-a-token"]),
        reverse("preferences:action", args=["not-a-token"]),
        "/",
    ]

    for path in pages:
        html = page_html(client, path)
        assert_identity(html)
        assert f'href="{NOTICE_URL}"' in html, path


def test_a_new_notice_version_shows_on_the_pages_once_saved(
    client: Client, django_capture_on_commit_callbacks
):
    camille = ContactFactory(language="fr")
    token = preference_token_issue(contact=camille)
    center = reverse("preferences:center", args=[token])
    assert NOTICE_URL not in page_html(client, center)  # and the page cached "no notice"

    with django_capture_on_commit_callbacks(execute=True):
        PrivacyNoticeFactory(version="2026-02", url=NOTICE_URL)

    assert_identity(page_html(client, center))
