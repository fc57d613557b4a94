"""Merging two contacts found to be one person: both histories kept, the state by time."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.utils import timezone

from consent.eligibility import Ineligible, contact_eligibility, eligible_contacts
from consent.merge import consents_merge
from consent.models import ConsentRecord, ConsentState, ConsentStatus, MessageSent, SourceKind
from consent.selectors import contact_consent_history
from consent.services import (
    ConsentWrite,
    Evidence,
    confirmation_token,
    confirmation_token_read,
    consent_confirm,
    consent_record,
    consents_withdraw_all,
    purpose_wording_update,
)
from contacts.models import Contact, ContactStatus, SuppressionReason, TimelineEvent, TimelineKind
from contacts.selectors import contact_find, contact_is_suppressed
from contacts.services import (
    contact_marketing_objection_set,
    contact_upsert,
    suppression_add,
    timeline_add,
)
from core.models import Scope
from crmsync.models import OutboxEvent, OutboxTopic
from preferences.selectors import contact_for_token
from preferences.services import preference_token_issue
from privacy.exports import personal_data
from privacy.merge import contact_merge
from privacy.models import PrivacyRequestType
from privacy.services import contact_erase, privacy_request_file
from tests.consent.concurrency import run_concurrently
from tests.factories import ContactFactory, InterestFactory, PurposeFactory, grant

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def withdraw(contact: Contact, purpose, channel: str = "email", **kwargs) -> ConsentRecord:
    return consent_record(
        write=ConsentWrite(
            contact=contact,
            purpose=purpose,
            channel=channel,
            action="withdraw",
            source_kind=kwargs.pop("source_kind", SourceKind.PREFERENCE_CENTER),
            **kwargs,
        )
    )


def state(contact: Contact, purpose, channel: str = "email") -> ConsentState:
    return ConsentState.objects.get(contact=contact, purpose=purpose, channel=channel)


def merge(survivor: Contact, merged: Contact) -> Contact:
    return contact_merge(survivor=survivor, merged=merged, actor="dpo")


@pytest.fixture
def pair() -> tuple[Contact, Contact]:
    return (
        ContactFactory(email="camille@example.fr", first_name="Camille", last_name=""),
        ContactFactory(email="c.martin@work.example", first_name="", last_name="Martin"),
    )


def test_both_consent_histories_stay_on_their_contacts_and_the_survivors_reads_both(pair):
    # given each contact with its own records, at different times
    survivor, merged = pair
    newsletter, offers = PurposeFactory(slug="newsletter"), PurposeFactory(slug="offers")
    now = timezone.now()
    first = grant(merged, newsletter, given_at=now - 3 * DAY)
    second = grant(survivor, offers, given_at=now - 2 * DAY)
    own_before = {
        c.pk: set(c.consent_records.values_list("uuid", flat=True)) for c in (survivor, merged)
    }

    # when they are merged
    merge(survivor, merged)

    # then no record moved: each contact keeps its own, the survivor gained the carried one
    assert set(merged.consent_records.values_list("uuid", flat=True)) == own_before[merged.pk]
    assert own_before[survivor.pk] < set(survivor.consent_records.values_list("uuid", flat=True))
    # and the survivor's history reads both ledgers in time order
    history = list(contact_consent_history(survivor))
    assert [r.uuid for r in history[:2]] == [first.uuid, second.uuid]
    carried = history[-1]
    assert carried.contact == survivor and carried.source_kind == SourceKind.MERGE
    assert carried.source_reference == f"merge:{merged.public_id}:{first.uuid}"


def test_the_merged_contacts_newer_change_wins_and_is_carried_with_its_wording_and_time(pair):
    # given the survivor granted, then (later) the merged contact withdrew the same consent
    survivor, merged = pair
    newsletter = PurposeFactory(slug="newsletter")
    now = timezone.now()
    grant(survivor, newsletter, given_at=now - 5 * DAY)
    grant(merged, newsletter, given_at=now - 4 * DAY)
    withdrawal = withdraw(merged, newsletter, given_at=now - 3 * DAY)

    merge(survivor, merged)

    # then the survivor's state is the withdrawal, dated when the person withdrew
    current = state(survivor, newsletter)
    assert current.status == ConsentStatus.WITHDRAWN
    assert current.record.action == "withdraw"
    assert current.record.given_at == withdrawal.given_at
    assert current.record.source_reference == f"merge:{merged.public_id}:{withdrawal.uuid}"


def test_the_survivors_newer_change_wins_and_nothing_is_carried(pair):
    survivor, merged = pair
    newsletter = PurposeFactory(slug="newsletter")
    now = timezone.now()
    grant(merged, newsletter, given_at=now - 5 * DAY)
    grant(survivor, newsletter, given_at=now - 4 * DAY)
    survivor_withdrawal = withdraw(survivor, newsletter, given_at=now - 3 * DAY)
    count = ConsentRecord.objects.count()

    merge(survivor, merged)

    assert state(survivor, newsletter).record == survivor_withdrawal
    assert ConsentRecord.objects.count() == count


def test_a_carried_grant_keeps_the_wording_the_person_saw(pair):
    survivor, merged = pair
    newsletter = PurposeFactory(slug="newsletter", channels=["email"])
    origin = grant(
        merged,
        newsletter,
        evidence=Evidence(wording="Oui, la lettre.", unticked_by_default=True, policy_version="v9"),
    )

    merge(survivor, merged)

    carried = state(survivor, newsletter).record
    assert (carried.wording, carried.unticked_by_default, carried.policy_version) == (
        "Oui, la lettre.",
        True,
        "v9",
    )
    assert carried.status == ConsentStatus.GRANTED
    assert carried.given_at == origin.given_at


def test_a_pending_double_opt_in_grant_stays_pending_and_its_old_link_confirms_it(pair):
    # given a grant of the merged contact waiting for the click in its confirmation email
    survivor, merged = pair
    newsletter = PurposeFactory(slug="newsletter", double_opt_in=True)
    pending = grant(merged, newsletter)
    assert pending.status == ConsentStatus.PENDING
    token = confirmation_token(contact=merged, record_uuids=[str(pending.uuid)])

    merge(survivor, merged)

    # then the survivor's grant is pending too, and the link sent before the merge confirms it
    assert state(survivor, newsletter).status == ConsentStatus.PENDING
    contact, uuids = confirmation_token_read(token)
    assert contact == survivor
    confirmed = consent_confirm(contact=contact, record_uuids=uuids)
    assert [record.contact for record in confirmed] == [survivor]
    assert state(survivor, newsletter).status == ConsentStatus.GRANTED


def test_a_confirmed_double_opt_in_grant_stays_confirmed(pair):
    survivor, merged = pair
    newsletter = PurposeFactory(slug="newsletter", double_opt_in=True)
    pending = grant(merged, newsletter)
    consent_confirm(contact=merged, record_uuids=[str(pending.uuid)])

    merge(survivor, merged)

    current = state(survivor, newsletter)
    assert current.status == ConsentStatus.GRANTED
    assert current.record.action == "confirm" and current.record.source_kind == SourceKind.MERGE


def test_a_merge_never_lifts_the_survivors_suppression(pair):
    # given the survivor's address suppressed, and a grant on the merged contact
    survivor, merged = pair
    suppression_add(reason=SuppressionReason.GLOBAL_UNSUBSCRIBE, email=survivor.email)
    newsletter = PurposeFactory(slug="newsletter")
    grant(merged, newsletter)

    merge(survivor, merged)

    # then the carried grant waits for the person's own click; the suppression stands
    assert state(survivor, newsletter).status == ConsentStatus.PENDING
    survivor.refresh_from_db()
    assert contact_is_suppressed(survivor)


def test_an_unsubscribe_from_all_on_the_merged_contact_ends_the_survivors_older_grants(pair):
    # given the survivor granted offers, then the person unsubscribed from all on the other
    survivor, merged = pair
    offers = PurposeFactory(slug="offers")
    grant(survivor, offers, given_at=timezone.now() - 2 * DAY)
    consents_withdraw_all(
        contact=merged, source_kind=SourceKind.PREFERENCE_CENTER, evidence=Evidence()
    )
    contact_marketing_objection_set(contact=merged, objected=True)
    merged.refresh_from_db()

    merge(survivor, merged)

    survivor.refresh_from_db()
    assert state(survivor, offers).status == ConsentStatus.WITHDRAWN
    assert survivor.marketing_objected_at == merged.marketing_objected_at


def test_empty_fields_and_crm_ids_are_filled_and_a_crm_conflict_is_told(pair):
    survivor, merged = pair
    Contact.objects.filter(pk=survivor.pk).update(hubspot_id="HS-1", company="")
    Contact.objects.filter(pk=merged.pk).update(
        hubspot_id="HS-2", salesforce_id="SF-9", crm_record_type="lead", company="ACME"
    )

    merge(survivor, merged)

    survivor.refresh_from_db()
    assert (survivor.first_name, survivor.last_name, survivor.company) == (
        "Camille",
        "Martin",
        "ACME",
    )
    assert (survivor.hubspot_id, survivor.salesforce_id, survivor.crm_record_type) == (
        "HS-1",
        "SF-9",
        "lead",
    )
    event = OutboxEvent.objects.get(topic=OutboxTopic.CONTACT_MERGED)
    assert event.contact_public_id == survivor.public_id
    assert event.payload["merged_id"] == str(merged.public_id)
    assert event.payload["crm_ids"]["hubspot_id"] == "HS-1"
    assert event.payload["merged_crm_ids"]["hubspot_id"] == "HS-2"
    assert event.payload["crm_conflicts"] == {"hubspot_id": {"kept": "HS-1", "other": "HS-2"}}
    entry = survivor.timeline.get(kind=TimelineKind.MERGED)
    assert entry.data["crm_conflicts"] == event.payload["crm_conflicts"]


def test_timeline_interests_links_requests_and_messages_move_to_the_survivor(pair):
    survivor, merged = pair
    moment = timeline_add(contact=merged, kind=TimelineKind.UPDATED, summary="city")
    merged.interests.add(InterestFactory(slug="cycling"))
    token = preference_token_issue(contact=merged)
    request = privacy_request_file(
        contact=merged, type=PrivacyRequestType.ACCESS, source_kind=SourceKind.ADMIN
    )
    offers = PurposeFactory(slug="offers")
    MessageSent.objects.create(contact=merged, purpose=offers, channel="email")

    merge(survivor, merged)

    moment.refresh_from_db()
    request.refresh_from_db()
    assert moment.contact == survivor and request.contact == survivor
    assert list(survivor.interests.values_list("slug", flat=True)) == ["cycling"]
    # an unsubscribe link sent to the merged address keeps working, on the survivor
    assert contact_for_token(token) == survivor
    assert MessageSent.objects.get().contact == survivor
    # and each contact's timeline says so
    assert merged.timeline.get().kind == TimelineKind.MERGED
    assert survivor.timeline.filter(kind=TimelineKind.MERGED).count() == 1


def test_one_outbox_event_tells_the_crms(pair):
    survivor, merged = pair
    OutboxEvent.objects.all().delete()

    merge(survivor, merged)

    assert list(OutboxEvent.objects.values_list("topic", flat=True)) == ["contact.merged"]


def test_the_merged_contact_is_marked_and_never_eligible(pair):
    survivor, merged = pair
    offers = PurposeFactory(slug="offers")
    grant(merged, offers)
    grant(survivor, offers)

    merge(survivor, merged)

    merged.refresh_from_db()
    assert (merged.status, merged.merged_into) == (ContactStatus.MERGED, survivor)
    assert contact_eligibility(merged, offers, "email") == [Ineligible.MERGED]
    assert list(eligible_contacts(offers, "email")) == [survivor]


def test_finding_the_merged_contact_by_email_or_id_finds_the_survivor(pair):
    survivor, merged = pair
    merge(survivor, merged)

    assert contact_find(email="C.Martin@work.example") == survivor
    assert contact_find(public_id=merged.public_id) == survivor
    assert contact_find(pk=merged.pk) == survivor
    # and an upsert by the merged address updates the survivor rather than a duplicate
    contact, created = contact_upsert(email=merged.email, fields={"city": "Lyon"})
    assert (contact, created) == (survivor, False)
    assert Contact.objects.count() == 2


def test_an_api_consent_for_the_merged_address_is_recorded_on_the_survivor(pair, api):
    survivor, merged = pair
    newsletter = PurposeFactory(slug="newsletter")
    merge(survivor, merged)

    response = api([Scope.CONSENTS_WRITE]).post(
        "/api/v1/consents/",
        {
            "email": merged.email,
            "purpose": "newsletter",
            "channel": "email",
            "action": "withdraw",
        },
        format="json",
    )

    assert response.status_code == 201, response.json()
    assert state(survivor, newsletter).status == ConsentStatus.WITHDRAWN
    assert not ConsentState.objects.filter(contact=merged).exists()


def test_the_survivors_api_history_includes_the_merged_contacts_records(pair, api):
    survivor, merged = pair
    newsletter = PurposeFactory(slug="newsletter")
    origin = grant(merged, newsletter, given_at=timezone.now() - DAY)
    own = grant(survivor, PurposeFactory(slug="offers"))
    merge(survivor, merged)
    client = api([Scope.CONTACTS_READ])

    response = client.get(f"/api/v1/contacts/{survivor.public_id}/consent-history/")

    assert response.status_code == 200
    ids = [item["id"] for item in response.json()["results"]]
    assert ids[:2] == [str(origin.uuid), str(own.uuid)] and len(ids) == 3
    # the merged contact's own address in the API leads to the survivor
    response = client.get(f"/api/v1/contacts/{merged.public_id}/")
    assert response.json()["id"] == str(survivor.public_id)


@pytest.mark.parametrize("which", ["survivor", "merged"])
def test_an_erased_contact_cannot_be_merged(pair, which):
    survivor, merged = pair
    contact_erase(contact=survivor if which == "survivor" else merged, reason="request")

    with pytest.raises(ValidationError) as error:
        merge(survivor, merged)

    assert error.value.message_dict == {which: ["This contact was erased."]}


def test_a_contact_cannot_be_merged_into_itself(pair):
    survivor, _merged = pair
    with pytest.raises(ValidationError) as error:
        merge(survivor, survivor)
    assert "merged" in error.value.message_dict


def test_nothing_merges_into_or_from_an_already_merged_contact(pair):
    survivor, merged = pair
    third = ContactFactory()
    merge(survivor, merged)
    count = ConsentRecord.objects.count(), TimelineEvent.objects.count()

    for left, right, name in ((merged, third, "survivor"), (third, merged, "merged")):
        with pytest.raises(ValidationError) as error:
            merge(left, right)
        assert error.value.message_dict == {
            name: ["This contact was already merged into another one."]
        }
    assert (ConsentRecord.objects.count(), TimelineEvent.objects.count()) == count


def test_a_contact_merged_into_one_later_merged_follows_it():
    first, second, third = ContactFactory(), ContactFactory(), ContactFactory()
    merge(second, first)
    merge(third, second)

    first.refresh_from_db()
    assert first.merged_into == third
    assert contact_find(email=first.email) == third


def test_erasing_the_survivor_erases_the_contacts_merged_into_it(pair):
    survivor, merged = pair
    merge(survivor, merged)
    address = merged.email

    contact_erase(contact=survivor, reason="request")

    merged.refresh_from_db()
    assert merged.status == ContactStatus.ERASED and merged.email != address
    assert contact_find(email=address) is None


def test_the_ledger_still_verifies_after_a_merge(pair):
    survivor, merged = pair
    newsletter = PurposeFactory(slug="newsletter", double_opt_in=True)
    pending = grant(merged, newsletter)
    consent_confirm(contact=merged, record_uuids=[str(pending.uuid)])
    grant(survivor, PurposeFactory(slug="offers"))

    merge(survivor, merged)

    output = StringIO()
    call_command("verify_ledger", stdout=output)  # raises CommandError when broken
    count = ConsentRecord.objects.count()
    assert f"Consent ledger intact: {count} record(s) verified" in output.getvalue()


def test_consents_merge_carries_nothing_when_the_merged_contact_has_no_consent(pair):
    survivor, merged = pair
    grant(survivor, PurposeFactory(slug="offers"))

    outcome = consents_merge(survivor=survivor, merged=merged)

    assert outcome.records == [] and outcome.merged_head == ""


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
def test_two_merges_of_the_same_pair_in_opposite_directions_do_not_deadlock(transactional_db):
    # given two contacts two staff members merge at once, each into the other
    left, right = ContactFactory(), ContactFactory()
    grant(left, PurposeFactory(slug="newsletter"))
    directions = iter([(left, right), (right, left)])

    def work() -> str:
        survivor, merged = next(directions)
        try:
            merge(survivor, merged)
        except ValidationError:
            return "refused"
        return "merged"

    # then one merges and the other is refused, with no deadlock
    assert sorted(run_concurrently(work, times=2)) == ["merged", "refused"]
    statuses = sorted(Contact.objects.values_list("status", flat=True))
    assert statuses == [ContactStatus.ACTIVE, ContactStatus.MERGED]


def test_a_grant_on_replaced_wording_is_not_carried_and_the_reason_is_kept(pair):
    # given a grant of the merged contact on wording a material change replaced since
    survivor, merged = pair
    newsletter = PurposeFactory(slug="newsletter")
    grant(merged, newsletter)
    purpose_wording_update(purpose=newsletter, wording_fr="Nouveau", wording_en="New")

    merge(survivor, merged)

    # then it gives the survivor no grant on today's wording the person never saw
    assert not ConsentState.objects.filter(contact=survivor).exists()
    entry = survivor.timeline.get(kind=TimelineKind.MERGED)
    assert entry.data["not_carried"] == {"newsletter/email": "outdated_wording"}


def test_the_survivors_data_export_holds_both_histories_with_their_evidence(pair):
    survivor, merged = pair
    origin = grant(merged, PurposeFactory(slug="newsletter"))  # with an IP and a user agent
    merge(survivor, merged)

    exported = personal_data(survivor)

    rows = {row["id"]: row for row in exported["consent_history"]}
    assert set(rows) == {str(origin.uuid), str(state(survivor, origin.purpose).record.uuid)}
    assert "203.0.113.7" in json.dumps(rows[str(origin.uuid)], cls=DjangoJSONEncoder)
    # the merged contact's own export names the survivor by its public id
    merged.refresh_from_db()
    assert personal_data(merged)["contact"]["merged_into"] == str(survivor.public_id)


def test_the_api_finds_the_survivor_by_the_merged_address(pair, api):
    survivor, merged = pair
    merge(survivor, merged)

    response = api([Scope.CONTACTS_READ]).get("/api/v1/contacts/", {"email": merged.email})

    assert [item["id"] for item in response.json()["results"]] == [str(survivor.public_id)]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
def test_two_contacts_merged_at_once_into_the_same_survivor_both_merge(transactional_db):
    survivor, first, second = ContactFactory(), ContactFactory(), ContactFactory()
    newsletter, offers = PurposeFactory(slug="newsletter"), PurposeFactory(slug="offers")
    grant(first, newsletter)
    grant(second, offers)
    pairs = iter([first, second])

    run_concurrently(lambda: merge(survivor, next(pairs)), times=2)

    assert set(survivor.merged_contacts.all()) == {first, second}
    assert {s.purpose.slug for s in ConsentState.objects.filter(contact=survivor)} == {
        "newsletter",
        "offers",
    }
    call_command("verify_ledger", stdout=StringIO())


def test_the_survivors_objection_ends_an_older_grant_of_the_merged_contact(pair):
    # given the merged contact's grant, then the person's objection on the survivor
    survivor, merged = pair
    offers = PurposeFactory(slug="offers")
    grant(merged, offers, given_at=timezone.now() - 2 * DAY)
    contact_marketing_objection_set(contact=survivor, objected=True)

    merge(survivor, merged)

    # then the grant is not carried, and the reason is kept
    assert not ConsentState.objects.filter(contact=survivor).exists()
    entry = survivor.timeline.get(kind=TimelineKind.MERGED)
    assert entry.data["not_carried"] == {"offers/email": "older_than_objection"}


def test_a_grant_pending_for_the_merged_addresss_suppression_is_not_made_a_grant(pair):
    # given a grant waiting for the person's click because the merged address is suppressed
    survivor, merged = pair
    suppression_add(reason=SuppressionReason.GLOBAL_UNSUBSCRIBE, email=merged.email)
    offers = PurposeFactory(slug="offers")  # no double opt-in
    assert grant(merged, offers).status == ConsentStatus.PENDING

    merge(survivor, merged)

    assert not ConsentState.objects.filter(contact=survivor).exists()
    entry = survivor.timeline.get(kind=TimelineKind.MERGED)
    assert entry.data["not_carried"] == {"offers/email": "pending_on_merged_address"}
