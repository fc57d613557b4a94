"""An index built without blocking writes (`core.migration_operations`) can be built again
after a build that failed and left an INVALID index behind (PostgreSQL)."""

import pytest
from django.db import IntegrityError, connection, models
from django.db.migrations.loader import MigrationLoader

from contacts.models import TimelineKind
from contacts.services import timeline_add
from core.migration_operations import AddIndexWithoutBlockingWrites
from tests.factories import ContactFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

NAME = "timeline_kind_occurred"


def index_state() -> bool | None:
    """Whether the index is valid; None when there is none."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indisvalid FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid "
            "WHERE c.relname = %s",
            [NAME],
        )
        row = cursor.fetchone()
    return None if row is None else row[0]


def test_a_build_left_invalid_is_dropped_and_the_index_built_again() -> None:
    for contact in ContactFactory.create_batch(2):
        timeline_add(contact=contact, kind=TimelineKind.CREATED, summary="")
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX {NAME}")
        # a concurrent build that fails (two rows share the key) leaves its index INVALID
        with pytest.raises(IntegrityError):
            cursor.execute(
                f"CREATE UNIQUE INDEX CONCURRENTLY {NAME} ON contacts_timelineevent (kind)"
            )
    assert index_state() is False

    operation = AddIndexWithoutBlockingWrites(
        model_name="timelineevent",
        index=models.Index(fields=["kind", "occurred_at"], name=NAME),
    )
    before = MigrationLoader(connection).project_state(
        ("contacts", "0018_note_timeline_without_categories")
    )
    after = before.clone()
    operation.state_forwards("contacts", after)
    with connection.schema_editor(atomic=False) as editor:
        operation.database_forwards("contacts", editor, before, after)

    assert index_state() is True
