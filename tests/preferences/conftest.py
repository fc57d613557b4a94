"""Preference-center personas and helpers that read the pages the way a browser would.

Camille (French, on file as camille.durand@example.fr) holds a preference link; the purposes
cover every case the page must show: consent (newsletter, offers), legitimate interest
(product news), consent-based profiling (personalisation) and a contract purpose that cannot
be switched off.
"""

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import pytest
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse

from consent.models import LegalBasis, Purpose
from contacts.models import Contact
from preferences.services import preference_token_issue
from tests.factories import ContactFactory, PurposeFactory

BROWSER = {"REMOTE_ADDR": "198.51.100.23", "HTTP_USER_AGENT": "Mozilla/5.0 (Camille's laptop)"}


@dataclass
class Page:
    """What the HTML of a page holds: form controls, tags with URLs, errors near fields."""

    inputs: list[dict[str, str]] = field(default_factory=list)
    buttons: list[dict[str, str]] = field(default_factory=list)
    forms: list[dict[str, str]] = field(default_factory=list)
    urls: list[tuple[str, str]] = field(default_factory=list)  # (tag, url) of link/script/img/a

    def boxes(self, name: str = "consent") -> dict[str, dict[str, str]]:
        return {tag["value"]: tag for tag in self.inputs if tag.get("name") == name}

    def checked(self, name: str = "consent") -> set[str]:
        return {value for value, tag in self.boxes(name).items() if "checked" in tag}

    def submitted(self, name: str = "consent") -> set[str]:
        """The ticked boxes a browser sends: never a disabled one."""
        return {value for value in self.checked(name) if "disabled" not in self.boxes(name)[value]}

    def hidden(self) -> dict[str, str]:
        return {
            tag["name"]: tag.get("value", "")
            for tag in self.inputs
            if tag.get("type") == "hidden" and tag.get("name")
        }


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.page = Page()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "input":
            self.page.inputs.append(values)
        elif tag == "button":
            self.page.buttons.append(values)
        elif tag == "form":
            self.page.forms.append(values)
        for attribute in ("href", "src"):
            if attribute in values and tag in ("link", "script", "img", "a"):
                self.page.urls.append((tag, values[attribute]))


def read_page(response: HttpResponse) -> Page:
    reader = _Reader()
    reader.feed(response.content.decode())
    return reader.page


def field_error(response: HttpResponse, name: str) -> str:
    """The error shown next to form field `name`: inside the field's own group (its
    `<div class="field">` or `<fieldset>`), which points at it with aria-describedby."""
    error_id = f"id_{name}_error"
    for group in re.split(r'(?=<div class="field">|<fieldset)', response.content.decode()):
        found = re.search(rf'<ul class="errorlist" id="{error_id}">(.*?)</ul>', group, re.S)
        if found:
            assert re.search(rf'aria-describedby="[^"]*\b{error_id}\b', group), group
            return html.unescape(re.sub(r"<[^>]+>", " ", found.group(1))).strip()
    raise AssertionError(f"no error next to the field {name!r}")


def page_text(response: HttpResponse) -> str:
    """The page as the person reads it: entities decoded (J&#x27;accepte -> J'accepte)."""
    return html.unescape(response.content.decode())


def center_path(token: str, **query: str) -> str:
    path = reverse("preferences:center", args=[token])
    return path + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def unsubscribe_path(token: str) -> str:
    return reverse("preferences:unsubscribe", args=[token])


def post_form(client: Client, token: str, form: str, **data: Any) -> HttpResponse:
    """POST one of the center's forms as the person's browser does (hidden `form`, `lang`)."""
    return client.post(center_path(token), {"form": form, "lang": "fr", **data}, **BROWSER)


def save_consents(
    client: Client,
    token: str,
    *,
    tick: Iterable[str] = (),
    untick: Iterable[str] = (),
    lang: str = "fr",
    versions: dict[str, str] | None = None,
) -> HttpResponse:
    """Load the page, change some boxes, submit the whole consents form like a browser."""
    page = read_page(client.get(center_path(token, lang=lang), **BROWSER))
    wanted = (page.submitted() | set(tick)) - set(untick)
    shown = {k: v for k, v in page.hidden().items() if k.startswith(("version-", "seen:"))}
    shown.update(versions or {})
    data = {"form": "consents", "lang": lang, "consent": sorted(wanted), **shown}
    return client.post(center_path(token), data, **BROWSER)


@pytest.fixture
def camille(db: None) -> Contact:
    return ContactFactory(
        email="camille.durand@example.fr",
        first_name="Camille",
        last_name="Durand",
        phone="+33612345678",
        city="Lyon",
        country="FR",
        language="fr",
    )


@pytest.fixture
def token(camille: Contact) -> str:
    return preference_token_issue(contact=camille)


@pytest.fixture
def newsletter(db: None) -> Purpose:
    return PurposeFactory(
        slug="newsletter",
        name_fr="Lettre d'information",
        name_en="Newsletter",
        channels=["email", "sms"],
    )


@pytest.fixture
def offers(db: None) -> Purpose:
    return PurposeFactory(
        slug="offers", name_fr="Offres", name_en="Offers", channels=["email", "postal"]
    )


@pytest.fixture
def product_news(db: None) -> Purpose:
    return PurposeFactory(
        slug="product-news",
        name_fr="Nouveautés produit",
        name_en="Product news",
        legal_basis=LegalBasis.LEGITIMATE_INTERESTS,
        channels=["email"],
    )


@pytest.fixture
def personalisation(db: None) -> Purpose:
    return PurposeFactory(
        slug="personalisation",
        name_fr="Personnalisation",
        name_en="Personalisation",
        is_profiling=True,
        channels=["email"],
    )


@pytest.fixture
def account_notices(db: None) -> Purpose:
    return PurposeFactory(
        slug="account-notices",
        name_fr="Avis de compte",
        name_en="Account notices",
        legal_basis=LegalBasis.CONTRACT,
        channels=["email"],
    )


@pytest.fixture
def purposes(
    newsletter: Purpose,
    offers: Purpose,
    product_news: Purpose,
    personalisation: Purpose,
    account_notices: Purpose,
) -> dict[str, Purpose]:
    return {
        purpose.slug: purpose
        for purpose in (newsletter, offers, product_news, personalisation, account_notices)
    }


def snapshot(contact: Contact) -> dict[str, Any]:
    """Everything the person could change on the page, to prove what did not change."""
    contact = Contact.objects.get(pk=contact.pk)
    fields = {
        f.name: getattr(contact, f.name)
        for f in Contact._meta.concrete_fields
        # activity and modification times move with any change, by design, and the head of
        # the contact's ledger chain with any consent record
        if f.name not in ("updated_at", "last_activity_at", "ledger_seq", "ledger_hash")
    }
    return {
        **fields,
        "interests": sorted(contact.interests.values_list("slug", flat=True)),
        "states": {
            (state.purpose.slug, state.channel): (state.status, state.record_id)
            for state in contact.consent_states.select_related("purpose")
        },
    }
