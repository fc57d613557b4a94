"""The events written before the outbox was numbered get their sequence now, in the order
they were written: a connection created later then starts after them (`outbox_head`), and the
feed serves them first. Batches of 50,000, one statement each."""

from django.db import migrations

BATCH = 50_000


def number_existing_events(apps, schema_editor):
    connection = schema_editor.connection
    table = connection.ops.quote_name("crmsync_outboxevent")
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                UPDATE {table} SET sequence = numbered.number
                FROM (
                    SELECT id, (SELECT COALESCE(MAX(sequence), 0) FROM {table})
                        + ROW_NUMBER() OVER (ORDER BY created_at, id) AS number
                    FROM {table}
                    WHERE sequence IS NULL
                    ORDER BY created_at, id
                    LIMIT %s
                ) AS numbered
                WHERE {table}.id = numbered.id
                """,  # noqa: S608 - our table, quoted; the one value is a parameter
                [BATCH],
            )
            if cursor.rowcount < BATCH:
                return


class Migration(migrations.Migration):
    dependencies = [
        ("crmsync", "0005_connections_push_dead_letters"),
    ]

    operations = [migrations.RunPython(number_existing_events, migrations.RunPython.noop)]
