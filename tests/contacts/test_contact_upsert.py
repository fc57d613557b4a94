import threading
import time

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction

from contacts.models import Contact, TimelineEvent
from contacts.services import contact_update, contact_upsert
from crmsync.models import OutboxEvent
from tests.consent.concurrency import run_concurrently
from tests.factories import ContactFactory, InterestFactory


def events_of(contact: Contact) -> tuple[list[str], list[str]]:
    """The timeline kinds and outbox topics a contact has left, oldest first."""
    timeline = list(
        TimelineEvent.objects.filter(contact=contact).order_by("id").values_list("kind", flat=True)
    )
    outbox = list(
        OutboxEvent.objects.filter(contact_public_id=contact.public_id)
        .order_by("created_at", "id")
        .values_list("topic", flat=True)
    )
    return timeline, outbox


@pytest.mark.django_db
def test_upsert_creates_the_contact_once_with_its_normalised_email():
    contact, created = contact_upsert(
        email="  Jean@Exemple-Été.FR ", fields={"first_name": "Jean", "phone": "06 12 34 56 78"}
    )

    assert created is True
    assert contact.email == "jean@xn--exemple-t-i4ab.fr"
    assert contact.phone == "+33612345678"
    assert Contact.objects.count() == 1


@pytest.mark.django_db
def test_upsert_with_differently_cased_email_updates_the_same_contact():
    first, _ = contact_upsert(email="camille@example.fr", fields={"first_name": "Camille"})

    second, created = contact_upsert(email="CAMILLE@Example.FR ", fields={"company": "ACME"})

    assert created is False
    assert second.pk == first.pk
    second.refresh_from_db()
    assert (second.first_name, second.company) == ("Camille", "ACME")
    assert Contact.objects.count() == 1


@pytest.mark.django_db
def test_creation_writes_a_timeline_event_and_an_outbox_event():
    contact, _ = contact_upsert(email="camille@example.fr", fields={"source": "salon-2026"})

    assert events_of(contact) == (["created"], ["contact.created"])
    assert OutboxEvent.objects.get().payload["email"] == "camille@example.fr"


@pytest.mark.django_db
def test_update_writes_a_timeline_event_and_an_outbox_event_naming_the_changed_fields():
    contact, _ = contact_upsert(email="camille@example.fr", fields={"first_name": "Camille"})

    contact_upsert(email="camille@example.fr", fields={"first_name": "Camille", "city": "Lyon"})

    assert events_of(contact) == (["created", "updated"], ["contact.created", "contact.updated"])
    assert TimelineEvent.objects.get(kind="updated").data == {"fields": ["city"]}
    assert OutboxEvent.objects.get(topic="contact.updated").payload["changed"] == ["city"]


@pytest.mark.django_db
def test_upsert_that_changes_nothing_writes_no_event():
    contact, _ = contact_upsert(
        email="camille@example.fr", fields={"first_name": "Camille", "phone": "06 12 34 56 78"}
    )

    contact_upsert(
        email="Camille@example.fr", fields={"first_name": "Camille", "phone": "+33 6 12 34 56 78"}
    )

    assert events_of(contact) == (["created"], ["contact.created"])


@pytest.mark.django_db
def test_upsert_sets_the_chosen_interests():
    InterestFactory(slug="jardinage"), InterestFactory(slug="cuisine")

    contact, _ = contact_upsert(email="camille@example.fr", interests=["cuisine", "jardinage"])

    assert sorted(contact.interests.values_list("slug", flat=True)) == ["cuisine", "jardinage"]


@pytest.mark.django_db
def test_unknown_interest_is_an_error_on_interests_and_creates_nothing():
    InterestFactory(slug="cuisine")

    with pytest.raises(ValidationError) as error:
        contact_upsert(email="camille@example.fr", interests=["cuisine", "astrologie"])

    assert list(error.value.message_dict) == ["interests"]
    assert "astrologie" in error.value.message_dict["interests"][0]
    assert not Contact.objects.exists()


@pytest.mark.django_db
def test_invalid_email_is_an_error_on_email():
    with pytest.raises(ValidationError) as error:
        contact_upsert(email="not-an-email")

    assert list(error.value.message_dict) == ["email"]


@pytest.mark.django_db
def test_invalid_phone_is_an_error_on_phone():
    with pytest.raises(ValidationError) as error:
        contact_upsert(email="camille@example.fr", fields={"phone": "12"})

    assert list(error.value.message_dict) == ["phone"]
    assert not Contact.objects.exists()


@pytest.mark.django_db
def test_unknown_field_and_bad_choice_are_errors_on_those_fields():
    with pytest.raises(ValidationError) as error:
        contact_upsert(email="camille@example.fr", fields={"language": "de", "country": "France"})

    assert sorted(error.value.message_dict) == ["country", "language"]
    with pytest.raises(ValidationError) as error:
        contact_upsert(email="camille@example.fr", fields={"status": "erased"})
    assert list(error.value.message_dict) == ["status"]


@pytest.mark.django_db
def test_update_to_an_email_another_contact_has_is_refused():
    ContactFactory(email="taken@example.fr")
    contact = ContactFactory(email="camille@example.fr")

    with pytest.raises(ValidationError) as error:
        contact_update(contact=contact, email="Taken@Example.fr")

    assert list(error.value.message_dict) == ["email"]


@pytest.mark.django_db
def test_email_change_is_normalised_and_leaves_a_timeline_and_outbox_event():
    contact = ContactFactory(email="camille@example.fr")

    contact_update(contact=contact, email=" Camille.Martin@Example.FR")

    contact.refresh_from_db()
    assert contact.email == "camille.martin@example.fr"
    assert events_of(contact) == (["email_changed"], ["contact.updated"])


@pytest.mark.postgres
def test_concurrent_upserts_of_the_same_new_email_make_one_contact(transactional_db):
    # given eight requests arriving at once for a person we do not know yet
    def upsert() -> bool:
        _contact, created = contact_upsert(
            email="Concurrent@Example.fr", fields={"first_name": "Camille"}
        )
        return created

    # when
    created = run_concurrently(upsert, times=8)

    # then
    assert Contact.objects.filter(email="concurrent@example.fr").count() == 1
    assert sorted(created) == [False] * 7 + [True]
    contact = Contact.objects.get()
    assert events_of(contact) == (["created"], ["contact.created"])


@pytest.mark.postgres
def test_email_change_racing_another_to_the_same_email_is_refused_on_email(transactional_db):
    # given contact A taking the email in a transaction not committed yet
    first = ContactFactory(email="first@example.fr")
    second = ContactFactory(email="second@example.fr")
    taken, release = threading.Event(), threading.Event()

    def take() -> None:
        try:
            with transaction.atomic():
                Contact.objects.filter(pk=first.pk).update(email="wanted@example.fr")
                taken.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    holder = threading.Thread(target=take)
    holder.start()
    assert taken.wait(timeout=30)
    outcome: list[BaseException | None] = []

    def change() -> None:
        try:
            contact_update(contact=second, email="wanted@example.fr")
            outcome.append(None)
        except BaseException as error:  # noqa: BLE001 - examined below
            outcome.append(error)
        finally:
            connection.close()

    # when B changes to the same email: it sees it free, then waits on the unique index
    changer = threading.Thread(target=change)
    changer.start()
    wait_until_a_session_waits_on_a_lock()
    release.set()
    holder.join(timeout=30)
    changer.join(timeout=30)

    # then B's change is refused on its email field, as the sequential case is
    [error] = outcome
    assert isinstance(error, ValidationError), repr(error)
    assert list(error.message_dict) == ["email"]
    second.refresh_from_db()
    assert second.email == "second@example.fr"
    assert events_of(second) == ([], [])


def wait_until_a_session_waits_on_a_lock() -> None:
    deadline = time.monotonic() + 30
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.05)
    raise AssertionError("the email change never waited on the other transaction")
