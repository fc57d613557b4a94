"""Seals of the consent ledger: the `xact` sealing key and its triggers, the `LedgerSeal` table,
and PostgreSQL triggers refusing TRUNCATE on the append-only tables (row triggers do not fire
on TRUNCATE) and UPDATE/DELETE on the seals."""

from django.db import migrations, models

TRUNCATE_REFUSED = ("consent_consentrecord", "consent_purposeversion", "consent_ledgerseal")

PG_XACT_FUNCTION = """
CREATE OR REPLACE FUNCTION consent_record_xact() RETURNS trigger AS $$
BEGIN
    NEW.xact := pg_current_xact_id()::text::bigint;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
"""


def create_triggers(apps, schema_editor):
    execute = schema_editor.execute
    if schema_editor.connection.vendor == "postgresql":
        execute(PG_XACT_FUNCTION, params=None)
        execute(
            "CREATE TRIGGER consent_record_xact BEFORE INSERT ON consent_consentrecord "
            "FOR EACH ROW EXECUTE FUNCTION consent_record_xact()"
        )
        # consent_refuse_change() comes from 0002 and names TG_OP: "... TRUNCATE refused"
        execute(
            "CREATE TRIGGER consent_ledgerseal_append_only BEFORE UPDATE OR DELETE ON "
            "consent_ledgerseal FOR EACH ROW EXECUTE FUNCTION consent_refuse_change()"
        )
        for table in TRUNCATE_REFUSED:
            execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION consent_refuse_change()"
            )
    elif schema_editor.connection.vendor == "sqlite":
        execute(
            "CREATE TRIGGER consent_record_xact AFTER INSERT ON consent_consentrecord "
            "BEGIN UPDATE consent_consentrecord SET xact = NEW.id WHERE id = NEW.id; END"
        )


def drop_triggers(apps, schema_editor):
    execute = schema_editor.execute
    if schema_editor.connection.vendor == "postgresql":
        for table in TRUNCATE_REFUSED:
            execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        execute("DROP TRIGGER IF EXISTS consent_ledgerseal_append_only ON consent_ledgerseal")
        execute("DROP TRIGGER IF EXISTS consent_record_xact ON consent_consentrecord")
        execute("DROP FUNCTION IF EXISTS consent_record_xact()")
    elif schema_editor.connection.vendor == "sqlite":
        execute("DROP TRIGGER IF EXISTS consent_record_xact")


class Migration(migrations.Migration):
    dependencies = [
        ("consent", "0009_ledger_per_contact_chain_constraints"),
        ("contacts", "0010_contact_ledger_head"),
    ]

    operations = [
        migrations.CreateModel(
            name="LedgerSeal",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("number", models.BigIntegerField(unique=True, verbose_name="number")),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("genesis", "Genesis (legacy ledger)"),
                            ("records", "Records"),
                            ("prune", "Prune (a month removed)"),
                        ],
                        max_length=10,
                        verbose_name="kind",
                    ),
                ),
                ("period", models.DateField(verbose_name="month")),
                ("key_from", models.BigIntegerField(verbose_name="from key")),
                ("key_to", models.BigIntegerField(verbose_name="to key")),
                ("record_count", models.BigIntegerField(verbose_name="records")),
                ("total_count", models.BigIntegerField(verbose_name="records sealed in all")),
                (
                    "first_record_id",
                    models.BigIntegerField(blank=True, null=True, verbose_name="first record"),
                ),
                (
                    "last_record_id",
                    models.BigIntegerField(blank=True, null=True, verbose_name="last record"),
                ),
                ("records_digest", models.CharField(max_length=64, verbose_name="records digest")),
                (
                    "previous_seal_hash",
                    models.CharField(max_length=64, verbose_name="previous seal hash"),
                ),
                (
                    "seal_hash",
                    models.CharField(max_length=64, unique=True, verbose_name="seal hash"),
                ),
                ("signature", models.CharField(max_length=64, verbose_name="signature")),
                ("key_id", models.CharField(max_length=8, verbose_name="key id")),
                ("sealed_at", models.DateTimeField(verbose_name="sealed at")),
            ],
            options={
                "verbose_name": "ledger seal",
                "verbose_name_plural": "ledger seals",
                "ordering": ["number"],
                "permissions": [("download_heads_ledgerseal", "Can download the seal heads")],
                "default_permissions": ("view",),
            },
        ),
        migrations.AddField(
            model_name="consentrecord",
            name="xact",
            field=models.BigIntegerField(db_default=0, editable=False, verbose_name="sealing key"),
        ),
        migrations.AddIndex(
            model_name="consentrecord",
            index=models.Index(fields=["xact", "id"], name="consent_record_xact_id"),
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
