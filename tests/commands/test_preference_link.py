"""`manage.py preference_link EMAIL`: a new working link, its URL on the last line."""

from io import StringIO
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import Client

from contacts.models import Contact, ContactStatus
from preferences.models import PreferenceToken
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("preference_link", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def camille(db: None) -> Contact:
    return ContactFactory(email="camille.durand@example.fr")


def test_command_prints_a_working_preference_url_on_its_last_line(
    client: Client, camille: Contact
) -> None:
    out, _err = run("camille.durand@example.fr")

    url = out.strip().splitlines()[-1]
    assert url.startswith(settings.SITE_URL + "/p/")
    response = client.get(urlsplit(url).path)
    assert response.status_code == 200
    assert "camille.durand@example.fr" in response.content.decode()


def test_command_output_ends_with_the_url_even_with_stderr_merged(camille: Contact) -> None:
    both = StringIO()

    call_command("preference_link", "camille.durand@example.fr", stdout=both, stderr=both)

    last = both.getvalue().strip().splitlines()[-1]
    assert last.startswith(settings.SITE_URL + "/p/")


def test_command_finds_the_contact_by_normalised_email(camille: Contact) -> None:
    out, _err = run("  Camille.Durand@EXAMPLE.fr ")

    assert out.strip().splitlines()[-1].startswith(settings.SITE_URL + "/p/")
    assert PreferenceToken.objects.filter(contact=camille).count() == 1


def test_command_stores_only_the_hash_of_the_token(camille: Contact) -> None:
    out, _err = run("camille.durand@example.fr")

    token = urlsplit(out.strip()).path.split("/")[2]
    stored = PreferenceToken.objects.get(contact=camille)
    assert stored.digest != token and token not in stored.digest


def test_links_issued_earlier_keep_working(client: Client, camille: Contact) -> None:
    first, _err = run("camille.durand@example.fr")
    second, _err = run("camille.durand@example.fr")

    assert first != second
    for out in (first, second):
        assert client.get(urlsplit(out.strip()).path).status_code == 200


def test_command_fails_for_an_unknown_email(db: None) -> None:
    with pytest.raises(CommandError, match="No contact has this email"):
        run("nobody@example.fr")

    assert PreferenceToken.objects.count() == 0


def test_command_fails_for_an_erased_contact(camille: Contact) -> None:
    Contact.objects.filter(pk=camille.pk).update(status=ContactStatus.ERASED)

    with pytest.raises(CommandError):
        run("camille.durand@example.fr")

    assert PreferenceToken.objects.count() == 0
