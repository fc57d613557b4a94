"""PostgreSQL: the ledger's delete refusal lets through the removal job alone, and the
tombstones are append-only.

A DELETE on `consent_consentrecord` passes only while the transaction has set
`consent.ledger_strip` to `on` (`consent.ledger.ledger_strip`, around its one DELETE) and for
a record whose tombstone exists; UPDATE and TRUNCATE stay refused. Whoever gets past this
(a superuser) still fails `verify_ledger` without a strip seal signed with LEDGER_SEAL_KEY.
SQLite has no database-side refusal (the ORM's only), so nothing changes there.
"""

from django.db import migrations

RECORDS = "consent_consentrecord"
TOMBSTONES = "consent_ledgertombstone"

PG_RECORD_FUNCTION = """
CREATE OR REPLACE FUNCTION consent_record_refuse_change() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE'
       AND current_setting('consent.ledger_strip', true) = 'on'
       AND EXISTS (SELECT 1 FROM consent_ledgertombstone t WHERE t.record_id = OLD.id) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'table % is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


def create_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    execute = schema_editor.execute
    execute(PG_RECORD_FUNCTION, params=None)
    execute(f"DROP TRIGGER IF EXISTS {RECORDS}_append_only ON {RECORDS}")
    execute(
        f"CREATE TRIGGER {RECORDS}_append_only BEFORE UPDATE OR DELETE ON {RECORDS} "
        "FOR EACH ROW EXECUTE FUNCTION consent_record_refuse_change()"
    )
    # consent_refuse_change() comes from 0002
    execute(
        f"CREATE TRIGGER {TOMBSTONES}_append_only BEFORE UPDATE OR DELETE ON {TOMBSTONES} "
        "FOR EACH ROW EXECUTE FUNCTION consent_refuse_change()"
    )
    execute(
        f"CREATE TRIGGER {TOMBSTONES}_no_truncate BEFORE TRUNCATE ON {TOMBSTONES} "
        "FOR EACH STATEMENT EXECUTE FUNCTION consent_refuse_change()"
    )


def drop_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    execute = schema_editor.execute
    execute(f"DROP TRIGGER IF EXISTS {TOMBSTONES}_no_truncate ON {TOMBSTONES}")
    execute(f"DROP TRIGGER IF EXISTS {TOMBSTONES}_append_only ON {TOMBSTONES}")
    execute(f"DROP TRIGGER IF EXISTS {RECORDS}_append_only ON {RECORDS}")
    execute(
        f"CREATE TRIGGER {RECORDS}_append_only BEFORE UPDATE OR DELETE ON {RECORDS} "
        "FOR EACH ROW EXECUTE FUNCTION consent_refuse_change()"
    )
    execute("DROP FUNCTION IF EXISTS consent_record_refuse_change()")


class Migration(migrations.Migration):
    dependencies = [("consent", "0017_ledger_tombstones_and_strip_seals")]

    operations = [migrations.RunPython(create_triggers, drop_triggers)]
