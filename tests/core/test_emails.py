"""`email_send`: every email in its reader's language, with the one-click unsubscribe headers
when it markets something."""

import pytest
from django.core import mail
from django.utils import translation

from core.emails import email_send
from tests.factories import ContactFactory

LINK_TEMPLATE = "preferences/email/link"  # text only
CONFIRM_TEMPLATE = "consent/email/confirm"  # text and HTML
UNSUBSCRIBE = "https://consent.example.fr/u/token/"


def link_context(contact):
    return {"contact": contact, "link": "https://x/p/t/", "unsubscribe": UNSUBSCRIBE}


@pytest.mark.django_db
def test_an_email_is_written_in_its_reader_s_language_whatever_language_is_active():
    camille = ContactFactory(first_name="Camille", language="fr", email="camille@example.fr")

    with translation.override("en"):
        email_send(
            template=LINK_TEMPLATE,
            context=link_context(camille),
            to=[camille.email],
            reader=camille,
        )
        assert translation.get_language() == "en"  # the reader's language was only borrowed

    [message] = mail.outbox
    assert message.to == ["camille@example.fr"]
    assert message.subject == "Votre lien pour gérer vos préférences"
    assert message.body.startswith("Bonjour Camille,")


@pytest.mark.django_db
def test_the_html_part_is_in_the_reader_s_language_too():
    camille = ContactFactory(first_name="Camille", language="fr")
    context = {"contact": camille, "states": [], "link": "https://x/confirm/t/", "ttl_hours": 72}

    email_send(template=CONFIRM_TEMPLATE, context=context, to=[camille.email], reader=camille)

    [message] = mail.outbox
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    assert '<html lang="fr">' in html
    assert "Bonjour Camille," in html


@pytest.mark.django_db
def test_without_a_reader_the_language_given_is_used_else_the_site_s():
    nobody = ContactFactory.build(first_name="")

    email_send(template=LINK_TEMPLATE, context=link_context(nobody), to=["a@x.fr"], language="en")
    email_send(template=LINK_TEMPLATE, context=link_context(nobody), to=["b@x.fr"])

    english, site_language = mail.outbox
    assert english.subject == "Your link to manage your preferences"
    assert site_language.subject == "Votre lien pour gérer vos préférences"  # LANGUAGE_CODE fr


def send_to_camille(**kwargs):
    camille = ContactFactory()
    email_send(
        template=LINK_TEMPLATE,
        context=link_context(camille),
        to=[camille.email],
        reader=camille,
        **kwargs,
    )
    [message] = mail.outbox
    return message


@pytest.mark.django_db
def test_a_marketing_email_offers_the_mailbox_s_one_click_unsubscribe():
    message = send_to_camille(unsubscribe_url=UNSUBSCRIBE)

    headers = message.message()
    assert headers["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


@pytest.mark.django_db
def test_the_unsubscribe_address_is_offered_after_the_link_when_configured(settings):
    settings.LIST_UNSUBSCRIBE_MAILTO = "unsubscribe@example.fr"

    message = send_to_camille(unsubscribe_url=UNSUBSCRIBE)

    unfolded = "".join(message.message()["List-Unsubscribe"].split())
    assert unfolded == f"<{UNSUBSCRIBE}>,<mailto:unsubscribe@example.fr>"


@pytest.mark.django_db
def test_an_email_that_markets_nothing_has_no_list_headers(settings):
    settings.LIST_UNSUBSCRIBE_MAILTO = "unsubscribe@example.fr"

    message = send_to_camille()

    assert "List-Unsubscribe" not in message.message()
    assert "List-Unsubscribe-Post" not in message.message()
