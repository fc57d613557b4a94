"""One chain per contact in the consent ledger: each record gets its position in its contact's
chain (`contact_seq`) and a hash version; each contact gets the head of its chain.

Existing records are legacy (hash_version 1): they stay chained in one global order by id, and
their hashes and `previous_hash` are left untouched (receipts and API answers given so far stay
true). They get `contact_seq` = their rank among their contact's records by id, in keyset
batches, and each contact's head (`ledger_seq`, `ledger_hash`) is set from its last record.
On PostgreSQL the append-only trigger is disabled for the duration of the fill only.
"""

from django.db import migrations, models

BATCH_SIZE = 10_000
RECORDS = "consent_consentrecord"
TRIGGER = "consent_consentrecord_append_only"

NEXT_UPPER = "SELECT max(id) FROM (SELECT id FROM consent_consentrecord WHERE id > %s ORDER BY id LIMIT %s) t"
FILL_SEQ = """
UPDATE consent_consentrecord SET contact_seq = n.seq
FROM (
    SELECT r.id AS id,
           c.ledger_seq + row_number() OVER (PARTITION BY r.contact_id ORDER BY r.id) AS seq
    FROM consent_consentrecord r JOIN contacts_contact c ON c.id = r.contact_id
    WHERE r.id > %s AND r.id <= %s
) AS n
WHERE consent_consentrecord.id = n.id
"""
MOVE_HEADS = """
UPDATE contacts_contact SET ledger_seq = h.contact_seq, ledger_hash = h.hash
FROM (
    SELECT contact_id, contact_seq, hash FROM consent_consentrecord
    WHERE id IN (
        SELECT max(id) FROM consent_consentrecord WHERE id > %s AND id <= %s GROUP BY contact_id
    )
) AS h
WHERE contacts_contact.id = h.contact_id
"""


def _has_trigger(cursor) -> bool:
    cursor.execute(
        "SELECT 1 FROM pg_trigger WHERE tgname = %s AND tgrelid = %s::regclass",
        [TRIGGER, RECORDS],
    )
    return cursor.fetchone() is not None


def fill_contact_chains(apps, schema_editor) -> None:
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        guarded = connection.vendor == "postgresql" and _has_trigger(cursor)
        if guarded:
            cursor.execute(f"ALTER TABLE {RECORDS} DISABLE TRIGGER {TRIGGER}")
        last = 0
        while True:
            cursor.execute(NEXT_UPPER, [last, BATCH_SIZE])
            upper = cursor.fetchone()[0]
            if upper is None:
                break
            cursor.execute(FILL_SEQ, [last, upper])
            cursor.execute(MOVE_HEADS, [last, upper])
            last = upper
        if guarded:
            cursor.execute(f"ALTER TABLE {RECORDS} ENABLE TRIGGER {TRIGGER}")


class Migration(migrations.Migration):
    dependencies = [
        ("consent", "0007_message_sent_and_state_index"),
        ("contacts", "0010_contact_ledger_head"),
    ]

    operations = [
        migrations.AddField(
            model_name="consentrecord",
            name="contact_seq",
            field=models.BigIntegerField(null=True, verbose_name="position in the contact's chain"),
        ),
        # existing rows are the legacy global chain; 0009 makes new ones default to 2
        migrations.AddField(
            model_name="consentrecord",
            name="hash_version",
            field=models.PositiveSmallIntegerField(
                choices=[(1, "One global chain (legacy)"), (2, "One chain per contact")],
                default=1,
                verbose_name="hash version",
            ),
        ),
        migrations.RunPython(fill_contact_chains, migrations.RunPython.noop),
    ]
