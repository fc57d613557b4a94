import pytest
from django.urls import reverse

from consent.models import Channel, ConsentState
from contacts.models import Contact, TimelineEvent
from crmsync.models import OutboxEvent
from privacy.services import contact_erase
from tests.admin.forms import submitted_form
from tests.factories import ContactFactory, PurposeFactory, grant

pytestmark = pytest.mark.django_db


def change_url(contact: Contact) -> str:
    return reverse("admin:contacts_contact_change", args=[contact.pk])


@pytest.fixture
def contact_with_history() -> tuple[Contact, list]:
    contact = ContactFactory(email="ines.moreau@example.fr")
    newsletter = PurposeFactory(slug="newsletter", double_opt_in=True, channels=["email"])
    offers = PurposeFactory(slug="offers", channels=["email", "sms"])
    records = [
        grant(contact, newsletter),
        grant(contact, offers, channel="sms"),
        grant(contact, offers, channel="sms", action="withdraw", evidence=None),
    ]
    return contact, records


def test_marketer_sees_current_consent_state_on_contact_page(as_marketer, contact_with_history):
    contact, records = contact_with_history

    response = as_marketer.get(change_url(contact))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Current consents" in page
    standings = {
        (row["purpose"].slug, channel): cell["standing"]
        for row in response.context["consent_grid"]
        for channel, cell in zip(Channel.values, row["cells"], strict=True)
        if cell["standing"] != "not_used"
    }
    assert standings == {
        ("newsletter", "email"): "pending",
        ("offers", "email"): "not_asked",
        ("offers", "sms"): "withdrawn",
    }
    assert "pending confirmation" in page and "withdrawn" in page


def test_marketer_sees_full_ledger_history_on_contact_page(as_marketer, contact_with_history):
    contact, records = contact_with_history

    response = as_marketer.get(change_url(contact))

    page = response.content.decode()
    assert "3 records in the consent ledger, the latest first" in page
    for record in records:
        assert reverse("admin:consent_consentrecord_change", args=[record.pk]) in page
        receipt = reverse("admin:contacts_contact_consent_receipt", args=[contact.pk, record.uuid])
        assert receipt in page
    assert "via the web form https://example.fr/newsletter" in page  # the source reference
    ledger = response.context["ledger"]
    assert [line["record_url"] for line in ledger] == [
        reverse("admin:consent_consentrecord_change", args=[record.pk])
        for record in reversed(records)
    ]  # latest first


def test_marketer_sees_timeline_on_contact_page(as_marketer, contact_with_history):
    contact, _records = contact_with_history

    response = as_marketer.get(change_url(contact))

    assert "Consent: withdrew Purpose offers by SMS via the web form" in response.content.decode()


def test_contact_page_is_read_only_for_consents(as_marketer, contact_with_history):
    contact, _records = contact_with_history

    response = as_marketer.get(change_url(contact))

    for inline in response.context["inline_admin_formsets"]:
        # notes are added here, through the screen (tests/admin/test_notes_admin.py)
        assert inline.has_add_permission == (inline.formset.model._meta.model_name == "note")
        assert not inline.has_change_permission
        assert not inline.has_delete_permission


def test_editing_a_contact_goes_through_the_service(as_marketer, contact_with_history):
    contact, _records = contact_with_history
    page = as_marketer.get(change_url(contact))
    outbox_before = OutboxEvent.objects.count()

    response = as_marketer.post(
        change_url(contact),
        submitted_form(page, first_name="Inès", phone="06 12 34 56 78", country="fr"),
    )

    assert response.status_code == 302
    contact.refresh_from_db()
    assert (contact.first_name, contact.phone, contact.country) == ("Inès", "+33612345678", "FR")
    update = TimelineEvent.objects.filter(contact=contact, kind="updated").get()
    assert set(update.data["fields"]) == {"first_name", "phone", "country"}
    event = OutboxEvent.objects.order_by("created_at").last()
    assert OutboxEvent.objects.count() == outbox_before + 1
    assert event.topic == "contact.updated" and event.contact_public_id == contact.public_id
    # the ledger inlines were submitted too, and nothing in them was touched
    assert ConsentState.objects.filter(contact=contact).count() == 2


def test_an_invalid_phone_is_reported_on_the_form_and_nothing_is_saved(
    as_marketer, contact_with_history
):
    contact, _records = contact_with_history
    page = as_marketer.get(change_url(contact))

    response = as_marketer.post(
        change_url(contact), submitted_form(page, first_name="Changed", phone="12")
    )

    assert response.status_code == 200
    assert "phone" in response.context["adminform"].form.errors
    contact.refresh_from_db()
    assert contact.first_name == "Camille"
    assert not TimelineEvent.objects.filter(contact=contact, kind="updated").exists()


def test_email_already_taken_after_normalisation_is_refused(as_dpo, contact_with_history):
    contact, _records = contact_with_history
    ContactFactory(email="taken@example.fr")
    page = as_dpo.get(change_url(contact))

    response = as_dpo.post(change_url(contact), submitted_form(page, email=" Taken@Example.FR "))

    assert response.status_code == 200
    assert "email" in response.context["adminform"].form.errors
    contact.refresh_from_db()
    assert contact.email == "ines.moreau@example.fr"


def test_adding_a_contact_goes_through_the_service(as_marketer):
    url = reverse("admin:contacts_contact_add")
    page = as_marketer.get(url)

    response = as_marketer.post(
        url, submitted_form(page, email=" Nina.Roux@Example.FR", first_name="Nina")
    )

    assert response.status_code == 302
    contact = Contact.objects.get(email="nina.roux@example.fr")
    assert TimelineEvent.objects.filter(contact=contact, kind="created").exists()
    assert OutboxEvent.objects.filter(
        topic="contact.created", contact_public_id=contact.public_id
    ).exists()


def test_contacts_cannot_be_deleted_in_the_admin_even_by_a_superuser(as_superuser):
    contact = ContactFactory()

    delete_page = as_superuser.get(reverse("admin:contacts_contact_delete", args=[contact.pk]))
    changelist = as_superuser.get(reverse("admin:contacts_contact_changelist"))

    assert delete_page.status_code == 403
    assert changelist.status_code == 200
    assert b"delete_selected" not in changelist.content
    assert Contact.objects.filter(pk=contact.pk).exists()


def test_contact_list_searches_by_email_and_filters_by_status(as_marketer):
    ContactFactory(email="zoe.lambert@example.fr", last_name="Lambert")
    ContactFactory(email="other@example.fr")
    url = reverse("admin:contacts_contact_changelist")

    by_email = as_marketer.get(url, {"q": "zoe.lambert"})
    by_name = as_marketer.get(url, {"q": "Lambert", "status__exact": "active"})

    assert [c.email for c in by_email.context["cl"].result_list] == ["zoe.lambert@example.fr"]
    assert [c.email for c in by_name.context["cl"].result_list] == ["zoe.lambert@example.fr"]


def test_saving_an_erased_contact_is_refused_with_a_message_not_an_error_page(as_marketer):
    # given a contact erased while its page was open
    contact = ContactFactory(email="gone@example.fr")
    page = as_marketer.get(change_url(contact))
    contact_erase(contact=contact, reason="request")

    # when the marketer saves the page
    response = as_marketer.post(change_url(contact), submitted_form(page, first_name="Back"))

    # then the form says why, and the contact stays erased
    assert response.status_code == 200
    assert "was erased" in str(response.context["adminform"].form.non_field_errors())
    contact.refresh_from_db()
    assert (contact.status, contact.first_name) == ("erased", "")


def test_a_marketer_cannot_change_a_contacts_email(as_marketer, contact_with_history):
    # given: whoever sets the address receives the person's links from then on
    contact, _records = contact_with_history
    page = as_marketer.get(change_url(contact))
    assert "email" not in page.context["adminform"].form.fields  # shown read-only

    # when a marketer posts another address anyway
    response = as_marketer.post(
        change_url(contact),
        {**submitted_form(page, first_name="Inès"), "email": "marketer@example.fr"},
    )

    # then the other fields are saved, the address is not
    assert response.status_code == 302
    contact.refresh_from_db()
    assert (contact.first_name, contact.email) == ("Inès", "ines.moreau@example.fr")


def test_the_dpo_rectifies_a_contacts_email(as_dpo, contact_with_history):
    contact, _records = contact_with_history
    page = as_dpo.get(change_url(contact))

    response = as_dpo.post(change_url(contact), submitted_form(page, email="ines.m@example.fr"))

    assert response.status_code == 302
    contact.refresh_from_db()
    assert contact.email == "ines.m@example.fr"


def test_a_marketer_still_types_the_email_of_a_new_contact(as_marketer):
    url = reverse("admin:contacts_contact_add")
    page = as_marketer.get(url)

    response = as_marketer.post(url, submitted_form(page, email="Nouveau@Example.fr"))

    assert response.status_code == 302
    assert Contact.objects.get().email == "nouveau@example.fr"
