"""What the center says matches how it works, in the person's language, or the browser's when
the person never told us theirs."""

import re

import pytest
from django.core import mail
from django.test import Client

from consent.models import Purpose
from consent.services import double_opt_in_send
from contacts.models import Contact
from contacts.services import contact_pause, contact_upsert
from preferences.services import LinkAction, action_link_send, preference_token_issue
from tests.factories import ContactFactory, PurposeFactory, grant
from tests.preferences.conftest import BROWSER, center_path, page_text, post_form, read_page

pytestmark = pytest.mark.django_db


# --- a contact whose language is unknown -----------------------------------------------------


def test_a_contact_created_without_a_language_has_none() -> None:
    contact, _created = contact_upsert(email="nouveau@example.fr", fields={"first_name": "Léa"})

    assert contact.language == ""


def test_the_page_follows_the_browser_when_the_language_is_unknown(
    client: Client, purposes: dict[str, Purpose]
) -> None:
    token = preference_token_issue(contact=ContactFactory(language=""))

    english = client.get(center_path(token), HTTP_ACCEPT_LANGUAGE="en-GB,en;q=0.9")
    french = client.get(center_path(token), HTTP_ACCEPT_LANGUAGE="fr-FR,fr;q=0.9")
    other = client.get(center_path(token), HTTP_ACCEPT_LANGUAGE="de")

    assert english["Content-Language"] == "en"
    assert "Your communication preferences" in page_text(english)
    assert read_page(english).hidden()["lang"] == "en"  # the forms keep it
    assert french["Content-Language"] == "fr"
    assert other["Content-Language"] == "fr"  # French when the browser speaks neither


def test_a_known_language_wins_over_the_browser(client: Client, token: str) -> None:
    response = client.get(center_path(token), HTTP_ACCEPT_LANGUAGE="en")

    assert response["Content-Language"] == "fr"


def test_the_details_form_offers_the_page_language_for_an_unknown_one(client: Client) -> None:
    token = preference_token_issue(contact=ContactFactory(language=""))

    page = client.get(center_path(token), HTTP_ACCEPT_LANGUAGE="en").content.decode()

    [select] = re.findall(r'<select name="language".*?</select>', page, re.S)
    assert re.search(r'<option value="en" selected>', select)


def test_emails_to_a_contact_of_unknown_language_are_in_french() -> None:
    unknown = ContactFactory(language="")

    # (the tests run in English: French here comes from the contact, not the default)
    action_link_send(contact_id=unknown.id, action=LinkAction.DOWNLOAD)

    [message] = mail.outbox
    assert message.subject == "Votre lien de téléchargement de données"


# --- copy --------------------------------------------------------------------------------------


def test_the_page_says_each_section_is_saved_by_its_own_button(
    client: Client, token: str, purposes: dict[str, Purpose]
) -> None:
    response = client.get(center_path(token, lang="en"), **BROWSER)

    text = page_text(response)
    assert "every change is recorded as you make it" not in text
    assert "Each section has its own button" in text
    forms = re.findall(r"<form.*?</form>", response.content.decode(), re.S)
    assert forms and all(form.count("<button") == 1 for form in forms)


def test_the_email_change_copy_says_both_addresses_confirm(client: Client, token: str) -> None:
    page = page_text(client.get(center_path(token, lang="en"), **BROWSER))
    done = page_text(client.get(center_path(token, lang="en", done="email"), **BROWSER))

    assert "first send a link to your current address" in page
    assert "We sent a confirmation link to your current address" in done


def test_someone_unsubscribed_from_all_sees_no_pause_box(
    client: Client, camille: Contact, token: str
) -> None:
    contact_pause(contact=camille, months=3)
    post_form(client, token, "unsubscribe")

    text = page_text(client.get(center_path(token, lang="en"), **BROWSER))

    assert "You are unsubscribed from all marketing" in text
    assert "Your messages are paused until" not in text
    assert "Take a break" not in text


def test_someone_subscribed_still_sees_the_pause_box(client: Client, token: str) -> None:
    text = page_text(client.get(center_path(token, lang="en"), **BROWSER))

    assert "Take a break" in text


def test_the_double_opt_in_email_to_a_contact_of_unknown_language_is_in_french() -> None:
    unknown = ContactFactory(language="")
    grant(unknown, PurposeFactory(double_opt_in=True, channels=["email"]))

    double_opt_in_send(contact_id=unknown.id)

    [message] = mail.outbox
    assert message.subject != "Please confirm your subscription"
    [(html, _type)] = message.alternatives
    assert '<html lang="fr">' in html
