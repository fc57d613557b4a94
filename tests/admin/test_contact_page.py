"""The contact page reads as words: who the person is, their consents as a grid (dated when
they were given, with the source and wording version), the ledger's lines with their
receipts, the timeline, the campaigns received, the CRMs and the privacy requests, in a fixed
number of queries however long the person's history."""

from datetime import datetime, timedelta
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.template.loader import get_template
from django.template.loader_tags import BlockNode
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format

from campaigns.models import Recipient, RecipientStatus
from consent.models import Channel, ConsentRecord, LegalBasis, Purpose
from consent.services import Evidence
from contacts.deliverability import deliverability_event_apply
from contacts.models import Contact
from contacts.services import note_add
from core.models import AuditAction, AuditEvent
from crmsync.connections import connection_create
from crmsync.models import Connection, ContactLink, DeadLetter, OutboxEvent
from privacy.merge import contact_merge
from tests.factories import (
    LIST_COLLECTION_REFERENCE,
    ContactFactory,
    OutboxEventFactory,
    PrivacyRequestFactory,
    PurposeFactory,
    campaign_make,
    grant,
)

pytestmark = pytest.mark.django_db

PARIS = ZoneInfo("Europe/Paris")
# What the page reads, measured: the admin's own 11 (session, user, device, the contact twice,
# permissions twice, merged contacts, interests twice, the audit entry) and the panels' 10
# (ledger, states, purposes and their versions, timeline, campaigns, CRM links, outbox
# count, dead letters, privacy requests), and the notes' list (one, however many).
PAGE_QUERY_BUDGET = 22
SIGNED_AT = datetime(2026, 3, 12, 14, 3, tzinfo=PARIS)


@pytest.fixture(autouse=True)
def _media(settings, tmp_path) -> None:
    settings.MEDIA_ROOT = tmp_path


def change_url(contact: Contact) -> str:
    return reverse("admin:contacts_contact_change", args=[contact.pk])


def receipt_url(contact: Contact, record: ConsentRecord) -> str:
    return reverse("admin:contacts_contact_consent_receipt", args=[contact.pk, record.uuid])


@pytest.fixture
def newsletter() -> Purpose:
    return PurposeFactory(slug="newsletter", name_en="Newsletter", channels=["email", "sms"])


@pytest.fixture
def person() -> Contact:
    return ContactFactory(
        email="ines.moreau@example.fr",
        first_name="Inès",
        last_name="Moreau",
        phone="+33612345678",
        company="Atelier Moreau",
        language="en",
    )


def cells_of(response, slug: str) -> dict[str, dict]:
    (row,) = [row for row in response.context["consent_grid"] if row["purpose"].slug == slug]
    return dict(zip(Channel.values, row["cells"], strict=True))


def section(page: str, name: str) -> str:
    """The page's panel `name` (its heading's id is `contact-<name>-title`)."""
    start = page.index(f'id="contact-{name}-title"')
    return page[start : page.index("</section>", start)]


def hubspot() -> Connection:
    return connection_create(
        name="HubSpot", kind="hubspot", base_url="http://127.0.0.1:9", credentials={"token": "t"}
    )


def test_the_page_starts_with_who_the_person_is(as_marketer: Client, person: Contact) -> None:
    page = as_marketer.get(change_url(person)).content.decode()

    identity = section(page, "identity")
    for shown in ("Inès Moreau", "ines.moreau@example.fr", "+33612345678", "Atelier Moreau"):
        assert shown in identity
    assert "English" in identity and "Active" in identity


def test_the_grid_dates_a_consent_when_it_was_given_not_when_it_was_recorded(
    as_marketer: Client, person: Contact, newsletter: Purpose
) -> None:
    record = grant(person, newsletter, given_at=SIGNED_AT)
    assert record.recorded_at.date() != SIGNED_AT.date()

    response = as_marketer.get(change_url(person))

    email = cells_of(response, "newsletter")["email"]
    assert email["standing"] == "granted"
    assert email["given_at"] == SIGNED_AT
    assert email["version"] == 1
    assert email["source"] == "the web form https://example.fr/newsletter"
    grid = section(response.content.decode(), "consents")
    assert "given 12 Mar 2026 14:03" in grid
    assert date_format(timezone.localtime(record.recorded_at), "j M Y H:i") not in grid
    assert "via the web form https://example.fr/newsletter" in grid
    assert "wording v1" in grid
    assert receipt_url(person, record) in grid


def test_each_cell_says_where_the_person_stands_in_words(
    as_marketer: Client, person: Contact, newsletter: Purpose
) -> None:
    PurposeFactory(
        slug="catalogue",
        name_en="Catalogue",
        legal_basis=LegalBasis.LEGITIMATE_INTERESTS,
        channels=["postal"],
    )
    offers = PurposeFactory(slug="offers", name_en="Offers", channels=["email", "sms"])
    grant(person, offers, channel="sms")
    grant(person, offers, channel="sms", action="withdraw", evidence=None)

    response = as_marketer.get(change_url(person))

    assert cells_of(response, "catalogue")["postal"]["standing"] == "legitimate_interest"
    assert cells_of(response, "catalogue")["email"]["standing"] == "not_used"
    assert cells_of(response, "newsletter")["email"]["standing"] == "not_asked"
    assert cells_of(response, "offers")["sms"]["standing"] == "withdrawn"
    page = response.content.decode()
    for words in ("legitimate interest", "not asked", "withdrawn", "not used on this channel"):
        assert words in page
    assert "offers/sms" not in page  # no raw codes


def test_sources_are_told_in_words(
    as_marketer: Client, person: Contact, newsletter: Purpose
) -> None:
    grant(
        person,
        newsletter,
        source_kind="paper_form",
        source_reference="",
        given_at=SIGNED_AT,
        evidence=Evidence(document=SimpleUploadedFile("form.pdf", b"%PDF signed")),
    )
    grant(
        person,
        newsletter,
        channel="sms",
        source_kind="phone_call",
        source_reference="CALL-42",
        given_at=SIGNED_AT,
        evidence=Evidence(wording="Do you agree to our SMS?"),
    )
    offers = PurposeFactory(slug="offers", name_en="Offers", channels=["email"])
    grant(
        person,
        offers,
        source_kind="crm",
        source_reference="HubSpot:00Q42",
        evidence=Evidence(
            wording="Relayed", collection_reference=LIST_COLLECTION_REFERENCE, second_hand=True
        ),
    )

    response = as_marketer.get(change_url(person))

    assert cells_of(response, "newsletter")["email"]["source"] == "a paper form"
    assert cells_of(response, "newsletter")["sms"]["source"] == "a phone call (CALL-42)"
    assert cells_of(response, "offers")["email"]["source"] == "the CRM HubSpot:00Q42"


def test_the_ledger_is_collapsed_into_one_line_per_record_with_its_receipt(
    as_marketer: Client, person: Contact, newsletter: Purpose
) -> None:
    first = grant(person, newsletter, given_at=SIGNED_AT)
    second = grant(person, newsletter, action="withdraw", evidence=None)

    response = as_marketer.get(change_url(person))

    page = response.content.decode()
    assert "consent history (ledger, oldest first)" not in page.lower()  # the wide table
    ledger = section(page, "ledger")
    assert "2 records in the consent ledger, the latest first" in ledger
    assert "12 March 2026 14:03, granted Newsletter by email via the web form " in ledger
    assert "https://example.fr/newsletter, wording v1" in ledger
    assert "withdrew Newsletter by email" in ledger
    assert ledger.index(receipt_url(person, second)) < ledger.index(receipt_url(person, first))


def test_a_receipt_link_gives_the_records_receipt_and_is_audited(
    as_marketer: Client, person: Contact, newsletter: Purpose
) -> None:
    record = grant(person, newsletter, given_at=SIGNED_AT)

    response = as_marketer.get(receipt_url(person, record))

    assert response.status_code == 200
    receipt = response.json()
    assert receipt["record_id"] == str(record.uuid)
    assert datetime.fromisoformat(receipt["event"]["event_time"]) == SIGNED_AT
    assert receipt["event"]["collection_method"] == "web_form"
    event = AuditEvent.objects.get(action=AuditAction.EXPORT)
    assert event.contact == person
    assert event.details == {"export": "consent_receipt", "record": str(record.uuid)}


def test_a_receipt_of_another_persons_record_is_not_found(
    as_marketer: Client, person: Contact, newsletter: Purpose
) -> None:
    someone_else = grant(ContactFactory(), newsletter)

    response = as_marketer.get(receipt_url(person, someone_else))

    assert response.status_code == 404
    assert not AuditEvent.objects.filter(action=AuditAction.EXPORT).exists()


def test_the_timeline_is_told_in_sentences(
    as_marketer: Client, person: Contact, newsletter: Purpose
) -> None:
    grant(person, newsletter, given_at=SIGNED_AT)
    PrivacyRequestFactory(contact=person, type="access")

    page = as_marketer.get(change_url(person)).content.decode()

    timeline = section(page, "timeline")
    assert "Consent: granted Newsletter by email via the web form" in timeline
    assert "A privacy request was filed: Access (Art. 15)." in timeline


def test_delivery_feedback_reads_as_a_sentence_without_the_provider_code(
    as_marketer: Client, person: Contact
) -> None:
    deliverability_event_apply(type="delivered", email=person.email)
    deliverability_event_apply(type="hard_bounce", email=person.email, reason="550 unknown user")

    timeline = section(as_marketer.get(change_url(person)).content.decode(), "timeline")

    assert "An email was delivered." in timeline
    assert "An email bounced (550 unknown user)." in timeline
    assert "hard_bounce" not in timeline and "(delivered)" not in timeline


def test_the_page_lists_the_campaigns_received_with_links(
    as_marketer: Client, person: Contact, newsletter: Purpose
) -> None:
    campaign = campaign_make(newsletter, name="Lettre de mars")
    Recipient.objects.create(
        campaign=campaign,
        step=campaign.steps.get(),
        contact=person,
        status=RecipientStatus.SENT,
        sent_at=SIGNED_AT,
    )

    page = as_marketer.get(change_url(person)).content.decode()

    campaigns = section(page, "campaigns")
    assert reverse("admin:campaigns_campaign_change", args=[campaign.pk]) in campaigns
    assert "Lettre de mars" in campaigns
    assert "1. Email" in campaigns
    assert "12 Mar 2026 14:03" in campaigns
    assert "Sent" in campaigns


def test_the_page_shows_the_crm_ids_and_what_waits_or_failed(
    as_marketer: Client, person: Contact
) -> None:
    connection = hubspot()
    ContactLink.objects.create(
        connection=connection,
        contact=person,
        remote_id="00Q-REMOTE-7",
        owner_email="sales@example.fr",
        updated_at=SIGNED_AT,
    )
    refused, waiting = OutboxEventFactory(contact=person), OutboxEventFactory(contact=person)
    waiting.processed_at = timezone.now()  # delivered everywhere: no longer waiting
    waiting.save()
    DeadLetter.objects.create(connection=connection, event=refused, error="HTTP 400: bad phone")

    page = as_marketer.get(change_url(person)).content.decode()

    crm = section(page, "crm")
    assert "HubSpot" in crm and "00Q-REMOTE-7" in crm and "sales@example.fr" in crm
    assert "12 Mar 2026 14:03" in crm
    assert "1 change waiting to be sent to the CRMs" in crm
    assert "1 change a CRM refused" in crm and "HTTP 400: bad phone" in crm


def test_the_page_lists_the_persons_privacy_requests(as_marketer: Client, person: Contact) -> None:
    request = PrivacyRequestFactory(contact=person, type="portability")

    page = as_marketer.get(change_url(person)).content.decode()

    requests = section(page, "requests")
    assert reverse("admin:privacy_privacyrequest_change", args=[request.pk]) in requests
    assert "Portability (Art. 20)" in requests
    assert "Received" in requests
    assert timezone.localtime(request.due_at).strftime("%-d %b %Y") in requests


def test_the_notes_have_their_place_marked_on_the_page() -> None:
    template = get_template("admin/contacts/contact/change_form.html")

    blocks = template.template.nodelist.get_nodes_by_type(BlockNode)  # type: ignore[attr-defined]
    assert "contact_notes" in {block.name for block in blocks}


def _history(person: Contact, purposes: list[Purpose], campaign_purpose: Purpose) -> None:
    """More of everything the page shows: records, events, messages, links, requests."""
    for purpose in purposes:
        grant(person, purpose, given_at=SIGNED_AT)
        grant(person, purpose, action="withdraw", evidence=None)
    campaign = campaign_make(campaign_purpose)
    Recipient.objects.create(
        campaign=campaign, step=campaign.steps.get(), contact=person, sent_at=SIGNED_AT
    )
    connection = connection_create(
        name=f"crm-{uuid4().hex[:8]}",
        kind="hubspot",
        base_url="http://127.0.0.1:9",
        credentials={"token": "t"},
    )
    ContactLink.objects.create(connection=connection, contact=person, remote_id=str(connection.pk))
    event = OutboxEvent.objects.filter(contact_public_id=person.public_id).last()
    DeadLetter.objects.create(connection=connection, event=event, error="refused")
    PrivacyRequestFactory(contact=person, type="access")


def test_the_page_reads_a_fixed_number_of_queries_however_long_the_history(
    as_marketer: Client, person: Contact, newsletter: Purpose
) -> None:
    _history(person, [newsletter], newsletter)
    as_marketer.get(change_url(person))  # sessions, permissions and such: warmed up
    with CaptureQueriesContext(connection) as baseline:
        assert as_marketer.get(change_url(person)).status_code == 200
    for _round in range(3):
        more = [PurposeFactory(channels=["email", "sms"]) for _ in range(3)]
        _history(person, more, newsletter)

    with CaptureQueriesContext(connection) as longer:
        response = as_marketer.get(change_url(person))

    assert response.status_code == 200
    assert len(response.context["ledger"]) == 20
    assert len(response.context["campaigns_received"]) == 4
    assert len(response.context["crm_sync"].links) == 4
    assert len(response.context["privacy_requests"]) == 4
    assert len(longer) <= len(baseline)


def test_the_page_stays_within_its_query_budget(
    as_marketer: Client, person: Contact, newsletter: Purpose, django_assert_max_num_queries
) -> None:
    for _ in range(3):
        _history(person, [PurposeFactory(channels=["email"]) for _ in range(4)], newsletter)
    for body in ("Rappeler en avril.", "En arrêt maladie.", "Met at the Lyon fair."):
        note_add(contact=person, body=body, author=None)
    as_marketer.get(change_url(person))

    with django_assert_max_num_queries(PAGE_QUERY_BUDGET):
        response = as_marketer.get(change_url(person))

    assert len(response.context["ledger"]) == 24


def test_a_contact_without_history_reads_as_such(as_marketer: Client, person: Contact) -> None:
    page = as_marketer.get(change_url(person)).content.decode()

    assert "0 records in the consent ledger" in page
    assert "No campaign reached this person yet." in page
    assert "No CRM knows this person yet." in page
    assert "No privacy request from this person." in page


def test_the_grid_shows_a_purpose_retired_since_the_person_consented(
    as_marketer: Client, person: Contact, newsletter: Purpose
) -> None:
    grant(person, newsletter, given_at=timezone.now() - timedelta(days=3))
    Purpose.objects.filter(pk=newsletter.pk).update(is_active=False)

    response = as_marketer.get(change_url(person))

    assert cells_of(response, "newsletter")["email"]["standing"] == "granted"


def test_a_long_ledger_lists_its_latest_records_and_links_to_the_full_history(
    as_marketer: Client, person: Contact, newsletter: Purpose, django_assert_max_num_queries
) -> None:
    for _ in range(26):  # 52 records, more than the page lists
        grant(person, newsletter, given_at=SIGNED_AT)
        grant(person, newsletter, action="withdraw", evidence=None)
    latest = ConsentRecord.objects.filter(contact=person).order_by("-recorded_at", "-id")
    newest, oldest = latest.first(), latest.last()
    as_marketer.get(change_url(person))

    with django_assert_max_num_queries(PAGE_QUERY_BUDGET):
        response = as_marketer.get(change_url(person))

    assert len(response.context["ledger"]) == 50
    ledger = section(response.content.decode(), "ledger")
    assert "52 records in the consent ledger, the latest first" in ledger
    assert "2 older records are not listed here" in ledger
    assert receipt_url(person, newest) in ledger and receipt_url(person, oldest) not in ledger
    full_history = f"{reverse('admin:consent_consentrecord_changelist')}?person={person.pk}"
    assert f'href="{full_history}"' in ledger
    listed = as_marketer.get(full_history)
    assert listed.status_code == 200 and listed.context["cl"].result_count == 52


def test_the_full_history_holds_the_records_of_the_contacts_merged_in(
    as_dpo: Client, person: Contact, newsletter: Purpose
) -> None:
    twin = ContactFactory()
    grant(person, newsletter, given_at=SIGNED_AT)
    grant(twin, newsletter, given_at=SIGNED_AT)
    grant(ContactFactory(), newsletter, given_at=SIGNED_AT)  # someone else's: not listed
    contact_merge(survivor=person, merged=twin, actor="admin:dpo-persona")

    listed = as_dpo.get(reverse("admin:consent_consentrecord_changelist"), {"person": person.pk})

    assert listed.status_code == 200
    shown = {record.contact_id for record in listed.context["cl"].result_list}
    assert shown == {person.pk, twin.pk}
    assert (
        listed.context["cl"].result_count
        == ConsentRecord.objects.filter(contact__in=[person, twin]).count()
    )


def test_many_refused_changes_are_counted_and_the_latest_listed(
    as_marketer: Client, person: Contact
) -> None:
    connection = hubspot()
    for number in range(22):
        DeadLetter.objects.create(
            connection=connection,
            event=OutboxEventFactory(contact=person),
            error=f"HTTP 400: refusal {number:02d}",
        )

    response = as_marketer.get(change_url(person))

    assert len(response.context["crm_sync"].dead_letters) == 20
    crm = section(response.content.decode(), "crm")
    assert "22 changes a CRM refused" in crm
    assert "The latest 20 are listed." in crm
    assert "refusal 21" in crm and "refusal 00" not in crm
