"""The audit log of staff actions on personal data, and the admin's erasure action."""

import json
import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import AbstractUser
from django.contrib.messages import get_messages
from django.core.serializers.json import DjangoJSONEncoder
from django.forms.models import model_to_dict
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse
from freezegun import freeze_time

from contacts.models import Contact
from contacts.selectors import suppression_reason
from core.models import AuditEvent
from tests.factories import ContactFactory, PurposeFactory, grant

pytestmark = pytest.mark.django_db

PARIS = ZoneInfo("Europe/Paris")
AUDIT_LOG = reverse("admin:core_auditevent_changelist")
CONTACTS = reverse("admin:contacts_contact_changelist")
OFFICE_IP = "198.51.100.7"


def contact_page(contact: Contact) -> str:
    return reverse("admin:contacts_contact_change", args=[contact.pk])


def view(client: Client, contact: Contact) -> HttpResponse:
    response = client.get(contact_page(contact), REMOTE_ADDR=OFFICE_IP)
    assert response.status_code == 200
    return response


def logged(client: Client, **query: str) -> list[AuditEvent]:
    """The rows the audit log shows for `query` (filters of the change list)."""
    response = client.get(AUDIT_LOG, query)
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def erase(client: Client, *contacts: Contact, confirmed: bool) -> HttpResponse:
    data = {"action": "erase_contacts", "_selected_action": [contact.pk for contact in contacts]}
    if confirmed:
        data["confirmed"] = "yes"
    return client.post(CONTACTS, data)


def confirmation_form(page: HttpResponse) -> dict[str, list[str]]:
    """What the confirmation page's form posts: its hidden fields, as the browser sends them."""
    fields: dict[str, list[str]] = {}
    for name, value in re.findall(
        r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.content.decode()
    ):
        fields.setdefault(name, []).append(value)
    return fields


def as_text(event: AuditEvent) -> str:
    """Every stored value of the event, as one string to search."""
    return json.dumps(model_to_dict(event), cls=DjangoJSONEncoder)


# --- what is logged ---------------------------------------------------------------------------


def test_opening_a_contact_page_logs_who_whose_and_from_where(
    as_marketer: Client, marketer: AbstractUser
) -> None:
    contact = ContactFactory(email="ines.moreau@example.fr")

    view(as_marketer, contact)

    [event] = AuditEvent.objects.all()
    assert (event.action, event.user, event.username) == (
        "view_contact",
        marketer,
        "marketer-persona",
    )
    assert (event.contact, event.contact_public_id) == (contact, contact.public_id)
    assert event.ip == OFFICE_IP


def test_each_opening_is_logged(as_marketer: Client) -> None:
    contact = ContactFactory()

    view(as_marketer, contact)
    view(as_marketer, contact)

    assert AuditEvent.objects.filter(action="view_contact", contact=contact).count() == 2


def test_a_missing_contact_page_logs_nothing(as_marketer: Client) -> None:
    response = as_marketer.get(reverse("admin:contacts_contact_change", args=[999999]))

    assert response.status_code == 302  # the admin sends back to its index
    assert not AuditEvent.objects.exists()


# --- the DPO's view of the log ----------------------------------------------------------------


@pytest.fixture
def activity(
    as_marketer: Client, as_dpo: Client, marketer: AbstractUser, dpo: AbstractUser
) -> dict[str, object]:
    """A marketer and the DPO open contact pages on two different days."""
    ines, paul = ContactFactory(), ContactFactory()
    with freeze_time(datetime(2026, 3, 10, 11, 0, tzinfo=PARIS)):
        view(as_marketer, ines)
        view(as_marketer, paul)
    with freeze_time(datetime(2026, 3, 12, 15, 0, tzinfo=PARIS)):
        view(as_dpo, ines)
    return {"ines": ines, "paul": paul, "marketer": marketer, "dpo": dpo}


def described(events: list[AuditEvent]) -> list[tuple[str, int, str]]:
    return sorted(
        (e.username, e.contact_id, e.at.astimezone(PARIS).date().isoformat()) for e in events
    )


def test_audit_log_lists_every_view_newest_first(
    as_dpo: Client, activity: dict[str, object]
) -> None:
    rows = logged(as_dpo)

    assert [row.username for row in rows] == ["dpo-persona", "marketer-persona", "marketer-persona"]
    page = as_dpo.get(AUDIT_LOG).content.decode()
    assert "Viewed a contact" in page
    assert str(activity["ines"]).replace("<", "&lt;").replace(">", "&gt;") in page


def test_audit_log_filters_by_user(as_dpo: Client, activity: dict[str, object]) -> None:
    rows = logged(as_dpo, user__id__exact=str(activity["marketer"].pk))

    assert described(rows) == [
        ("marketer-persona", activity["ines"].pk, "2026-03-10"),
        ("marketer-persona", activity["paul"].pk, "2026-03-10"),
    ]


def test_audit_log_filters_by_contact(as_dpo: Client, activity: dict[str, object]) -> None:
    rows = logged(as_dpo, contact__id__exact=str(activity["ines"].pk))

    assert described(rows) == [
        ("dpo-persona", activity["ines"].pk, "2026-03-12"),
        ("marketer-persona", activity["ines"].pk, "2026-03-10"),
    ]


def test_audit_log_contact_link_leads_to_that_contact_s_events(
    as_dpo: Client, activity: dict[str, object]
) -> None:
    ines = activity["ines"]

    page = as_dpo.get(AUDIT_LOG).content.decode()

    assert f"{AUDIT_LOG}?contact__id__exact={ines.pk}" in page


def test_audit_log_finds_a_contact_by_its_public_id(
    as_dpo: Client, activity: dict[str, object]
) -> None:
    rows = logged(as_dpo, q=str(activity["paul"].public_id))

    assert described(rows) == [("marketer-persona", activity["paul"].pk, "2026-03-10")]


def test_audit_log_filters_by_date(as_dpo: Client, activity: dict[str, object]) -> None:
    on_the_10th = logged(as_dpo, at__year="2026", at__month="3", at__day="10")
    on_the_12th = logged(as_dpo, at__year="2026", at__month="3", at__day="12")
    on_the_11th = logged(as_dpo, at__year="2026", at__month="3", at__day="11")

    assert {row.username for row in on_the_10th} == {"marketer-persona"}
    assert len(on_the_10th) == 2
    assert described(on_the_12th) == [("dpo-persona", activity["ines"].pk, "2026-03-12")]
    assert on_the_11th == []


def test_audit_log_is_read_only_even_for_the_dpo(
    as_dpo: Client, activity: dict[str, object]
) -> None:
    event = AuditEvent.objects.first()
    change = reverse("admin:core_auditevent_change", args=[event.pk])

    assert as_dpo.get(reverse("admin:core_auditevent_add")).status_code == 403
    assert as_dpo.get(change).status_code == 200
    assert as_dpo.post(change, {"username": "someone-else"}).status_code == 403
    assert as_dpo.post(reverse("admin:core_auditevent_delete", args=[event.pk])).status_code == 403
    event.refresh_from_db()
    assert event.username == "dpo-persona"


def test_marketer_cannot_read_the_audit_log(as_marketer: Client) -> None:
    assert as_marketer.get(AUDIT_LOG).status_code == 403


# --- erasure ----------------------------------------------------------------------------------


def test_audit_events_survive_the_erasure_and_never_hold_the_email(
    as_marketer: Client, as_dpo: Client
) -> None:
    # given a contact whose page was opened, and who was then erased
    contact = ContactFactory(email="ines.moreau@example.fr", first_name="Inès")
    view(as_marketer, contact)
    erase(as_dpo, contact, confirmed=True)

    # then the log still says who opened whose page, by the contact's pseudonym only
    events = list(AuditEvent.objects.order_by("id"))
    assert [(e.action, e.username) for e in events] == [
        ("view_contact", "marketer-persona"),
        ("erasure", "dpo-persona"),
    ]
    assert {e.contact_public_id for e in events} == {contact.public_id}
    assert {e.contact_id for e in events} == {contact.pk}
    for event in events:
        assert "ines.moreau" not in as_text(event)
    page = as_dpo.get(AUDIT_LOG, {"contact__id__exact": contact.pk}).content.decode()
    assert "ines.moreau" not in page
    assert "erased contact" in page


def test_erasure_action_asks_for_confirmation_first_and_erases_nothing(as_dpo: Client) -> None:
    # given
    ines = ContactFactory(email="ines.moreau@example.fr")
    paul = ContactFactory(email="paul.girard@example.fr")

    # when the DPO picks the erasure action
    response = erase(as_dpo, ines, paul, confirmed=False)

    # then a confirmation page names them, and nobody was erased
    assert response.status_code == 200
    assert "admin/contacts/contact/erase_confirmation.html" in [t.name for t in response.templates]
    page = response.content.decode()
    assert "ines.moreau@example.fr" in page and "paul.girard@example.fr" in page
    assert 'name="confirmed" value="yes"' in page
    assert set(Contact.objects.values_list("status", flat=True)) == {"active"}
    assert suppression_reason(kind="email", value="ines.moreau@example.fr") is None
    assert not AuditEvent.objects.filter(action="erasure").exists()


def test_confirmed_erasure_erases_each_contact_and_logs_it(
    as_dpo: Client, dpo: AbstractUser
) -> None:
    # given two people, one with a consent
    ines = ContactFactory(email="ines.moreau@example.fr")
    paul = ContactFactory(email="paul.girard@example.fr")
    grant(ines, PurposeFactory(slug="newsletter"))
    confirmation = erase(as_dpo, ines, paul, confirmed=False)

    # when the DPO confirms
    response = as_dpo.post(CONTACTS, confirmation_form(confirmation), follow=True)

    # then both are anonymised and suppressed, once each, and the log says who did it
    assert response.status_code == 200
    for contact, email in ((ines, "ines.moreau@example.fr"), (paul, "paul.girard@example.fr")):
        contact.refresh_from_db()
        assert contact.status == "erased"
        assert contact.email == f"erased-{contact.public_id}@erased.invalid"
        assert suppression_reason(kind="email", value=email) == "erased"
        assert contact.timeline.filter(kind="erased").count() == 1
    events = AuditEvent.objects.filter(action="erasure")
    assert sorted((e.contact_id, e.user_id) for e in events) == sorted(
        [(ines.pk, dpo.pk), (paul.pk, dpo.pk)]
    )
    assert "2 contact(s) erased." in [str(m) for m in get_messages(response.wsgi_request)]


def test_erasing_several_erases_the_others_when_one_cannot_be_erased(as_dpo: Client) -> None:
    # given three people, one of them with an address stored before validation existed,
    # which cannot go on the suppression list
    people = [ContactFactory(email=f"person{n}@example.fr") for n in range(3)]
    for contact in people:
        grant(contact, PurposeFactory())
    Contact.objects.filter(pk=people[1].pk).update(email="no-at-sign")

    response = as_dpo.post(
        CONTACTS,
        {
            "action": "erase_contacts",
            "_selected_action": [c.pk for c in people],
            "confirmed": "yes",
        },
        follow=True,
    )

    # then the two others are erased, the third is left whole, and the DPO is told
    statuses = dict(Contact.objects.values_list("pk", "status"))
    assert [statuses[c.pk] for c in people] == ["erased", "active", "erased"]
    assert people[1].consent_states.get().status == "granted"
    messages = [str(m) for m in get_messages(response.wsgi_request)]
    assert "2 contact(s) erased." in messages
    assert any(m.startswith("1 contact(s) could not be erased") for m in messages)


def test_erasing_again_an_erased_contact_does_nothing(as_dpo: Client) -> None:
    ines = ContactFactory(email="ines.moreau@example.fr")
    erase(as_dpo, ines, confirmed=True)

    erase(as_dpo, ines, confirmed=True)

    assert AuditEvent.objects.filter(action="erasure").count() == 1
    assert Contact.objects.get(pk=ines.pk).timeline.filter(kind="erased").count() == 1


def test_behind_a_trusted_proxy_the_audit_log_keeps_the_staff_members_ip(
    settings: Any, as_marketer: Client
) -> None:
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    contact = ContactFactory(email="ines.moreau@example.fr")

    response = as_marketer.get(
        contact_page(contact), REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=OFFICE_IP
    )

    assert response.status_code == 200
    assert AuditEvent.objects.get(action="view_contact").ip == OFFICE_IP
