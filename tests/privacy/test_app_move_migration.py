"""Privacy requests moved from `consent` to `privacy` by migrations: not a row is lost.

Each test migrates the database back to before the move, writes through the models of that
time, migrates forward to the latest migrations and reads through today's models.
"""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from django.apps.registry import Apps
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from privacy.models import PrivacyRequest, PrivacyRequestEvent

# django-celery-beat and the migrations themselves need a database outside a wrapping
# transaction; the database is flushed after each test, and left at the latest migrations.
pytestmark = pytest.mark.django_db(transaction=True)

BEFORE_THE_MOVE = [("consent", "0005_privacy_request_held_or_without_contact"), ("privacy", None)]
RECEIVED = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
DUE = datetime(2026, 4, 2, 9, 30, tzinfo=UTC)


def migrate(targets: list[tuple[str, str | None]]) -> Apps:
    """Migrate to `targets` and answer the models of that state."""
    executor = MigrationExecutor(connection)
    state = executor.migrate(targets)
    ContentType.objects.clear_cache()
    return state.apps


def migrate_to_latest() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    ContentType.objects.clear_cache()


@pytest.fixture
def before_the_move() -> Iterator[Apps]:
    """The models as they were before the move; the database ends at the latest migrations."""
    old = migrate(BEFORE_THE_MOVE)
    yield old
    if "privacy_privacyrequest" not in connection.introspection.table_names():
        migrate_to_latest()  # a failed test must not leave the next ones on old tables


def file_old_request(old: Apps) -> dict[str, Any]:
    """A completed access request with its export files and history, and one without contact,
    written through the models of before the move; answers what was written."""
    contact = old.get_model("contacts", "Contact").objects.create(email="ines@example.fr")
    Request = old.get_model("consent", "PrivacyRequest")
    Event = old.get_model("consent", "PrivacyRequestEvent")
    fields = {
        "id": uuid.uuid4(),
        "type": "access",
        "status": "completed",
        "details": "By letter, received on 2 March.",
        "source_kind": "admin",
        "source_reference": "dpo",
        "received_at": RECEIVED,
        "due_at": DUE,
        "extension_reason": "Archives to search.",
        "held_reason": "",
        "handled_by": "dpo",
        "completed_at": DUE,
        "export_json": "exports/ines.json",
        "export_archive": "exports/ines.zip",
        "export_expires_at": DUE,
    }
    request = Request.objects.create(contact=contact, **fields)
    events = [
        Event.objects.create(request=request, status=status, at=RECEIVED, by="dpo", note=note)
        for status, note in (("verified", ""), ("completed", "Sent by post."))
    ]
    anonymous = Request.objects.create(
        type="erasure", source_kind="api", received_at=RECEIVED, due_at=DUE, held_reason="cap"
    )
    return {
        "contact_id": contact.pk,
        "fields": fields,
        "events": [(e.pk, e.status, e.at, e.by, e.note) for e in events],
        "anonymous_id": anonymous.pk,
    }


def old_permission(old: Apps, codename: str) -> Any:
    content_type = old.get_model("contenttypes", "ContentType").objects.get(
        app_label="consent", model="privacyrequest"
    )
    return old.get_model("auth", "Permission").objects.get(
        content_type=content_type, codename=codename
    )


def test_every_request_and_its_history_survive_the_move(before_the_move: Apps) -> None:
    # given requests written before the move
    written = file_old_request(before_the_move)

    # when the database is migrated to the latest migrations
    migrate_to_latest()

    # then each row is in the privacy app, as it was
    request = PrivacyRequest.objects.get(pk=written["fields"]["id"])
    assert {name: getattr(request, name) for name in written["fields"]} | {
        "export_json": request.export_json.name,
        "export_archive": request.export_archive.name,
    } == written["fields"]
    assert request.contact_id == written["contact_id"]
    assert list(request.contact.privacy_requests.all()) == [request]
    history = [(e.pk, e.status, e.at, e.by, e.note) for e in request.history.all()]
    assert history == written["events"]
    anonymous = PrivacyRequest.objects.get(pk=written["anonymous_id"])
    assert (anonymous.contact, anonymous.held_reason) == (None, "cap")
    tables = connection.introspection.table_names()
    assert {"privacy_privacyrequest", "privacy_privacyrequestevent"} <= set(tables)
    assert not {"consent_privacyrequest", "consent_privacyrequestevent"} & set(tables)
    # and new rows follow the old ones (the event ids keep counting)
    event = PrivacyRequestEvent.objects.create(request=request, status="completed")
    assert event.pk > max(pk for pk, *_rest in written["events"])


def test_the_dpo_group_keeps_its_rights_and_the_admin_log_its_entries(
    before_the_move: Apps,
) -> None:
    # given a group and a log entry that point at the requests of before the move
    written = file_old_request(before_the_move)
    group = before_the_move.get_model("auth", "Group").objects.create(name="Old DPO")
    group.permissions.add(old_permission(before_the_move, "view_privacyrequest"))
    user = before_the_move.get_model("auth", "User").objects.create(username="dpo", is_staff=True)
    user.groups.add(group)
    before_the_move.get_model("admin", "LogEntry").objects.create(
        user=user,
        content_type=old_permission(before_the_move, "view_privacyrequest").content_type,
        object_id=str(written["fields"]["id"]),
        object_repr="Access (Completed)",
        action_flag=2,
    )

    migrate_to_latest()

    permissions = Group.objects.get(name="Old DPO").permissions.all()
    assert [(p.content_type.app_label, p.codename) for p in permissions] == [
        ("privacy", "view_privacyrequest")
    ]
    assert get_user_model().objects.get(pk=user.pk).has_perm("privacy.view_privacyrequest")
    entry = LogEntry.objects.get()
    assert entry.get_edited_object() == PrivacyRequest.objects.get(pk=written["fields"]["id"])
    assert not ContentType.objects.filter(
        app_label="consent", model__in=["privacyrequest", "privacyrequestevent"]
    )


def test_content_types_made_early_by_a_half_done_migrate_are_merged(before_the_move: Apps) -> None:
    # given `migrate consent` ran alone: post_migrate made the privacy app's content types and
    # permissions while the groups still held consent's
    old_group = before_the_move.get_model("auth", "Group").objects.create(name="Old DPO")
    old_group.permissions.add(old_permission(before_the_move, "change_privacyrequest"))
    ContentTypes = before_the_move.get_model("contenttypes", "ContentType")
    early = ContentTypes.objects.create(app_label="privacy", model="privacyrequest")
    early_permission = before_the_move.get_model("auth", "Permission").objects.create(
        content_type=early, codename="change_privacyrequest", name="Can change privacy request"
    )
    new_group = before_the_move.get_model("auth", "Group").objects.create(name="New DPO")
    new_group.permissions.add(early_permission)

    migrate_to_latest()

    content_type = ContentType.objects.get(app_label="privacy", model="privacyrequest")
    assert content_type.pk == early.pk
    assert not ContentType.objects.filter(app_label="consent", model="privacyrequest")
    for name in ("Old DPO", "New DPO"):
        assert list(Group.objects.get(name=name).permissions.all()) == [
            Permission.objects.get(content_type=content_type, codename="change_privacyrequest")
        ]
