"""SQLite: the sealing-key trigger again, after 0014 rebuilt the ledger table.

SQLite adds a NOT NULL column by rebuilding the table, which drops its triggers (PostgreSQL
adds the column in place and keeps them). The trigger is 0010's, unchanged.
"""

from django.db import migrations

SQLITE_XACT_TRIGGER = (
    "CREATE TRIGGER consent_record_xact AFTER INSERT ON consent_consentrecord "
    "BEGIN UPDATE consent_consentrecord SET xact = NEW.id WHERE id = NEW.id; END"
)


def recreate_sqlite_trigger(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    schema_editor.execute("DROP TRIGGER IF EXISTS consent_record_xact")
    schema_editor.execute(SQLITE_XACT_TRIGGER)


class Migration(migrations.Migration):
    dependencies = [("consent", "0015_ledger_actor_and_origin")]

    operations = [migrations.RunPython(recreate_sqlite_trigger, migrations.RunPython.noop)]
