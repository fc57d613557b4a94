"""The pull from HubSpot, through the real hubspot-api-client, against the HubSpot emulator:
paging and the cursor, dedupe, email changes, suppressed and erased people, consent times,
conflict rules, no ping-pong, replays, `crm_pull` and bad data."""

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from consent.models import ConsentRecord, ConsentState, Purpose, SourceKind
from contacts.models import Contact
from contacts.services import contact_update, suppression_add
from crmsync.connections import connection_create
from crmsync.models import Connection, ConnectionState, ContactLink, OutboxEvent
from crmsync.pull import connection_pull, connections_due_for_pull
from crmsync.push import changes_for, connection_push
from tests.crmsync.receiver import SECRET
from tests.emulators.hubspot import HubSpotEmulator
from tests.factories import ContactFactory, PurposeFactory, grant

TOKEN = "hubspot-test-token"
UPSERT = "/crm/v3/objects/contacts/batch/upsert"


class Clock:
    """The emulator's time (epoch milliseconds): the real time until a test sets it."""

    def __init__(self) -> None:
        self.now: int | None = None

    def __call__(self) -> int:
        return self.now if self.now is not None else int(time.time() * 1000)

    def at(self, moment: datetime) -> None:
        self.now = int(moment.timestamp() * 1000)

    def tick(self, milliseconds: int = 1) -> None:
        self.now = self() + milliseconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hubspot(clock: Clock) -> Iterator[HubSpotEmulator]:
    with HubSpotEmulator(token=TOKEN, clock=clock) as emulator:
        assert isinstance(emulator, HubSpotEmulator)
        yield emulator


@pytest.fixture
def newsletter(db: None) -> Purpose:
    return PurposeFactory(slug="newsletter", channels=["email"])


@pytest.fixture
def connection(hubspot: HubSpotEmulator, newsletter: Purpose) -> Connection:
    return connection_create(
        name="hubspot",
        kind="hubspot",
        base_url=hubspot.url,
        credentials={"token": TOKEN},
        purpose_map={"newsletter": "1001"},
    )


def person(n: int, **properties: str) -> dict[str, str]:
    return {
        "email": f"person{n}@example.fr",
        "firstname": "Camille",
        "lastname": f"Martin{n}",
        **properties,
    }


def opt_out(hubspot: HubSpotEmulator, email: str, subscription: str = "1001") -> None:
    """The person unsubscribes in HubSpot (mirrored on the contact as hs_email_optout_)."""
    with hubspot.lock:
        answer = hubspot.set_status({"emailAddress": email, "subscriptionId": subscription}, False)
    assert answer.status == 200, answer.body


def aged() -> None:
    """Our contacts last changed a minute ago: older than what HubSpot does next (its times
    are in milliseconds, ours in microseconds)."""
    Contact.objects.update(updated_at=timezone.now() - timedelta(minutes=1))


def pull(connection: Connection) -> Any:
    outcome = connection_pull(connection_id=connection.pk)
    assert outcome.error == ""
    return outcome


def everything() -> tuple[list[Any], ...]:
    """Every contact, link, ledger record and outbox event, to compare before and after."""
    return (
        list(Contact.objects.order_by("pk").values()),
        list(ContactLink.objects.order_by("pk").values("contact_id", "remote_id")),
        list(ConsentRecord.objects.order_by("pk").values_list("pk", flat=True)),
        list(OutboxEvent.objects.order_by("created_at").values_list("pk", flat=True)),
    )


@pytest.mark.django_db
def test_a_pull_creates_the_crm_contacts_page_after_page_and_stores_its_cursor(
    hubspot: HubSpotEmulator, connection: Connection, settings: Any, clock: Clock
) -> None:
    settings.CRM_PULL_PAGE_SIZE = 2
    for n in range(5):
        clock.tick()
        hubspot.put_contact(person(n))

    outcome = pull(connection)

    assert (outcome.pages, outcome.fetched, outcome.created) == (3, 5, 5)
    assert sorted(Contact.objects.values_list("email", flat=True)) == [
        f"person{n}@example.fr" for n in range(5)
    ]
    remote = {hubspot.contact(f"person{n}@example.fr")["id"] for n in range(5)}  # type: ignore[index]
    assert set(ContactLink.objects.values_list("remote_id", flat=True)) == remote
    state = ConnectionState.objects.get(pk=connection.pk)
    assert state.pull_cursor and state.last_pull_at is not None
    assert state.pull_lease_token is None
    assert len(hubspot.calls_to("/search")) == 3


@pytest.mark.django_db
def test_contacts_sharing_one_modification_time_are_neither_lost_nor_pulled_twice(
    hubspot: HubSpotEmulator, connection: Connection, settings: Any, clock: Clock
) -> None:
    settings.CRM_PULL_PAGE_SIZE = 2
    clock.at(timezone.now())
    for n in range(5):  # the clock stands still: one millisecond for all five
        hubspot.put_contact(person(n))

    outcome = pull(connection)

    assert (outcome.created, outcome.fetched) == (5, 5)
    assert Contact.objects.count() == 5
    # the next cycle finds nothing new, and does not loop on the shared time
    again = pull(connection)
    assert (again.fetched, again.pages) == (0, 1)


@pytest.mark.django_db
def test_a_rerun_or_a_replayed_page_changes_nothing(
    hubspot: HubSpotEmulator, connection: Connection, clock: Clock
) -> None:
    clock.at(timezone.now() - timedelta(minutes=5))
    for n in range(3):
        clock.tick()
        hubspot.put_contact(person(n, company="Acme"))
        opt_out(hubspot, f"person{n}@example.fr")
    pull(connection)
    before = everything()

    assert pull(connection).fetched == 0
    # a pull killed after its pages were applied, before their cursor was stored
    ConnectionState.objects.filter(pk=connection.pk).update(pull_cursor="")
    replay = pull(connection)

    assert replay.fetched == 3
    assert (replay.created, replay.updated, replay.consents) == (0, 0, 0)
    assert everything() == before


@pytest.mark.django_db
def test_a_pull_waits_while_another_holds_the_connection(
    hubspot: HubSpotEmulator, connection: Connection
) -> None:
    hubspot.put_contact(person(1))
    ConnectionState.objects.filter(pk=connection.pk).update(
        pull_lease_until=timezone.now() + timedelta(minutes=5)
    )

    outcome = connection_pull(connection_id=connection.pk)

    assert outcome.busy and outcome.fetched == 0
    assert not Contact.objects.exists()
    assert hubspot.calls_to("/search") == []


@pytest.mark.django_db
def test_an_email_changed_in_hubspot_changes_the_same_contact(
    hubspot: HubSpotEmulator, connection: Connection, clock: Clock
) -> None:
    hubspot.put_contact(person(1))
    pull(connection)
    contact = Contact.objects.get()
    remote_id = hubspot.contact("person1@example.fr")["id"]  # type: ignore[index]
    aged()

    with hubspot.lock:
        hubspot.update_one(remote_id, "hs_object_id", {"properties": {"email": "Camille@New.FR"}})
    outcome = pull(connection)

    assert outcome.updated == 1
    assert list(Contact.objects.values_list("pk", "email")) == [(contact.pk, "camille@new.fr")]
    assert ContactLink.objects.get().contact_id == contact.pk


@pytest.mark.django_db
def test_a_crm_contact_is_matched_by_its_link_first_then_by_its_email(
    hubspot: HubSpotEmulator, connection: Connection
) -> None:
    linked = ContactFactory(email="camille@old.fr", first_name="Camille")
    by_email = ContactFactory(email="person3@example.fr")
    aged()
    # HubSpot's record is linked to `linked` (a push told us so), under another address now
    stored = hubspot.put_contact(person(2))
    ContactLink.objects.create(connection=connection, contact=linked, remote_id=stored["id"])
    hubspot.put_contact(person(3))

    outcome = pull(connection)

    assert outcome.created == 0
    assert Contact.objects.count() == 2
    linked.refresh_from_db()
    assert linked.email == "person2@example.fr"
    assert dict(ContactLink.objects.values_list("contact_id", "remote_id")) == {
        linked.pk: stored["id"],
        by_email.pk: hubspot.contact("person3@example.fr")["id"],  # type: ignore[index]
    }


@pytest.mark.django_db
def test_an_email_another_contact_of_ours_has_is_refused_and_named(
    hubspot: HubSpotEmulator, connection: Connection
) -> None:
    linked = ContactFactory(email="camille@old.fr")
    ContactFactory(email="person2@example.fr")
    aged()
    stored = hubspot.put_contact(person(2))
    ContactLink.objects.create(connection=connection, contact=linked, remote_id=stored["id"])

    outcome = pull(connection)

    linked.refresh_from_db()
    assert linked.email == "camille@old.fr"
    assert Contact.objects.count() == 2
    assert any("Another contact already has this email" in reason for reason in outcome.skipped)


@pytest.mark.django_db
def test_a_suppressed_or_erased_person_is_never_re_created_by_a_pull(
    hubspot: HubSpotEmulator, connection: Connection
) -> None:
    from privacy.services import contact_erase

    erased = ContactFactory(email="gone@example.fr")
    contact_erase(contact=erased, reason="Art. 17 request")
    suppression_add(reason="complaint", email="never@example.fr")
    hubspot.put_contact({"email": "gone@example.fr", "firstname": "Gone"})
    hubspot.put_contact({"email": "NEVER@example.fr", "firstname": "Never"})
    hubspot.put_contact(person(3))

    outcome = pull(connection)

    assert outcome.created == 1
    assert not Contact.objects.filter(email__in=["gone@example.fr", "never@example.fr"]).exists()
    assert outcome.skipped["suppressed here: never re-created by a pull"] == 2


@pytest.mark.django_db
def test_an_erased_contact_linked_to_the_crm_is_left_alone(
    hubspot: HubSpotEmulator, connection: Connection
) -> None:
    from privacy.services import contact_erase

    hubspot.put_contact(person(1))
    pull(connection)
    contact = Contact.objects.get()
    contact_erase(contact=contact, reason="Art. 17 request")
    hubspot.put_contact(person(1, firstname="Again"))

    outcome = pull(connection)

    assert outcome.created == 0 and outcome.updated == 0
    contact.refresh_from_db()
    assert contact.first_name != "Again"


@pytest.mark.django_db
def test_an_opt_out_in_hubspot_withdraws_through_the_ledger_with_hubspots_time(
    hubspot: HubSpotEmulator, connection: Connection, newsletter: Purpose, clock: Clock
) -> None:
    contact = ContactFactory(email="person1@example.fr")
    grant(contact, newsletter, given_at=timezone.now() - timedelta(hours=2))
    clock.at(timezone.now() - timedelta(hours=1))
    hubspot.put_contact(person(1))
    opt_out(hubspot, "person1@example.fr")

    outcome = pull(connection)

    assert outcome.consents == 1
    state = ConsentState.objects.get(contact=contact, purpose=newsletter, channel="email")
    assert state.status == "withdrawn"
    record = ConsentRecord.objects.filter(contact=contact).latest("pk")
    assert (record.action, record.source_kind) == ("withdraw", SourceKind.CRM)
    assert record.given_at == datetime.fromtimestamp(clock() / 1000, tz=UTC)
    assert record.source_reference.startswith("hubspot:")


@pytest.mark.django_db
def test_an_older_opt_out_in_the_crm_never_overrides_a_newer_consent_of_ours(
    hubspot: HubSpotEmulator, connection: Connection, newsletter: Purpose, clock: Clock
) -> None:
    clock.at(timezone.now() - timedelta(hours=1))
    hubspot.put_contact(person(1))
    opt_out(hubspot, "person1@example.fr")
    contact = ContactFactory(email="person1@example.fr")
    grant(contact, newsletter)  # now: after HubSpot's opt-out
    records = ConsentRecord.objects.count()

    outcome = pull(connection)

    assert outcome.consents == 0
    assert outcome.skipped["a consent change older than ours: ours stands"] == 1
    state = ConsentState.objects.get(contact=contact, purpose=newsletter, channel="email")
    assert state.status == "granted"
    assert ConsentRecord.objects.count() == records


@pytest.mark.django_db
def test_a_subscription_in_hubspot_is_recorded_as_a_second_hand_grant(
    hubspot: HubSpotEmulator, connection: Connection
) -> None:
    hubspot.put_contact(person(1))
    with hubspot.lock:
        hubspot.set_status({"emailAddress": "person1@example.fr", "subscriptionId": "1001"}, True)
    assert hubspot.contact("person1@example.fr")["properties"]["hs_email_optout_1001"] == "false"  # type: ignore[index]

    outcome = pull(connection)

    assert (outcome.created, outcome.consents) == (1, 1)
    record = ConsentRecord.objects.get()
    assert (record.action, record.source_kind, record.second_hand) == ("grant", "crm", True)


@pytest.mark.django_db
def test_each_field_follows_its_conflict_rule(
    hubspot: HubSpotEmulator, newsletter: Purpose, clock: Clock
) -> None:
    connection = connection_create(
        name="hubspot",
        kind="hubspot",
        base_url=hubspot.url,
        credentials={"token": TOKEN},
        field_mappings=[
            {
                "field": "first_name",
                "remote": "firstname",
                "direction": "both",
                "conflict": "theirs",
            },
            {"field": "last_name", "remote": "lastname", "direction": "both", "conflict": "ours"},
            {"field": "company", "remote": "company", "direction": "pull", "conflict": "latest"},
            {"field": "phone", "remote": "phone", "direction": "push", "conflict": "theirs"},
            {"field": "job_title", "remote": "jobtitle", "direction": "both", "conflict": "ours"},
        ],
    )
    contact = ContactFactory(
        email="person1@example.fr", first_name="Ours", last_name="Ours", company="Ours", phone=""
    )
    clock.at(timezone.now() - timedelta(hours=1))  # HubSpot's change is older than ours
    hubspot.put_contact(
        {
            "email": "person1@example.fr",
            "firstname": "Theirs",
            "lastname": "Theirs",
            "company": "Theirs",
            "phone": "+33612345678",
            "jobtitle": "Buyer",
        }
    )
    pull(connection)
    contact.refresh_from_db()
    # theirs wins; ours wins; latest: ours is newer; push only: not read; ours empty: filled
    assert (contact.first_name, contact.last_name, contact.company, contact.phone) == (
        "Theirs",
        "Ours",
        "Ours",
        "",
    )
    assert contact.job_title == "Buyer"

    clock.at(timezone.now() + timedelta(minutes=1))  # now HubSpot's is the latest
    hubspot.put_contact({"email": "person1@example.fr", "company": "Newer"})
    pull(connection)
    contact.refresh_from_db()
    assert (contact.company, contact.last_name) == ("Newer", "Ours")


@pytest.mark.django_db
def test_what_a_pull_wrote_is_not_pushed_back_to_its_crm_but_reaches_the_others(
    hubspot: HubSpotEmulator, connection: Connection, newsletter: Purpose, clock: Clock
) -> None:
    webhook = connection_create(
        name="integrator",
        kind="webhook",
        base_url="http://127.0.0.1:9/hook",
        credentials={"secret": SECRET},
    )
    contact = ContactFactory(email="person2@example.fr")
    grant(contact, newsletter, given_at=timezone.now() - timedelta(hours=2))
    connection_push(connection_id=connection.pk)  # our grant, sent before the pull
    clock.at(timezone.now() - timedelta(hours=1))
    hubspot.put_contact(person(1))
    hubspot.put_contact(person(2))
    opt_out(hubspot, "person2@example.fr")
    start = OutboxEvent.objects.count()

    pull(connection)

    pulled = list(OutboxEvent.objects.order_by("created_at")[start:])
    assert {event.topic for event in pulled} >= {"contact.created", "consent.recorded"}
    assert changes_for(connection, pulled) == []
    assert len(changes_for(webhook, pulled)) == len(pulled)
    upserts = len(hubspot.calls_to(UPSERT))
    connection_push(connection_id=connection.pk)
    assert len(hubspot.calls_to(UPSERT)) == upserts  # nothing sent back: no ping-pong

    contact_update(contact=Contact.objects.get(email="person1@example.fr"), fields={"company": "X"})
    connection_push(connection_id=connection.pk)
    assert len(hubspot.calls_to(UPSERT)) == upserts + 1  # our own change still goes


@pytest.mark.django_db
def test_crm_pull_prints_what_it_fetched_created_and_skipped(
    hubspot: HubSpotEmulator, connection: Connection
) -> None:
    suppression_add(reason="complaint", email="never@example.fr")
    hubspot.put_contact(person(1))
    hubspot.put_contact({"email": "never@example.fr"})
    out = StringIO()

    call_command("crm_pull", "hubspot", stdout=out)

    text = out.getvalue()
    assert "hubspot: fetched 2, created 1, updated 0" in text
    assert "skipped 1: suppressed here: never re-created by a pull" in text
    assert ConnectionState.objects.get(pk=connection.pk).last_pull_at is not None


@pytest.mark.django_db
def test_crm_pull_names_an_unknown_connection(connection: Connection) -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="nobody"):
        call_command("crm_pull", "nobody", stdout=StringIO())


@pytest.mark.django_db
def test_bad_data_from_the_crm_is_reported_and_the_rest_applied(
    hubspot: HubSpotEmulator, connection: Connection, clock: Clock
) -> None:
    hubspot.put_contact(person(1, country="France"))  # not an ISO code: refused here
    hubspot.put_contact({"email": "not an email"})
    clock.tick()
    hubspot.put_contact(person(2))
    clock.tick()
    with hubspot.lock:  # a record HubSpot would never give: an unreadable date
        stored = hubspot._write(None, "odd@example.fr", {})[0]
        stored["properties"]["lastmodifieddate"] = "yesterday"

    outcome = pull(connection)

    assert outcome.created == 2  # the bad country left out, the rest of the person kept
    assert dict(Contact.objects.values_list("email", "country")) == {
        "person1@example.fr": "",
        "person2@example.fr": "",
    }
    reasons = " ".join(outcome.skipped)
    assert "country" in reasons and "yesterday" in reasons and "email" in reasons
    assert ConnectionState.objects.get(pk=connection.pk).pull_cursor


@pytest.mark.django_db
def test_a_crm_down_is_recorded_on_the_connection_and_the_cursor_kept(
    hubspot: HubSpotEmulator, connection: Connection
) -> None:
    hubspot.put_contact(person(1))
    pull(connection)
    cursor = ConnectionState.objects.get(pk=connection.pk).pull_cursor
    hubspot.fail_next(status=500, count=5)

    outcome = connection_pull(connection_id=connection.pk)

    assert "500" in outcome.error
    state = ConnectionState.objects.get(pk=connection.pk)
    assert (state.pull_cursor, state.pull_lease_token) == (cursor, None)
    assert "500" in state.pull_error


@pytest.mark.django_db
def test_the_beat_pulls_the_connections_whose_interval_has_passed(
    connection: Connection,
) -> None:
    assert connections_due_for_pull() == [connection.pk]
    ConnectionState.objects.filter(pk=connection.pk).update(last_pull_at=timezone.now())
    assert connections_due_for_pull() == []
    later = timezone.now() + timedelta(seconds=connection.pull_interval)
    assert connections_due_for_pull(now=later) == [connection.pk]
