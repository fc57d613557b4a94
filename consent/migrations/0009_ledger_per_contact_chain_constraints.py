"""Every record has its position in its contact's chain, unique per contact (this index also
serves the contact's history, replacing the (contact, id) index); new records are version 2."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("consent", "0008_ledger_per_contact_chain"),
    ]

    operations = [
        migrations.AlterField(
            model_name="consentrecord",
            name="contact_seq",
            field=models.BigIntegerField(verbose_name="position in the contact's chain"),
        ),
        migrations.AlterField(
            model_name="consentrecord",
            name="hash_version",
            field=models.PositiveSmallIntegerField(
                choices=[(1, "One global chain (legacy)"), (2, "One chain per contact")],
                default=2,
                verbose_name="hash version",
            ),
        ),
        migrations.RemoveIndex(
            model_name="consentrecord",
            name="consent_con_contact_766a89_idx",
        ),
        migrations.AddConstraint(
            model_name="consentrecord",
            constraint=models.UniqueConstraint(
                fields=("contact", "contact_seq"), name="consent_record_contact_seq"
            ),
        ),
    ]
