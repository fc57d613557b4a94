"""Odd values in every form of the recipient pages get a form error (the page again, or a
400 page in the person's language), never a server error, and change nothing they should not."""

from typing import Any

import pytest
from django.test import Client

from consent.models import Purpose
from contacts.models import Contact
from preferences.forms import IdentityForm
from preferences.services import LinkAction, action_link_send
from preferences.views import HANDLERS
from tests.conftest import Mailbox
from tests.factories import InterestFactory, grant
from tests.preferences.conftest import BROWSER, center_path, page_text, unsubscribe_path

pytestmark = pytest.mark.django_db

ODD_VALUES: dict[str, Any] = {
    "empty": "",
    "superscript two": "²",
    "arabic-indic three": "٣",
    "huge number": "9" * 5000,
    "overlong": "é" * 10_000,
    "null byte": "a\x00b",
    "markup": "<script>alert(1)</script>",
    "long s": "ſ",
    "several values": ["1", "2", "x"],
}

CHECKED_IDENTITY = ("phone", "country", "language")
# The fields each form of the center reads (besides `form` and `lang`).
FIELDS: dict[str, list[str]] = {
    "consents": [
        "consent",
        "version-newsletter",
        "version-unknown-slug",
        "seen:newsletter:email",
        "seen:unknown:x",
    ],
    # the free-text fields share their validation: fuzzed together; the others one by one
    "identity": [
        ",".join(name for name in IdentityForm.base_fields if name not in CHECKED_IDENTITY),
        *CHECKED_IDENTITY,
    ],
    "email": ["email"],
    "interests": ["interests"],
    "frequency": ["frequency"],
    "pause": ["months"],
    "objection": ["objected"],
}
# Each field of each form on its own (another field's error must not hide it), then, per form,
# the fields every form has.
CASES = [(form, field) for form, fields in FIELDS.items() for field in fields] + [
    (form, "lang,form,unknown-field") for form in HANDLERS
]


@pytest.fixture
def no_limits(settings: Any) -> None:
    settings.PREFERENCES_RATE_PER_TOKEN = "100000/m"
    settings.PREFERENCES_RATE_PER_IP = "100000/m"


@pytest.fixture
def page(camille: Contact, token: str, purposes: dict[str, Purpose], no_limits: None) -> str:
    """Camille's center with something in every section."""
    InterestFactory(slug="cycling")
    grant(camille, purposes["newsletter"], channel="email")
    return center_path(token)


def assert_answered(response: Any) -> None:
    assert response.status_code in (200, 303, 400), response.status_code
    if response.status_code == 400:
        assert response["Content-Language"] in ("fr", "en")
        assert f'<html lang="{response["Content-Language"]}">' in response.content.decode()


@pytest.mark.parametrize(("form", "field"), CASES, ids=[f"{f}-{n}" for f, n in CASES])
def test_odd_values_in_any_field_of_any_form_are_answered_never_a_server_error(
    client: Client, page: str, form: str, field: str
) -> None:
    for value in ODD_VALUES.values():
        data = {"form": form, "lang": "fr", **dict.fromkeys(field.split(","), value)}
        assert_answered(client.post(page, data, **BROWSER))


@pytest.mark.parametrize("form", HANDLERS)
def test_a_form_with_every_field_missing_is_answered(client: Client, page: str, form: str) -> None:
    assert_answered(client.post(page, {"form": form}, **BROWSER))


def test_a_malformed_wording_version_is_a_form_error_on_the_page(
    client: Client, camille: Contact, page: str
) -> None:
    for value in ("²", "٣", "9" * 5000, "-1"):
        response = client.post(
            page,
            {
                "form": "consents",
                "lang": "en",
                "consent": ["newsletter:email", "newsletter:sms"],
                "version-newsletter": value,
                "seen:newsletter:sms": "",
            },
            **BROWSER,
        )

        assert response.status_code == 400
        assert "The wording of this purpose changed" in page_text(response)
    assert not camille.consent_states.filter(channel="sms").exists()


def test_too_many_fields_get_a_400_page_in_the_persons_language(client: Client, page: str) -> None:
    data = {f"field-{n}": "x" for n in range(1200)}

    response = client.post(page, {"form": "identity", **data}, HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 400
    assert response["Content-Language"] == "en"
    assert '<html lang="en">' in response.content.decode()
    assert "What was sent could not be read" in page_text(response)


@pytest.mark.parametrize("value", list(ODD_VALUES.values()), ids=list(ODD_VALUES))
def test_odd_values_on_the_link_pages_are_answered(
    client: Client, camille: Contact, token: str, mailbox: Mailbox, no_limits: None, value: Any
) -> None:
    action_link_send(contact_id=camille.id, action=LinkAction.DOWNLOAD)
    link = mailbox.messages[0].get_payload()[0].get_payload(decode=True).decode()
    path = "/p/confirm/" + link.split("/p/confirm/")[1].split("/")[0] + "/"

    for response in (
        client.post(path, {"format": value, "lang": value}, **BROWSER),
        client.post(unsubscribe_path(token), {"lang": value}, **BROWSER),
        client.get(center_path(token), {"lang": value, "done": value}, **BROWSER),
    ):
        assert response.status_code in (200, 400), response.status_code
