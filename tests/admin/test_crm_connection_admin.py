"""The CRM connections and dead letters in the admin: staff admins manage them, credentials
are typed but never shown, each connection's sync is visible at a glance, dead letters are
replayed, and marketers may only look."""

import pytest
from django.test import Client
from django.urls import reverse

from core.models import AuditAction, AuditEvent
from crmsync.connections import connection_create, connection_credentials
from crmsync.models import Connection, ConnectionState, DeadLetter
from crmsync.push import connection_push
from crmsync.services import outbox_emit
from crmsync.tasks import push_connection
from tests.admin.forms import submitted_form
from tests.crmsync.receiver import SECRET, Receiver, receiver_running
from tests.factories import ContactFactory
from tests.queued import held_back

pytestmark = pytest.mark.django_db

CONNECTIONS = reverse("admin:crmsync_connection_changelist")
ADD = reverse("admin:crmsync_connection_add")
DEAD_LETTERS = reverse("admin:crmsync_deadletter_changelist")
TOKEN = "pat-eu1-never-shown-0d1b4c3e"


def webhook(url: str = "http://127.0.0.1:9/hooks", **overrides: object) -> Connection:
    return connection_create(
        **{
            "name": "integrator",
            "kind": "webhook",
            "base_url": url,
            "credentials": {"secret": SECRET},
            **overrides,
        }
    )


def test_a_staff_admin_adds_a_connection_with_its_credentials_encrypted(
    as_superuser: Client,
) -> None:
    page = as_superuser.get(ADD)
    form = submitted_form(
        page,
        name="HubSpot EU",
        kind="hubspot",
        base_url="https://api.hubapi.example",
        token=TOKEN,
        field_mappings="[]",
        purpose_map="{}",
        options="{}",
    )

    response = as_superuser.post(ADD, form)

    assert response.status_code == 302
    connection = Connection.objects.get(name="HubSpot EU")
    assert connection_credentials(connection) == {"token": TOKEN}
    assert ConnectionState.objects.filter(pk=connection.pk).exists()
    (event,) = AuditEvent.objects.filter(action=AuditAction.CRM_CONNECTION)
    assert event.details["connection"] == "HubSpot EU" and event.details["created"] is True


def test_the_credentials_are_never_shown_and_an_empty_field_keeps_them(
    as_superuser: Client,
) -> None:
    connection = webhook(credentials={"secret": SECRET})
    change = reverse("admin:crmsync_connection_change", args=[connection.pk])

    page = as_superuser.get(change)
    assert SECRET not in page.content.decode()
    assert SECRET.removeprefix("whsec_") not in page.content.decode()
    response = as_superuser.post(change, submitted_form(page, enabled=None))

    assert response.status_code == 302
    connection.refresh_from_db()
    assert connection.enabled is False
    assert connection_credentials(connection) == {"secret": SECRET}


def test_a_bad_mapping_is_refused_on_its_field(as_superuser: Client) -> None:
    page = as_superuser.get(ADD)
    form = submitted_form(
        page,
        name="crm",
        kind="webhook",
        base_url="https://hooks.example",
        secret=SECRET,
        field_mappings='[{"field": "shoe_size", "remote": "x", "direction": "push", '
        '"conflict": "ours"}]',
        purpose_map="{}",
        options="{}",
    )

    response = as_superuser.post(ADD, form)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "shoe_size" in str(errors["field_mappings"])
    assert not Connection.objects.exists()


def test_the_list_shows_each_connection_s_sync(as_superuser: Client) -> None:
    with receiver_running(Receiver()) as receiver:
        connection = webhook(receiver.url)
        outbox_emit(topic="contact.updated", contact=ContactFactory(), payload={})
        connection_push(connection_id=connection.pk)
        receiver.fail_next(1, status=503)
        outbox_emit(topic="contact.updated", contact=ContactFactory(), payload={})
        connection_push(connection_id=connection.pk)

    page = as_superuser.get(CONNECTIONS).content.decode()

    for column in ("Kind", "Enabled", "Last push", "Lag", "Events waiting", "Dead letters"):
        assert column in page
    assert "HTTP 503" in page  # the last error
    row = page.split("integrator", 1)[1]
    assert "second" in row  # the lag of the event waiting


def test_a_marketer_sees_the_connections_but_cannot_change_them(as_marketer: Client) -> None:
    connection = webhook()

    assert as_marketer.get(CONNECTIONS).status_code == 200
    assert as_marketer.get(ADD).status_code == 403
    change = reverse("admin:crmsync_connection_change", args=[connection.pk])
    page = as_marketer.get(change)
    assert page.status_code == 200 and "Save" not in page.content.decode()
    assert as_marketer.post(change, {"name": "renamed"}).status_code == 403


def test_replaying_dead_letters_from_the_admin_delivers_them_and_is_audited(
    as_superuser: Client, settings: object
) -> None:
    settings.CRM_PUSH_MAX_FAILURES = 1  # type: ignore[attr-defined]
    with receiver_running(Receiver()) as receiver:
        connection = webhook(receiver.url)
        event = outbox_emit(topic="contact.updated", contact=ContactFactory(), payload={})
        receiver.fail_next(1)
        connection_push(connection_id=connection.pk)
        [letter] = DeadLetter.objects.all()

        response = as_superuser.post(
            DEAD_LETTERS, {"action": "replay", "_selected_action": [letter.pk]}, follow=True
        )

        assert receiver.received_ids() == [str(event.pk)]
    letter.refresh_from_db()
    assert letter.resolved_at is not None
    assert "1 delivered" in response.content.decode()
    (audit,) = AuditEvent.objects.filter(action=AuditAction.DEAD_LETTER_REPLAY)
    assert audit.details["dead_letters"] == [letter.pk] and audit.details["resolved"] == 1


def test_a_marketer_cannot_replay_dead_letters(as_marketer: Client, settings: object) -> None:
    settings.CRM_PUSH_MAX_FAILURES = 1  # type: ignore[attr-defined]
    connection = webhook()  # nothing listens: the push fails and parks the event
    outbox_emit(topic="contact.updated", contact=ContactFactory(), payload={})
    connection_push(connection_id=connection.pk)
    [letter] = DeadLetter.objects.all()

    page = as_marketer.get(DEAD_LETTERS).content.decode()
    as_marketer.post(DEAD_LETTERS, {"action": "replay", "_selected_action": [letter.pk]})

    assert "Replay through the connection" not in page
    letter.refresh_from_db()
    assert letter.resolved_at is None and letter.attempts == 1


def test_opening_a_dead_letter_is_audited_with_its_contact(as_superuser: Client) -> None:
    contact = ContactFactory()
    connection = webhook()
    event = outbox_emit(topic="contact.updated", contact=contact, payload={"email": "x"})
    letter = DeadLetter.objects.create(connection=connection, event=event, error="refused")

    response = as_superuser.get(reverse("admin:crmsync_deadletter_change", args=[letter.pk]))

    assert response.status_code == 200
    (audit,) = AuditEvent.objects.filter(action=AuditAction.VIEW_OUTBOX_EVENT)
    assert audit.contact == contact and audit.details["outbox_event"] == str(event.pk)


def test_push_now_ends_the_wait_after_a_failure_and_delivers(as_superuser: Client) -> None:
    with receiver_running(Receiver()) as receiver:
        connection = webhook(receiver.url)
        event = outbox_emit(topic="contact.updated", contact=ContactFactory(), payload={})
        receiver.fail_next(1, status=503)
        connection_push(connection_id=connection.pk)
        assert ConnectionState.objects.get(pk=connection.pk).next_attempt_at is not None

        # the push the action queues, run here
        with held_back(push_connection) as queued:
            as_superuser.post(
                CONNECTIONS, {"action": "push_now", "_selected_action": [connection.pk]}
            )
        assert queued == [(connection.pk,)]
        push_connection(*queued[0])

        assert receiver.received_ids() == [str(event.pk)]
