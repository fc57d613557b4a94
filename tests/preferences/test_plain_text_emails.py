"""Every email the product sends reads as plain text in its text/plain part and subject: no
HTML entities (`J&#x27;accepte`, `&amp;`) where no browser will decode them."""

import re
from collections.abc import Callable
from datetime import timedelta
from email.header import decode_header, make_header
from email.message import Message

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from consent.models import Purpose
from consent.services import double_opt_in_send
from contacts.models import Contact
from contacts.services import contact_update
from core.management.commands.setup_roles import DPO
from preferences.services import (
    LinkAction,
    action_link_send,
    email_changed_notice_send,
    preference_link_send,
)
from privacy.services import deadline_reminders_send, privacy_request_file, retention_apply
from tests.conftest import Mailbox, message_text
from tests.factories import ContactFactory, PurposeFactory, UserFactory, grant

pytestmark = pytest.mark.django_db

ENTITY = re.compile(r"&(#x?[0-9a-fA-F]+|[a-zA-Z]+);")


@pytest.fixture
def person(db: None) -> Contact:
    """Someone whose name and messages are full of characters HTML escapes, in French."""
    return ContactFactory(
        email="zoe.oneil@example.fr",
        first_name="Zoë & Jean-Luc O'Neil",
        last_name='<Dupont> "Fils"',
        language="fr",
    )


@pytest.fixture
def letter(db: None) -> Purpose:
    return PurposeFactory(
        slug="letter", name_fr="Lettre d'info & offres", double_opt_in=True, channels=["email"]
    )


def double_opt_in(person: Contact, letter: Purpose) -> None:
    grant(person, letter)
    double_opt_in_send(contact_id=person.id)


def links(person: Contact, letter: Purpose) -> None:
    for action in LinkAction.ALL:
        action_link_send(contact_id=person.id, action=action, new_email="zoe@nouveau.fr")


def renewed_link(person: Contact, letter: Purpose) -> None:
    preference_link_send(contact_id=person.id)


def email_changed(person: Contact, letter: Purpose) -> None:
    contact_update(contact=person, email="zoe@nouveau.fr")
    email_changed_notice_send(contact_id=person.id, old_email="zoe.oneil@example.fr")


def repermission(person: Contact, letter: Purpose) -> None:
    retention_apply(now=timezone.now() + timedelta(days=20 * 365))


def deadline_reminder(person: Contact, letter: Purpose) -> None:
    UserFactory(email="dpo@example.fr").groups.add(Group.objects.get_or_create(name=DPO)[0])
    request = privacy_request_file(contact=person, type="access", source_kind="admin")
    deadline_reminders_send(now=request.due_at + timedelta(days=1))


EMAILS: dict[str, Callable[[Contact, Purpose], None]] = {
    "double opt-in": double_opt_in,
    "confirmation links (email change, new address, download, erasure)": links,
    "renewed preference link": renewed_link,
    "email changed notice": email_changed,
    "re-permission (retention)": repermission,
    "privacy request deadlines": deadline_reminder,
}


def subject(message: Message) -> str:
    return str(make_header(decode_header(message["Subject"])))


@pytest.mark.parametrize("send", EMAILS.values(), ids=EMAILS.keys())
def test_plain_text_parts_carry_no_html_entities(
    person: Contact, letter: Purpose, mailbox: Mailbox, send: Callable[[Contact, Purpose], None]
) -> None:
    send(person, letter)

    assert mailbox.messages
    for message in mailbox.messages:
        text = subject(message) + "\n" + message_text(message)
        assert text.strip()
        assert not ENTITY.search(text), text


def test_names_and_wordings_reach_the_text_as_written(
    person: Contact, letter: Purpose, mailbox: Mailbox
) -> None:
    double_opt_in(person, letter)

    [message] = mailbox.messages
    text = message_text(message)
    assert "Zoë & Jean-Luc O'Neil" in text
    assert "Lettre d'info & offres" in text
    assert "J'accepte de recevoir letter." in text
