"""`/u/<token>/`: one button on GET; RFC 8058 one-click POST unsubscribes from everything."""

import pytest
from django.test import Client

from consent.models import ConsentRecord, ConsentState, Purpose
from contacts.models import Contact, Suppression, TimelineEvent
from contacts.selectors import suppression_reason
from crmsync.models import OutboxEvent
from tests.factories import grant
from tests.preferences.conftest import (
    BROWSER,
    center_path,
    page_text,
    read_page,
    save_consents,
    unsubscribe_path,
)

pytestmark = pytest.mark.django_db

ONE_CLICK = "List-Unsubscribe=One-Click"
# What a mailbox provider sends: no cookie, no CSRF token, its own address and agent.
PROVIDER = {"REMOTE_ADDR": "192.0.2.50", "HTTP_USER_AGENT": "Mail-Provider-Unsubscriber/1.0"}


def one_click(token: str) -> object:
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        unsubscribe_path(token),
        data=ONE_CLICK,
        content_type="application/x-www-form-urlencoded",
        **PROVIDER,
    )
    assert not client.cookies
    return response


def writes() -> tuple[int, ...]:
    return tuple(
        model.objects.count()
        for model in (ConsentRecord, ConsentState, Suppression, TimelineEvent, OutboxEvent)
    )


@pytest.fixture
def subscribed(camille: Contact, purposes: dict[str, Purpose]) -> Contact:
    """Camille receives the newsletter by email and SMS and offers by post."""
    grant(camille, purposes["newsletter"], channel="email")
    grant(camille, purposes["newsletter"], channel="sms")
    grant(camille, purposes["offers"], channel="postal")
    grant(camille, purposes["personalisation"], channel="email")
    return camille


def test_get_shows_one_button_and_writes_nothing(
    client: Client, subscribed: Contact, token: str
) -> None:
    before = writes()

    response = client.get(unsubscribe_path(token) + "?lang=en", **BROWSER)

    assert response.status_code == 200
    page = read_page(response)
    assert len(page.buttons) == 1
    assert len(page.forms) == 1 and page.forms[0]["method"] == "post"
    assert "camille.durand@example.fr" in page_text(response)
    assert writes() == before
    assert suppression_reason(kind="email", value=subscribed.email) is None


def test_one_click_post_unsubscribes_without_cookies_or_csrf_token(
    subscribed: Contact, token: str
) -> None:
    response = one_click(token)

    assert response.status_code == 200
    assert "Location" not in response
    assert "Set-Cookie" not in response
    assert not response.cookies
    states = ConsentState.objects.filter(contact=subscribed).select_related("purpose")
    assert {(s.purpose.slug, s.channel): s.status for s in states} == {
        ("newsletter", "email"): "withdrawn",
        ("newsletter", "sms"): "withdrawn",
        ("offers", "postal"): "withdrawn",
        ("personalisation", "email"): "withdrawn",
        ("product-news", "email"): "withdrawn",  # legitimate interest: objected to
    }
    withdrawals = ConsentRecord.objects.filter(contact=subscribed, action="withdraw")
    assert withdrawals.count() == 5
    assert set(withdrawals.values_list("source_kind", flat=True)) == {"one_click_unsubscribe"}
    assert {r.personal_evidence.ip for r in withdrawals} == {"192.0.2.50"}
    assert suppression_reason(kind="email", value=subscribed.email) == "global_unsubscribe"


def test_unsubscribe_is_on_the_timeline_and_sent_to_the_crms(
    subscribed: Contact, token: str
) -> None:
    one_click(token)

    entry = subscribed.timeline.get(kind="unsubscribed")
    assert entry.data["source"] == "one_click_unsubscribe"
    assert OutboxEvent.objects.filter(
        topic="contact.unsubscribed", contact_public_id=subscribed.public_id
    ).exists()


def test_repeating_the_one_click_post_is_harmless(subscribed: Contact, token: str) -> None:
    one_click(token)
    before = writes()

    again = one_click(token)

    assert again.status_code == 200
    assert "Location" not in again
    assert writes() == before


def test_one_click_works_for_a_contact_with_nothing_to_withdraw(
    camille: Contact, token: str
) -> None:
    response = one_click(token)

    assert response.status_code == 200
    assert suppression_reason(kind="email", value=camille.email) == "global_unsubscribe"
    assert not ConsentRecord.objects.exists()


def test_button_post_from_the_page_unsubscribes_too(subscribed: Contact, token: str) -> None:
    client = Client(enforce_csrf_checks=True)
    page = read_page(client.get(unsubscribe_path(token), **BROWSER))

    response = client.post(unsubscribe_path(token), page.hidden(), **BROWSER)

    assert response.status_code == 200
    assert suppression_reason(kind="email", value=subscribed.email) == "global_unsubscribe"
    assert not ConsentState.objects.filter(contact=subscribed, status="granted").exists()


def test_after_unsubscribing_the_page_offers_to_resubscribe(
    subscribed: Contact, token: str
) -> None:
    response = Client().post(unsubscribe_path(token) + "?lang=en", **PROVIDER)

    text = page_text(response)
    assert "You are unsubscribed" in text
    assert "You can subscribe again" in text
    links = [url for tag, url in read_page(response).urls if tag == "a"]
    assert center_path(token, lang="en") + "#resubscribe" in links


def test_resubscribe_link_leads_to_the_resubscribe_button(
    client: Client, subscribed: Contact, token: str
) -> None:
    one_click(token)

    response = client.get(center_path(token, lang="en"), **BROWSER)

    assert 'id="resubscribe"' in response.content.decode()
    assert "Resubscribe" in page_text(response)


def test_one_click_page_keeps_the_token_private(subscribed: Contact, token: str) -> None:
    response = one_click(token)

    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cache-Control"] == "no-store"
    assert "<script" not in response.content.decode().lower()


def test_other_methods_are_refused(client: Client, subscribed: Contact, token: str) -> None:
    before = writes()

    response = client.put(unsubscribe_path(token), data=ONE_CLICK)

    assert response.status_code == 405
    assert writes() == before


def test_resubscribing_after_one_click_grants_everything_back(
    client: Client, subscribed: Contact, token: str
) -> None:
    one_click(token)

    response = client.post(center_path(token), {"form": "resubscribe", "lang": "fr"}, **BROWSER)

    assert response.status_code == 303
    states = ConsentState.objects.filter(contact=subscribed).select_related("purpose")
    assert {(s.purpose.slug, s.channel): s.status for s in states} == {
        ("newsletter", "email"): "granted",
        ("newsletter", "sms"): "granted",
        ("offers", "postal"): "granted",
        ("personalisation", "email"): "granted",
        ("product-news", "email"): "granted",
    }
    assert suppression_reason(kind="email", value=subscribed.email) is None


def test_resubscribing_does_not_undo_an_objection_to_profiling(
    client: Client, subscribed: Contact, token: str
) -> None:
    client.post(center_path(token), {"form": "objection", "objected": "1"}, **BROWSER)
    one_click(token)

    client.post(center_path(token), {"form": "resubscribe"}, **BROWSER)

    states = ConsentState.objects.filter(contact=subscribed).select_related("purpose")
    statuses = {(s.purpose.slug, s.channel): s.status for s in states}
    assert statuses[("personalisation", "email")] == "withdrawn"
    assert statuses[("newsletter", "email")] == "granted"


def test_one_click_post_as_multipart_form_data_works_too(subscribed: Contact, token: str) -> None:
    # RFC 8058 allows either encoding of the body
    client = Client(enforce_csrf_checks=True)

    response = client.post(unsubscribe_path(token), {"List-Unsubscribe": "One-Click"}, **PROVIDER)

    assert response.status_code == 200
    assert "Location" not in response and "Set-Cookie" not in response
    assert suppression_reason(kind="email", value=subscribed.email) == "global_unsubscribe"


def test_resubscribing_grants_back_only_what_the_last_unsubscribe_withdrew(
    client: Client, subscribed: Contact, token: str
) -> None:
    # given the person unsubscribed, then ticked only the newsletter by email again, then
    # unsubscribed once more
    one_click(token)
    assert save_consents(client, token, tick=["newsletter:email"]).status_code == 303
    one_click(token)

    # when they resubscribe
    response = client.post(center_path(token), {"form": "resubscribe", "lang": "fr"}, **BROWSER)

    # then only what the second unsubscribe took away comes back: what they had left off stays
    assert response.status_code == 303
    states = ConsentState.objects.filter(contact=subscribed).select_related("purpose")
    assert {(s.purpose.slug, s.channel): s.status for s in states} == {
        ("newsletter", "email"): "granted",
        ("newsletter", "sms"): "withdrawn",
        ("offers", "postal"): "withdrawn",
        ("personalisation", "email"): "withdrawn",
        ("product-news", "email"): "withdrawn",
    }
